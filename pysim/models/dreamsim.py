"""DreamSim (Fu et al., 2023) single-backbone models, as thingsvision 2.6.10 extracts them.

thingsvision's custom model `DreamSim` (model_parameters.variant) wraps `dreamsim.dreamsim()`
of the dreamsim package the study pins (0.1.2): a `PerceptualModel` whose `embed(x)` is taken
at module `model.mlp` (an identity: the LoRA-tuned models have no MLP head), so its output is
the embedding itself:

- `open_clip_vitb32`: OpenCLIP ViT-B/32 (LAION-400M) converted to a DINO-layout ViT: a
  LayerNorm after the position embedding, all LayerNorms eps 1e-5; embedding = final norm of the
  class token @ proj (768 -> 512). Input normalised with the CLIP mean / std.
- `dino_vitb16`: DINO ViT-B/16 (torch.hub facebookresearch/dino, its official checkpoint);
  embedding = the class token of block 11's output (the last block; before the final norm),
  768-d.
  Input normalised with the ImageNet mean / std.

Both backbones carry LoRA adapters (peft 0.1.0 format) on every block's qkv projection. With one
target module peft 0.1.0 builds a `MergedLinear` with enable_lora [q, k, v] = [True, False, True]:
qkv(x) = x W^T + b + scaling * zero_pad(B(A x)), A: 2r x d, B: a 1x1 convolution in two groups
(q rows from A's first r outputs, v rows from the last r; k rows unchanged), scaling =
lora_alpha / r (adapter_config.json). pysim adds scaling * (B @ A) to W once at load (the same
function; dreamsim runs it unmerged). Preprocessing: Resize((224, 224), bicubic) of the RGB image,
ToTensor (no normalisation: the model normalises). The backbone is timm's VisionTransformer
(same computation as the DINO code dreamsim uses); its width and depth are read from the
checkpoint, heads = width / 64 as in every DINO / CLIP ViT.

Weights live where thingsvision puts them, `$TORCH_HOME/dreamsim` (`--weights-dir W`:
W/torch/dreamsim): the unzipped release archive of dreamsim 0.1.2 and, for dino_vitb16, the
DINO checkpoint at `checkpoints/` (dreamsim points torch.hub there). pysim-fetch-weights
downloads both from the URLs dreamsim 0.1.2 and DINO's hubconf use.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from pysim.config import ModelEntry
from pysim.errors import InputError
from pysim.models.alignment import torch_home
from pysim.models.resolve import RANDOM_SEED, Resolution

RELEASE = "https://github.com/ssundaram21/dreamsim/releases/download/v0.1.2/"
DINO_VITB16_URL = ("https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/"
                   "dino_vitbase16_pretrain.pth")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMG_SIZE = 224
CLS_LAYER = 11  # dreamsim's _extract_cls: the output of block 11 (the last of a ViT-B)
DEFAULT_VARIANT = "open_clip_vitb32"  # thingsvision's default


@dataclass(frozen=True)
class Variant:
    """One DreamSim single-backbone model: its files and how its embedding is taken."""

    name: str
    patch: int
    backbone: str        # backbone checkpoint, relative to the dreamsim folder
    backbone_url: str | None  # where that file comes from (None: the release archive)
    feature: str         # embedding: norm(cls) @ proj | cls: last block's cls token
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def archive_url(self) -> str:
        return f"{RELEASE}dreamsim_{self.name}_checkpoint.zip"

    @property
    def lora_dir(self) -> str:
        return f"{self.name}_single_lora"


VARIANTS = {
    "open_clip_vitb32": Variant("open_clip_vitb32", 32, "open_clip_vitb32_pretrain.pth.tar",
                                None, "embedding", CLIP_MEAN, CLIP_STD),
    "dino_vitb16": Variant("dino_vitb16", 16, "checkpoints/dino_vitbase16_pretrain.pth",
                           DINO_VITB16_URL, "cls", IMAGENET_MEAN, IMAGENET_STD),
}


class DreamSimResolution(Resolution):
    """A DreamSim model needs every one of its files (adapter, its config, backbone)."""

    def cached(self) -> bool:
        return not self.pretrained or all(Path(p).is_file() for p in self.cache_candidates)


def dreamsim_dir() -> Path:
    """thingsvision's DreamSim cache: $TORCH_HOME/dreamsim."""
    return torch_home() / "dreamsim"


