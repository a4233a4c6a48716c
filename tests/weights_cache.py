"""Test helper: "pretrained" weights placed in the real cache layouts of a weights dir.

`place_pretrained_weights` builds each pretrained entry's architecture exactly as the entry
builds it (pysim's own loader, `"pretrained": false`), perturbs the weights with a fixed seed
(so they differ from the seeded random init), and writes the state dict where the source's own
loading code finds it offline under `pysim.models.caches.use_weights_dir(weights_dir)`:
- HF hub (timm `hf_hub_id`, OpenCLIP `hf_hub` tags): `huggingface/hub/models--<org>--<name>/`
  with `blobs/<sha256>`, `refs/main` (a revision) and `snapshots/<revision>/<file>` -> blob,
- torchvision (and timm URL weights): `torch/hub/checkpoints/<basename(url)>`,
- OpenCLIP URL tags: `open_clip/<basename(url)>` (none in open_clip 3.x: every URL tag also has
  an HF hub copy, which open_clip prefers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import torch

from pysim.config import load_models
from pysim.models import load_model, resolve
from pysim.models.caches import SUBDIRS

PERTURB_SEED = 1234


def perturbed_state(entry) -> dict[str, torch.Tensor]:
    """The entry's seeded random init, every parameter shifted by seeded noise (std 0.05).

    Small noise keeps activations of deep nets finite (redrawn N(0, 1) weights overflow a
    ResNet's features) while the weights still differ from the random init everywhere.
    """
    model = load_model(dataclasses.replace(entry, pretrained=False, weights=None))[0]
    gen = torch.Generator().manual_seed(PERTURB_SEED)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=gen, dtype=param.dtype))
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _save(state: dict[str, torch.Tensor], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)


def _hf_place(state, hub_dir: Path, repo_id: str, filename: str) -> Path:
    """Write one file into an HF hub cache as hf_hub_download leaves it; return the snapshot."""
    repo_id, _, ref = repo_id.partition("@")
    repo = hub_dir / f"models--{repo_id.replace('/', '--')}"
    tmp = repo / "blobs" / f"incomplete.{filename}"  # same suffix: the same format
    _save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    blob = tmp.with_name(digest)
    os.replace(tmp, blob)
    revision = hashlib.sha1(repo_id.encode()).hexdigest()  # a fixed fake commit
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / (ref or "main")).write_text(revision)
    snapshot = repo / "snapshots" / revision / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.unlink(missing_ok=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    return snapshot


def _hf_target(res) -> tuple[str, str]:
    """(repo id, file name) that the source's loader asks the hub cache for."""
    hub_id = res.weight_source.removeprefix("hf-hub:")
    if res.loader == "timm":
        from timm.models import get_pretrained_cfg

        return hub_id, get_pretrained_cfg(res.name).hf_hub_filename or "model.safetensors"
    if res.loader == "open_clip":
        repo, filename = os.path.split(hub_id)
        return repo, filename or "open_clip_model.safetensors"
    raise ValueError(f"no HF placement for loader {res.loader}")


def place_pretrained_weights(models_file: str | os.PathLike, model_ids: list[str],
                             weights_dir: str | os.PathLike) -> dict[str, Path]:
    """Place perturbed weights of each model in `weights_dir`; model id -> the file written."""
    models = load_models(models_file)
    root = Path(weights_dir)
    dirs = {var: root / sub for var, sub in SUBDIRS.items()}
    placed = {}
    for model_id in model_ids:
        entry = models[model_id]
        if not entry.pretrained or entry.weights:
            raise ValueError(f"{model_id}: not a pretrained cache entry")
        res = resolve(entry)
        state = perturbed_state(entry)
        kind, _, url = res.weight_source.partition(":")
        if kind == "hf-hub":
            placed[model_id] = _hf_place(state, dirs["HF_HOME"] / "hub", *_hf_target(res))
            continue
        if kind != "url" or res.loader not in ("torchvision", "timm", "open_clip"):
            raise ValueError(f"{model_id}: cannot place weights for {res.weight_source}")
        folder = dirs["PYSIM_OPENCLIP_CACHE"] if res.loader == "open_clip" else \
            dirs["TORCH_HOME"] / "hub" / "checkpoints"
        path = folder / os.path.basename(url.split("?")[0])
        _save(state, path)
        placed[model_id] = path
    return placed
