"""One model registry: `load_model(entry)` -> (model, preprocess, extractor) for every source.

Sources (DESIGN §3): timm, torchvision, OpenCLIP (`custom` OpenCLIP_<variant>_<tag> entries and
`open_clip`), `ssl` ids of the original study, torch `hub`, Kakaobrain ALIGN (transformers) and
DreamSim (`custom`, pysim.models.dreamsim). An entry's `alignment` (gLocal,
pysim.models.alignment) transforms the primary module's features after extraction.
`resolve_report` maps a model table to loaders and weight sources without downloading;
`check_weights` also requires every pretrained model's weights in the local caches, which
`pysim.models.caches.use_weights_dir` points at one folder.

Besides the seed keys, `model_parameters` may hold `model_kwargs` (passed to the source's
constructor, e.g. timm `img_size`, open_clip `vision_cfg`) and `input_size` (square resize +
center crop of the model's own preprocessing, e.g. 32 for the demo models).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from pysim.config import ModelEntry
from pysim.errors import InputError
from pysim.models.alignment import load_alignment
from pysim.models.extractor import FeatureExtractor, expand_modules, token_mode
from pysim.models.resolve import Resolution, check_weights, resolve, resolve_report, weights_path
from pysim.registry import MODEL_LOADERS, load

__all__ = ["FeatureExtractor", "Resolution", "check_weights", "describe_transform", "load_model",
           "resolve", "resolve_report", "weights_path", "offline_default"]

log = logging.getLogger(__name__)
VERSIONED_PACKAGES = ("torch", "torchvision", "timm", "open_clip_torch", "pillow", "numpy",
                      "transformers")


def offline_default() -> bool:
    """Offline unless asked otherwise when HF_HUB_OFFLINE=1 is set (cluster compute nodes)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def _enter_offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = True


def describe_transform(transform: Any) -> dict[str, Any]:
    """Resize, crop, mean, std and interpolation of a torchvision-style transform pipeline."""
    out: dict[str, Any] = {}
    if hasattr(transform, "crop_size") and hasattr(transform, "resize_size"):  # torchvision preset
        return {"resize": list(transform.resize_size), "crop": list(transform.crop_size),
                "interpolation": str(transform.interpolation.value),
                "mean": list(transform.mean), "std": list(transform.std)}
    for t in getattr(transform, "transforms", [transform]):
        name = type(t).__name__
        if "Resize" in name and hasattr(t, "size"):
            out["resize"] = t.size if isinstance(t.size, int) else list(t.size)
            if hasattr(t, "interpolation"):
                out["interpolation"] = str(getattr(t.interpolation, "value", t.interpolation))
        elif "CenterCrop" in name:
            out["crop"] = list(t.size) if not isinstance(t.size, int) else t.size
        elif name == "Normalize":
            out["mean"] = [round(float(v), 6) for v in t.mean]
            out["std"] = [round(float(v), 6) for v in t.std]
    return out


def transform_text(transform: Any) -> str:
    """The exact preprocessing pipeline as one line (its repr, whitespace collapsed)."""
    return " ".join(repr(transform).split())


def _sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(model) -> str:
    """Hash of a model's state_dict (names, dtypes, shapes, bytes), independent of device."""
    import torch

    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the features."""
    out = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance(entry: ModelEntry, res: Resolution, model, preprocess) -> dict[str, Any]:
    """What was loaded: source, name, tag, weight source, the file read and its hash, preprocess.

    `weights_file` is the local file or cache entry the weights came from ("" for random init);
    `architecture_source` the code that builds the architecture, `transform` the exact
    preprocessing pipeline and `transform_source` where it comes from.
    """
    files = [res.weights_file] if res.weights_file else \
        [p for p in res.cache_candidates if Path(p).is_file()] if res.pretrained else []
    if files:
        sha, hash_of = _sha256_file(files[0]), "file"
    else:
        sha, hash_of = state_dict_sha256(model), "state_dict"
    return {"source": entry.source, "loader": res.loader, "resolved_name": res.name,
            "pretrained_tag": res.tag or "", "pretrained": res.pretrained,
            "weight_source": res.weight_source, "weights_file": str(files[0]) if files else "",
            "weights_sha256": sha, "weights_hash_of": hash_of,
            "architecture_source": res.architecture_source, "transform": transform_text(preprocess),
            "transform_source": res.transform_source,
            "preprocessing": describe_transform(preprocess), "package_versions": package_versions(),
            **({"hub_repos": res.extra["hub_repos"]} if res.extra.get("hub_repos") else {})}


def load_model(entry: ModelEntry, base_dir: str | os.PathLike | None = None,
               offline: bool | None = None):
    """Build (model, preprocess, extractor) for a model-table entry, in eval mode on the CPU.

    `base_dir` resolves a relative `weights` path; with `offline` (default: HF_HUB_OFFLINE=1)
    missing weights end in one InputError naming them instead of a download.
    """
    offline = offline_default() if offline is None else offline
    res = resolve(entry, base_dir)
    if offline:
        _enter_offline()
        if not res.cached():
            raise InputError(f"model '{entry.model_id}': weights not available offline: "
                             f"{res.weight_source} is not in the local cache {res.cache_dir} (run "
                             "pysim-fetch-weights on a machine with network, or set 'weights')")
    try:
        align = load_alignment(res.alignment)  # before the model: a missing file fails fast
    except InputError as exc:
        raise InputError(f"model '{entry.model_id}': {exc}") from None
    tokens = token_mode(entry.model_parameters)
    try:
        model, preprocess, forward, n_prefix = load(MODEL_LOADERS, res.loader)(entry, res)
    except InputError as exc:
        raise InputError(f"model '{entry.model_id}': {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one line
        log.debug("loading %s failed", entry.model_id, exc_info=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(f"model '{entry.model_id}': cannot load {res.loader} '{res.name}' "
                         f"from {res.weight_source}: {type(exc).__name__}: {first[:300]}") from None
    model.eval()
    modules = expand_modules(model, entry.modules)
    prov = provenance(entry, res, model, preprocess)
    prov.update(align.provenance() if align is not None else {"alignment": ""})
    extractor = FeatureExtractor(model, modules[0], forward, tokens, n_prefix, prov,
                                 modules=modules, pooling=entry.pooling, multi=entry.multi)
    extractor.feature_transform = align
    return model, preprocess, extractor