def resolve_dreamsim(entry: ModelEntry, wfile: str | None) -> Resolution:
    """A `custom` DreamSim entry: model_parameters.variant (default open_clip_vitb32)."""
    name = entry.model_parameters.get("variant", DEFAULT_VARIANT)
    variant = VARIANTS.get(name)
    if variant is None:
        raise InputError(f"DreamSim variant {name!r} is not implemented "
                         f"(known: {', '.join(VARIANTS)})")
    if wfile is not None:
        raise InputError("DreamSim takes its files from the weights folder "
                         "($TORCH_HOME/dreamsim), not from 'weights'")
    res = DreamSimResolution(entry.model_id, "dreamsim", f"DreamSim {name}", name,
                             extra={"variant": name})
    if not entry.pretrained:
        res.weight_source = f"random (seed {RANDOM_SEED})"
        return res
    root = dreamsim_dir()
    res.weight_source = f"url:{variant.archive_url}"
    if variant.backbone_url is not None:
        res.weight_source += f" + url:{variant.backbone_url}"
    res.cache_dir = root
    res.cache_candidates = [root / variant.lora_dir / "adapter_model.bin",
                            root / variant.lora_dir / "adapter_config.json",
                            root / variant.backbone]
    return res


def download(variant: Variant, root: Path) -> None:
    """Fetch the release archive (unzipped into `root`) and, if apart, the backbone file."""
    from pysim.io import atomic_path

    root.mkdir(parents=True, exist_ok=True)
    if not (root / variant.lora_dir / "adapter_model.bin").is_file():
        with atomic_path(root / "pretrained.zip") as tmp:
            torch.hub.download_url_to_file(variant.archive_url, str(tmp), progress=False)
            with zipfile.ZipFile(tmp) as archive:
                archive.extractall(root)
    target = root / variant.backbone
    if variant.backbone_url is not None and not target.is_file():
        with atomic_path(target) as tmp:
            torch.hub.download_url_to_file(variant.backbone_url, str(tmp), progress=False)


def _load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise InputError(f"DreamSim file {path}: not loadable ({type(exc).__name__})") from None


def backbone_state(variant: Variant, root: Path) -> tuple[dict, torch.Tensor | None]:
    """The backbone's DINO-layout state_dict and, for the embedding variants, proj."""
    sd = _load(root / variant.backbone)
    if variant.feature == "embedding":
        if not isinstance(sd.get("state_dict"), dict) or "proj" not in sd["state_dict"]:
            raise InputError(f"DreamSim file {root / variant.backbone}: expected "
                             "{'state_dict': {..., 'proj'}}")
        sd = dict(sd["state_dict"])
        return sd, sd.pop("proj")
    return dict(sd), None


# the adapter keys dreamsim 0.1.2 loads: its training code saved them with the prefix of the
# doubly wrapped PeftModel(PeftModel(ViTModel)) that dreamsim.dreamsim() builds; keys under any
# other prefix would be ignored there (load_state_dict strict=False), so pysim refuses them
LORA_PREFIX = "base_model.model.base_model.model."
LORA_KEY = re.compile(r"blocks\.(\d+)\.attn\.qkv\.lora_([AB])\.weight$")


def _lora_delta(a: torch.Tensor, b: torch.Tensor, enable: list[bool] | None, r: int,
                out: int) -> torch.Tensor:
    """B @ A as the qkv weight's shape: peft 0.1.0 Linear (A r x d, B out x r) or MergedLinear
    (A (2r) x d, B a grouped 1x1 conv (2 out/3) x r x 1; zero rows for the disabled slot)."""
    a, b = a.double(), b.double()
    if enable is None:
        return b @ a
    if len(enable) == 0 or out % len(enable) or sum(enable) != 2:
        raise InputError(f"LoRA enable_lora {enable}: peft 0.1.0 MergedLinear expects two "
                         "enabled slots")
    part = out // len(enable)
    delta = a.new_zeros(out, a.shape[1])
    for k, slot in enumerate(i for i, on in enumerate(enable) if on):
        delta[slot * part:(slot + 1) * part] = b[k * part:(k + 1) * part, :, 0] \
            @ a[k * r:(k + 1) * r]
    return delta


