"""The self-supervised model ids of the original study, as thingsvision 2.6.10's SSLExtractor
(the study's extractor) builds them: the same checkpoint URLs and architectures.

DINO / MAE ViTs: the reference ViTs with the official checkpoints (pysim.models.ssl_models);
DINOv2: the facebookresearch/dinov2 torch.hub entry points; DINO XCiTs: the
facebookresearch/dino torch.hub entry points; ResNet-50s: torchvision's resnet50 (fc removed)
with the published checkpoint converted to torchvision keys. Every one gets thingsvision's
one transform. `model_parameters.ssl_impl: "timm"` selects pysim's timm variant of a ViT
instead (timm weights, timm's transform): an option, not the study's models.
"""

from __future__ import annotations

from dataclasses import dataclass

VISSL = "https://dl.fbaipublicfiles.com/vissl/model_zoo/"
DINO = "https://dl.fbaipublicfiles.com/dino/"
MAE = "https://dl.fbaipublicfiles.com/mae/pretrain/"
DINOV2 = "https://dl.fbaipublicfiles.com/dinov2/"
DINOV2_REPO = "facebookresearch/dinov2:main"  # the hub repo thingsvision loads (default branch)
DINO_REPO = "facebookresearch/dino:main"
STUDY_IMPL = "thingsvision"  # model_parameters.ssl_impl: the study's code (default)
TIMM_IMPL = "timm"           # model_parameters.ssl_impl: pysim's timm variant (an option)
SSL_IMPLS = (STUDY_IMPL, TIMM_IMPL)
STUDY_TRANSFORM_TEXT = ("thingsvision 2.6.10 default: Resize(256, bilinear) CenterCrop(224) "
                        "ToTensor Normalize(ImageNet mean/std)")
XCIT_REPO = "facebookresearch/xcit:main"  # the dino repo's XCiT entries torch.hub-load it


@dataclass(frozen=True)
class SSLSpec:
    """How thingsvision 2.6.10's SSLExtractor builds one id, and pysim's timm variant of it.

    kind: `dino_vit` (DINO's reference ViT, plain state_dict checkpoint), `mae_vit` (MAE's
    reference ViT, `{"model": ...}` checkpoint, position embeddings interpolated on load),
    `dinov2_hub` (torch.hub entry of facebookresearch/dinov2), `hub` (torch.hub entry of
    facebookresearch/dino: XCiTs), `resnet50` (torchvision ResNet-50, fc removed).
    """

    kind: str
    url: str = ""                  # the checkpoint URL (for hub entries: the one they download)
    vit: tuple[tuple[str, int], ...] = ()  # ViT hyper-parameters of the reference builder
    repo: str = ""                 # torch.hub repo (hub kinds)
    entry: str = ""                # torch.hub entry point (hub kinds)
    timm: str = ""                 # the timm equivalent of ssl_impl "timm" ("" if none)

    @property
    def vit_kwargs(self) -> dict[str, int]:
        return dict(self.vit)


def _vit(patch: int, dim: int, depth: int, heads: int) -> tuple[tuple[str, int], ...]:
    return (("patch_size", patch), ("embed_dim", dim), ("depth", depth), ("num_heads", heads))


def _dinov2(size: str, letter: str) -> SSLSpec:
    name = f"dinov2_vit{letter}14"
    return SSLSpec("dinov2_hub", f"{DINOV2}{name}/{name}_pretrain.pth", repo=DINOV2_REPO,
                   entry=name, timm=f"vit_{size}_patch14_dinov2.lvd142m")


def _xcit(entry: str) -> SSLSpec:
    return SSLSpec("hub", f"{DINO}{entry}_pretrain/{entry}_pretrain.pth", repo=DINO_REPO,
                   entry=entry)


