"""The study's self-supervised models as thingsvision 2.6.10's `SSLExtractor` builds them, and
its one transform for all of them.

Transform (`study_transform`): thingsvision's default for every ssl model, as the study asked for
it (`get_transformations(resize_dim=256, crop_dim=224)`): torchvision `Resize(256)` (shorter
side, bilinear; on a PIL image, as pysim's CPU path and the study's WebDataset loader hold),
`CenterCrop(224)`, `ToTensor()`, `Normalize` with the ImageNet mean and std.

DINO and MAE ViTs: thingsvision builds its own copies of the reference architectures
(facebookresearch/dino `vision_transformer.py`; facebookresearch/mae `models_vit.py`, a timm
VisionTransformer subclass) and loads the official checkpoints. pysim builds timm's
VisionTransformer with the reference hyper-parameters (qkv bias, LayerNorm eps 1e-6, GELU MLP
of ratio 4, one class token, no head) and runs the reference token path itself
(`ReferenceViT.forward_features`): patch embedding, class token, position embeddings, blocks,
final norm; module names are the reference's (`blocks.<i>`, `norm`). DINO's blocks compute
attention explicitly (softmax(q k^T * scale) v, timm's `fused_attn` off) as its reference does;
MAE's are timm's own blocks, as in its reference. Position embeddings follow each reference:
- DINO resamples them at run time when the patch grid differs from the checkpoint's (bicubic
  with the scale factor (grid + 0.1) / checkpoint grid, as its `interpolate_pos_encoding`);
- MAE resamples a checkpoint's grid once on loading to the model's grid (bicubic,
  align_corners False), loads non-strictly (the decoder keys of a checkpoint are ignored, as
  thingsvision does) but refuses a checkpoint that lacks an encoder key (thingsvision would
  leave it at random init).
tests/test_ssl_models.py proves features equal to thingsvision 2.6.10's own model code (1e-5;
on the CPU they are bit-identical).

DINOv2: thingsvision calls `torch.hub.load("facebookresearch/dinov2", <entry>)`; pysim runs the
same hub repo's entry point: from `<TORCH_HOME>/hub/facebookresearch_dinov2_main` (torch.hub's
own cache folder of that repo, filled by pysim-fetch-weights) with `source="local"`, exactly
what torch.hub does with a cached repo, so an offline run touches no network. The repo runs only
while it is trusted (pysim.models.hub_trust: the study's repos by default, or the user's
`--trust-hub-repos` list); the digest of the code that ran is recorded as `hub_repos`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn

from pysim.config import ModelEntry
from pysim.errors import InputError
from pysim.models.loaders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Built,
    _input_size,
    _kwargs,
    load_checkpoint,
    load_state_file,
    run_hub_entry,
)
from pysim.models.resolve import RANDOM_SEED, Resolution

STUDY_RESIZE, STUDY_CROP = 256, 224


def study_transform(entry: ModelEntry | None = None) -> Callable:
    """thingsvision's transform of every ssl model (model_parameters.input_size: N and N)."""
    from torchvision import transforms as T

    size = _input_size(entry) if entry is not None else None
    resize, crop = (size, size) if size else (STUDY_RESIZE, STUDY_CROP)
    return T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(),
                      T.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))])


def _vit_class():
    from timm.models.vision_transformer import VisionTransformer

    class ReferenceViT(VisionTransformer):
        """timm's ViT running the DINO / MAE reference token path (see the module docstring)."""

        def __init__(self, runtime_resample: bool, **kwargs):
            super().__init__(**kwargs)
            self.runtime_resample = runtime_resample

        def position_embeddings(self, n_patches: int, height: int, width: int) -> torch.Tensor:
            """DINO: the checkpoint's grid resampled to the input's; MAE: as loaded."""
            n_ref = self.pos_embed.shape[1] - 1
            if not self.runtime_resample or (n_patches == n_ref and height == width):
                return self.pos_embed
            patch = self.patch_embed.patch_size[0]
            side = math.sqrt(n_ref)
            # the grid of the input, offset by 0.1 against rounding down (DINO issue 8)
            rows, cols = height // patch + 0.1, width // patch + 0.1
            dim = self.pos_embed.shape[-1]
            grid = self.pos_embed[:, 1:].reshape(1, int(side), int(side), dim)
            grid = nn.functional.interpolate(grid.permute(0, 3, 1, 2), mode="bicubic",
                                             scale_factor=(rows / side, cols / side))
            if grid.shape[-2:] != (int(rows), int(cols)):
                raise InputError(f"position embeddings resampled to {tuple(grid.shape[-2:])}, "
                                 f"not the input's patch grid {(int(rows), int(cols))}")
            grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
            return torch.cat((self.pos_embed[:, :1], grid), dim=1)

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            n, _, height, width = x.shape
            x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
            x = torch.cat((self.cls_token.expand(n, -1, -1), x), dim=1)
            x = self.pos_drop(x + self.position_embeddings(x.shape[1] - 1, height, width))
            x = self.blocks(x)
            return self.norm(x)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.forward_features(x)[:, 0]

    return ReferenceViT