def lora_deltas(lora_dir: Path, out: int) -> dict[int, torch.Tensor]:
    """Block index -> scaling * (B @ A) added to that block's qkv weight (out rows), from a
    peft 0.1.0 adapter folder (adapter_config.json, adapter_model.bin)."""
    config = json.loads((lora_dir / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA" or config.get("target_modules") != ["qkv"]:
        raise InputError(f"DreamSim adapter {lora_dir}: expected a LoRA adapter on 'qkv', got "
                         f"{config.get('peft_type')} on {config.get('target_modules')}")
    r, enable = int(config["r"]), config.get("enable_lora")
    weights = _load(lora_dir / "adapter_model.bin")
    parts: dict[tuple[int, str], torch.Tensor] = {}
    for key, value in weights.items():
        match = LORA_KEY.search(key)
        if match is None or not key.startswith(LORA_PREFIX):
            continue
        slot = (int(match.group(1)), match.group(2))
        if slot in parts and not torch.equal(parts[slot], value):
            raise InputError(f"DreamSim adapter {lora_dir}: two different values for {key}")
        parts[slot] = value
    if not parts:
        raise InputError(f"DreamSim adapter {lora_dir}: no LoRA weights under the prefix "
                         f"'{LORA_PREFIX}' that dreamsim 0.1.2 loads")
    scaling = float(config["lora_alpha"]) / r  # peft 0.1.0: lora_alpha / r
    blocks = sorted({i for i, _ in parts})
    return {i: scaling * _lora_delta(parts[(i, "A")], parts[(i, "B")], enable, r, out)
            for i in blocks}


def make_vit(variant: Variant, dim: int = 768, depth: int = 12, hidden: int = 3072) -> nn.Module:
    """timm's ViT in the DINO layout dreamsim uses (the open_clip one with a norm_pre LayerNorm)."""
    from timm.models.vision_transformer import VisionTransformer

    eps = 1e-5 if variant.feature == "embedding" else 1e-6
    vit = VisionTransformer(img_size=IMG_SIZE, patch_size=variant.patch, num_classes=0,
                            global_pool="token", embed_dim=dim, depth=depth,
                            num_heads=max(dim // 64, 1), mlp_ratio=hidden / dim, qkv_bias=True,
                            norm_layer=partial(nn.LayerNorm, eps=eps), act_layer=nn.GELU)
    if variant.feature == "embedding":  # dreamsim replaces DINO's pos_drop with a LayerNorm
        vit.norm_pre = nn.LayerNorm(dim, eps=1e-5)
    return vit


class PerceptualModel(nn.Module):
    """Normalise, backbone, embedding; `mlp` (identity) is the module thingsvision reads."""

    def __init__(self, variant: Variant, vit: nn.Module, proj: torch.Tensor | None):
        super().__init__()
        self.variant = variant
        self.vit = vit
        self.register_buffer("mean", torch.tensor(variant.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(variant.std).view(1, 3, 1, 1))
        self.register_buffer("proj", proj if proj is not None else torch.empty(0))
        self.mlp = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vit = self.vit
        tokens = vit.patch_embed((x - self.mean) / self.std)
        tokens = vit.norm_pre(vit._pos_embed(tokens))
        if self.variant.feature == "cls":
            return self.mlp(vit.blocks[:CLS_LAYER + 1](tokens)[:, 0])
        return self.mlp(vit.norm(vit.blocks(tokens))[:, 0] @ self.proj)


class DreamSimModel(nn.Module):
    """thingsvision's wrapper: the perceptual model under `model`."""

    def __init__(self, model: PerceptualModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _pretrained(variant: Variant, root: Path) -> PerceptualModel:
    sd, proj = backbone_state(variant, root)
    if "pos_drop.weight" in sd:  # the DINO-layout name of the open_clip pre-norm
        sd["norm_pre.weight"], sd["norm_pre.bias"] = sd.pop("pos_drop.weight"), \
            sd.pop("pos_drop.bias")
    dim, depth = sd["cls_token"].shape[-1], 1 + max(
        int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    if variant.feature == "cls" and depth <= CLS_LAYER:
        raise InputError(f"DreamSim file {root / variant.backbone}: {depth} blocks, the class "
                         f"token is read after block {CLS_LAYER}")
    with torch.device("meta"):  # no random init: every tensor comes from the checkpoint
        vit = make_vit(variant, dim, depth, sd["blocks.0.mlp.fc1.weight"].shape[0])
    vit.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True, assign=True)
    deltas = lora_deltas(root / variant.lora_dir, 3 * dim)
    if sorted(deltas) != list(range(depth)):
        raise InputError(f"DreamSim adapter {root / variant.lora_dir}: LoRA weights for blocks "
                         f"{sorted(deltas)}, the backbone has {depth}")
    with torch.no_grad():
        for i, delta in deltas.items():
            qkv = vit.blocks[i].attn.qkv.weight
            qkv.copy_((qkv.double() + delta).to(qkv.dtype))
    return PerceptualModel(variant, vit, proj.float() if proj is not None else None)


def preprocess_transform():
    """thingsvision's DreamSim preprocessing: Resize((224, 224), bicubic), ToTensor."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize((IMG_SIZE, IMG_SIZE), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor()])


def build_dreamsim(entry: ModelEntry, res: Resolution):
    """(model, preprocess, forward, num_prefix_tokens) of a DreamSim entry."""
    variant = VARIANTS[res.extra["variant"]]
    if res.pretrained:
        root = dreamsim_dir()
        if not res.cached():
            download(variant, root)
        model = _pretrained(variant, root)
    else:
        torch.manual_seed(RANDOM_SEED)
        proj = torch.randn(768, 512) * 768 ** -0.5 if variant.feature == "embedding" else None
        model = PerceptualModel(variant, make_vit(variant), proj)
    wrapper = DreamSimModel(model)
    return wrapper, preprocess_transform(), wrapper, 1