# thingsvision 2.6.10 SSLExtractor.MODELS (checkpoint URLs, builders) per id
SSL_MODELS: dict[str, SSLSpec] = {
    "dino-vit-small-p8": SSLSpec("dino_vit", DINO + "dino_deitsmall8_pretrain/"
                                 "dino_deitsmall8_pretrain.pth", _vit(8, 384, 12, 6),
                                 timm="vit_small_patch8_224.dino"),
    "dino-vit-small-p16": SSLSpec("dino_vit", DINO + "dino_deitsmall16_pretrain/"
                                  "dino_deitsmall16_pretrain.pth", _vit(16, 384, 12, 6),
                                  timm="vit_small_patch16_224.dino"),
    "dino-vit-base-p8": SSLSpec("dino_vit", DINO + "dino_vitbase8_pretrain/"
                                "dino_vitbase8_pretrain.pth", _vit(8, 768, 12, 12),
                                timm="vit_base_patch8_224.dino"),
    "dino-vit-base-p16": SSLSpec("dino_vit", DINO + "dino_vitbase16_pretrain/"
                                 "dino_vitbase16_pretrain.pth", _vit(16, 768, 12, 12),
                                 timm="vit_base_patch16_224.dino"),
    "dinov2-vit-small-p14": _dinov2("small", "s"),
    "dinov2-vit-base-p14": _dinov2("base", "b"),
    "dinov2-vit-large-p14": _dinov2("large", "l"),
    "dinov2-vit-giant-p14": _dinov2("giant", "g"),
    "mae-vit-base-p16": SSLSpec("mae_vit", MAE + "mae_pretrain_vit_base.pth",
                                _vit(16, 768, 12, 12), timm="vit_base_patch16_224.mae"),
    "mae-vit-large-p16": SSLSpec("mae_vit", MAE + "mae_pretrain_vit_large.pth",
                                 _vit(16, 1024, 24, 16), timm="vit_large_patch16_224.mae"),
    "mae-vit-huge-p14": SSLSpec("mae_vit", MAE + "mae_pretrain_vit_huge.pth",
                                _vit(14, 1280, 32, 16), timm="vit_huge_patch14_224.mae"),
    "dino-xcit-small-12-p16": _xcit("dino_xcit_small_12_p16"),
    "dino-xcit-small-12-p8": _xcit("dino_xcit_small_12_p8"),
    "dino-xcit-medium-24-p16": _xcit("dino_xcit_medium_24_p16"),
    "dino-xcit-medium-24-p8": _xcit("dino_xcit_medium_24_p8"),
    "dino-rn50": SSLSpec("resnet50", DINO + "dino_resnet50_pretrain/dino_resnet50_pretrain.pth"),
    "barlowtwins-rn50": SSLSpec("resnet50", "https://dl.fbaipublicfiles.com/barlowtwins/ljng/"
                                            "resnet50.pth"),
    "vicreg-rn50": SSLSpec("resnet50", "https://dl.fbaipublicfiles.com/vicreg/resnet50.pth"),
    "simclr-rn50": SSLSpec("resnet50", VISSL + "simclr_rn50_800ep_simclr_8node_resnet_16_07_20."
                                               "7e8feed1/model_final_checkpoint_phase799.torch"),
    "mocov2-rn50": SSLSpec("resnet50", VISSL + "moco_v2_1node_lr.03_step_b32_zero_init/"
                                               "model_final_checkpoint_phase199.torch"),
    "jigsaw-rn50": SSLSpec("resnet50", VISSL + "jigsaw_rn50_in1k_ep105_perm2k_jigsaw_8gpu_resnet_"
                                               "17_07_20.db174a43/model_final_checkpoint_phase104"
                                               ".torch"),
    "rotnet-rn50": SSLSpec("resnet50", VISSL + "rotnet_rn50_in1k_ep105_rotnet_8gpu_resnet_17_07_20"
                                               ".46bada9f/model_final_checkpoint_phase125.torch"),
    "swav-rn50": SSLSpec("resnet50", VISSL + "swav_in1k_rn50_800ep_swav_8node_resnet_27_07_20."
                                             "a0a6b676/model_final_checkpoint_phase799.torch"),
    "pirl-rn50": SSLSpec("resnet50", VISSL + "pirl_jigsaw_4node_pirl_jigsaw_4node_resnet_22_07_20."
                                             "34377f59/model_final_checkpoint_phase799.torch"),
}

# prefixes stripped when converting a self-supervised ResNet-50 checkpoint to torchvision keys
RESNET_PREFIXES = ("module.encoder_q.", "module.backbone.", "module.", "backbone.",
                   "_feature_blocks.", "encoder.")


def resnet50_state_dict(checkpoint: dict) -> dict:
    """Torchvision resnet50 keys (without fc) from a VISSL / MoCo / DINO / hub checkpoint."""
    sd = checkpoint
    if "classy_state_dict" in sd:
        sd = sd["classy_state_dict"]["base_model"]["model"]["trunk"]
    for wrapper in ("model_state_dict", "state_dict", "model"):
        if isinstance(sd, dict) and wrapper in sd and isinstance(sd[wrapper], dict):
            sd = sd[wrapper]
    out = {}
    for key, value in sd.items():
        for prefix in RESNET_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        if key.startswith("fc.") or key.startswith("head") or key.startswith("projector"):
            continue
        out[key] = value
    return out
