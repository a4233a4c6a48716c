"""The self-supervised model ids of the original study mapped to public implementations.

ViTs (DINO, DINOv2, MAE) go through their timm names; ResNet-50s use torchvision's
resnet50 (fc removed) with the published checkpoint converted to torchvision keys;
DINO XCiTs go through torch.hub (facebookresearch/dino), as in the original study.
"""

from __future__ import annotations

VISSL = "https://dl.fbaipublicfiles.com/vissl/model_zoo/"

# id -> ("timm", timm name) | ("resnet50", checkpoint url) | ("hub", "repo:ref", entry point)
SSL_MODELS: dict[str, tuple[str, ...]] = {
    "dino-vit-small-p8": ("timm", "vit_small_patch8_224.dino"),
    "dino-vit-small-p16": ("timm", "vit_small_patch16_224.dino"),
    "dino-vit-base-p8": ("timm", "vit_base_patch8_224.dino"),
    "dino-vit-base-p16": ("timm", "vit_base_patch16_224.dino"),
    "dinov2-vit-small-p14": ("timm", "vit_small_patch14_dinov2.lvd142m"),
    "dinov2-vit-base-p14": ("timm", "vit_base_patch14_dinov2.lvd142m"),
    "dinov2-vit-large-p14": ("timm", "vit_large_patch14_dinov2.lvd142m"),
    "dinov2-vit-giant-p14": ("timm", "vit_giant_patch14_dinov2.lvd142m"),
    "mae-vit-base-p16": ("timm", "vit_base_patch16_224.mae"),
    "mae-vit-large-p16": ("timm", "vit_large_patch16_224.mae"),
    "mae-vit-huge-p14": ("timm", "vit_huge_patch14_224.mae"),
    "dino-xcit-small-12-p16": ("hub", "facebookresearch/dino:main", "dino_xcit_small_12_p16"),
    "dino-xcit-small-12-p8": ("hub", "facebookresearch/dino:main", "dino_xcit_small_12_p8"),
    "dino-xcit-medium-24-p16": ("hub", "facebookresearch/dino:main", "dino_xcit_medium_24_p16"),
    "dino-xcit-medium-24-p8": ("hub", "facebookresearch/dino:main", "dino_xcit_medium_24_p8"),
    "dino-rn50": ("resnet50", "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/"
                              "dino_resnet50_pretrain.pth"),
    "barlowtwins-rn50": ("resnet50", "https://dl.fbaipublicfiles.com/barlowtwins/ljng/"
                                     "resnet50.pth"),
    "vicreg-rn50": ("resnet50", "https://dl.fbaipublicfiles.com/vicreg/resnet50.pth"),
    "simclr-rn50": ("resnet50", VISSL + "simclr_rn50_800ep_simclr_8node_resnet_16_07_20.7e8feed1/"
                                        "model_final_checkpoint_phase799.torch"),
    "mocov2-rn50": ("resnet50", VISSL + "moco_v2_1node_lr.03_step_b32_zero_init/"
                                        "model_final_checkpoint_phase199.torch"),
    "jigsaw-rn50": ("resnet50", VISSL + "jigsaw_rn50_in1k_ep105_perm2k_jigsaw_8gpu_resnet_17_07_"
                                        "20.db174a43/model_final_checkpoint_phase104.torch"),
    "rotnet-rn50": ("resnet50", VISSL + "rotnet_rn50_in1k_ep105_rotnet_8gpu_resnet_17_07_20."
                                        "46bada9f/model_final_checkpoint_phase125.torch"),
    "swav-rn50": ("resnet50", VISSL + "swav_in1k_rn50_800ep_swav_8node_resnet_27_07_20.a0a6b676/"
                                      "model_final_checkpoint_phase799.torch"),
    "pirl-rn50": ("resnet50", VISSL + "pirl_jigsaw_4node_pirl_jigsaw_4node_resnet_22_07_20."
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