def reference_vit(kind: str, vit_kwargs: dict, model_kwargs: dict | None = None,
                  input_size: int | None = None) -> nn.Module:
    """The DINO (`dino_vit`) or MAE (`mae_vit`) reference ViT; model_kwargs override the
    hyper-parameters (img_size, depth, ...: tests and the demo use tiny ones)."""
    args = {"img_size": 224, **vit_kwargs, "mlp_ratio": 4.0, "qkv_bias": True,
            "norm_layer": partial(nn.LayerNorm, eps=1e-6), "num_classes": 0,
            "global_pool": "token", "class_token": True, "drop_rate": 0.0}
    if kind == "mae_vit" and input_size:  # MAE has no run-time resampling: built at its input
        args["img_size"] = input_size
    args.update(model_kwargs or {})
    model = _vit_class()(runtime_resample=kind == "dino_vit", **args)
    if kind == "dino_vit":  # DINO's attention is the explicit softmax(q k^T * scale) v
        for block in model.blocks:
            block.attn.fused_attn = False
    return model


def resample_checkpoint_positions(model: nn.Module, state: dict) -> None:
    """MAE on loading: a checkpoint's position grid resampled to the model's (in place)."""
    pos = state.get("pos_embed")
    if pos is None:
        return
    n_patches = model.patch_embed.num_patches
    n_extra = model.pos_embed.shape[-2] - n_patches
    old, new = int((pos.shape[-2] - n_extra) ** 0.5), int(n_patches ** 0.5)
    if old == new:
        return
    dim = pos.shape[-1]
    grid = pos[:, n_extra:].reshape(-1, old, old, dim).permute(0, 3, 1, 2)
    grid = nn.functional.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    state["pos_embed"] = torch.cat((pos[:, :n_extra], grid.permute(0, 2, 3, 1).flatten(1, 2)),
                                   dim=1)


def _official_checkpoint(res: Resolution) -> dict:
    """The checkpoint at the spec's URL, through torch.hub's cache (downloaded when online)."""
    target = Path(res.cache_candidates[0])
    return load_checkpoint(res.extra["url"], target.name)  # weights-only (loaders)


def _load_vit_weights(model: nn.Module, kind: str, res: Resolution) -> None:
    if res.weights_file:  # a local file: a state_dict, or wrapped ({"model": ...}, ...)
        state = load_state_file(res.weights_file)
    else:
        checkpoint = _official_checkpoint(res)
        state = checkpoint["model"] if kind == "mae_vit" else checkpoint
        if not isinstance(state, dict):
            raise InputError(f"checkpoint {res.extra['url']}: not the official layout")
    if kind == "dino_vit":
        model.load_state_dict(state, strict=True)
        return
    state = dict(state)
    resample_checkpoint_positions(model, state)
    missing = model.load_state_dict(state, strict=False).missing_keys
    if missing:
        raise InputError(f"MAE checkpoint lacks encoder keys {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''}")


def build_ssl_vit(entry: ModelEntry, res: Resolution) -> Built:
    """DINO / MAE ViT with the official checkpoint (or a local file, or seeded random init)."""
    kind = res.extra["kind"]
    torch.manual_seed(RANDOM_SEED)
    model = reference_vit(kind, res.extra["vit"], _kwargs(entry), _input_size(entry))
    if res.pretrained:
        _load_vit_weights(model, kind, res)
    return model, study_transform(entry), model, 1


def build_dinov2(entry: ModelEntry, res: Resolution) -> Built:
    """A DINOv2 entry point of the facebookresearch/dinov2 hub repo (see the module docstring)."""
    repo = res.extra["repo"]
    pretrained = res.pretrained and not res.weights_file
    torch.manual_seed(RANDOM_SEED)
    model = run_hub_entry(repo, res.name, res, pretrained=pretrained, **_kwargs(entry))
    if res.weights_file:
        model.load_state_dict(load_state_file(res.weights_file), strict=True)
    return model, study_transform(entry), model, 1
