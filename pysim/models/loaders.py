"""Build a model from a Resolution with each source's own loading code.

Every builder returns (model, preprocess, forward, num_prefix_tokens). Random init
(`"pretrained": false`) is seeded so that the same entry always gives the same weights.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pysim.config import ModelEntry
from pysim.errors import InputError
from pysim.models.caches import hf_hub_cache
from pysim.models.resolve import ALIGN_REPO, RANDOM_SEED, Resolution, hub_repo_dir
from pysim.models.ssl_table import resnet50_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Built = tuple[torch.nn.Module, Callable, Callable, int]


def _kwargs(entry: ModelEntry) -> dict[str, Any]:
    kwargs = entry.model_parameters.get("model_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise InputError("model_parameters.model_kwargs must be a JSON object")
    return dict(kwargs)


def _input_size(entry: ModelEntry) -> int | None:
    size = entry.model_parameters.get("input_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 8):
        raise InputError(f"model_parameters.input_size must be an integer >= 8, got {size!r}")
    return size


def load_state_file(path: str) -> dict[str, torch.Tensor]:
    """A state_dict from a local file (.safetensors or torch pickle, tensors only)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    try:
        sd = load_checkpoint(path)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise InputError(f"weights file {path}: not a loadable state_dict "
                         f"({type(exc).__name__})") from None
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
            sd = sd[wrapper]
    if not isinstance(sd, dict):
        raise InputError(f"weights file {path}: does not hold a state_dict")
    return sd


def _checkpoint_globals() -> list:
    """The few non-tensor types known checkpoints hold, allowed besides torch's weights-only
    set: argparse.Namespace (training args in DINO / MAE-style checkpoints), numpy arrays and
    scalars (metrics stored with the weights). None of them runs code when unpickled."""
    import argparse

    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [argparse.Namespace, core.multiarray._reconstruct, core.multiarray.scalar,
            np.ndarray, np.dtype, *{type(np.dtype(t)) for t in ("f8", "f4", "i8", "i4", "?")}]


def load_checkpoint(path_or_url: str, file_name: str | None = None) -> Any:
    """A checkpoint (a local file, or a URL through torch.hub's cache) loaded weights-only: a
    file that needs any other pickled object is refused with one line naming it."""
    import pickle

    with torch.serialization.safe_globals(_checkpoint_globals()):
        try:
            if "://" in path_or_url:
                return torch.hub.load_state_dict_from_url(
                    path_or_url, map_location="cpu", weights_only=True, file_name=file_name)
            return torch.load(path_or_url, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            where = file_name or os.path.basename(path_or_url)
            lines = [line for line in str(exc).splitlines() if "GLOBAL" in line]
            what = lines[0].strip()[:200] if lines else type(exc).__name__
            raise InputError(f"checkpoint {where}: refused, it needs arbitrary pickled "
                             f"objects, not only tensors ({what})") from None


def imagenet_transform(crop: int = 224, resize: int = 256, mean=IMAGENET_MEAN,
                       std=IMAGENET_STD) -> Callable:
    """Resize (shorter side), center crop, tensor, normalise: the torchvision default."""
    from torchvision.transforms import v2

    return v2.Compose([v2.PILToTensor(), v2.Resize(resize, antialias=True), v2.CenterCrop(crop),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def build_timm(entry: ModelEntry, res: Resolution) -> Built:
    import timm
    from timm.data import create_transform, resolve_data_config

    kwargs = {**res.extra.get("default_kwargs", {}), **_kwargs(entry)}
    if res.weights_file:
        model = timm.create_model(res.name, pretrained=True,
                                  pretrained_cfg_overlay=dict(file=res.weights_file), **kwargs)
    elif not res.pretrained:
        torch.manual_seed(RANDOM_SEED)
        model = timm.create_model(res.name, pretrained=False, **kwargs)
    else:
        model = timm.create_model(res.name, pretrained=True, **kwargs)
    cfg = resolve_data_config(model=model)
    if "img_size" in kwargs and isinstance(kwargs["img_size"], int):
        cfg.update(input_size=(3, kwargs["img_size"], kwargs["img_size"]))
    size = _input_size(entry)
    if size is not None:
        cfg.update(input_size=(3, size, size), crop_pct=1.0)
    return model, create_transform(**cfg), model, getattr(model, "num_prefix_tokens", 1)


def build_torchvision(entry: ModelEntry, res: Resolution) -> Built:
    import torchvision.models as tvm
    from torchvision.transforms._presets import ImageClassification

    kwargs = _kwargs(entry)
    tag = res.extra.get("transforms_of")
    enum = tvm.get_model_weights(res.name)[tag] if tag else None
    if res.pretrained and not res.weights_file:
        model = tvm.get_model(res.name, weights=enum, **kwargs)
    else:
        torch.manual_seed(RANDOM_SEED)
        model = tvm.get_model(res.name, weights=None, **kwargs)
        if res.weights_file:
            model.load_state_dict(load_state_file(res.weights_file), strict=True)
    preset = enum.transforms() if enum is not None else ImageClassification(crop_size=224)
    size = _input_size(entry)
    if size is not None:
        preset = ImageClassification(crop_size=size, resize_size=size, mean=preset.mean,
                                     std=preset.std, interpolation=preset.interpolation)
    return model, preset, model, 1  # the weights' own transform (PIL in, tensor out)


def build_open_clip(entry: ModelEntry, res: Resolution) -> Built:
    import open_clip

    kwargs = _kwargs(entry)
    size = _input_size(entry)
    if size is not None:
        kwargs["force_image_size"] = size
    if res.weights_file:
        pretrained = res.weights_file
    elif not res.pretrained:
        torch.manual_seed(RANDOM_SEED)
        pretrained = None
    else:
        pretrained = res.tag
        if res.weight_source.startswith("url:"):  # the folder resolve looked in (HF tags: HF_HOME)
            kwargs["cache_dir"] = str(res.cache_dir)
    root = logging.getLogger()  # open_clip logs every build step at INFO on the root logger
    level = root.level
    root.setLevel(logging.ERROR if pretrained is None else logging.WARNING)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            res.name, pretrained=pretrained, **kwargs)
    finally:
        root.setLevel(level)
    return model, preprocess, lambda x: model.encode_image(x), 1


def _converted_resnet50(entry: ModelEntry, res: Resolution) -> dict:
    """Converted torchvision keys of a self-supervised ResNet-50 (download + convert once)."""
    target = Path(res.cache_candidates[0])
    if target.is_file():
        return load_state_file(str(target))
    checkpoint = load_checkpoint(res.extra["url"], f"{entry.model_name}.orig")
    converted = resnet50_state_dict(checkpoint)
    from pysim.io import atomic_path

    with atomic_path(target) as tmp:
        torch.save(converted, tmp)
    return converted


def build_resnet50(entry: ModelEntry, res: Resolution) -> Built:
    import torchvision.models as tvm

    torch.manual_seed(RANDOM_SEED)
    model = tvm.resnet50(weights=None)
    model.fc = torch.nn.Identity()
    if res.weights_file:
        model.load_state_dict(resnet50_state_dict(load_state_file(res.weights_file)), strict=True)
    elif res.pretrained:
        model.load_state_dict(_converted_resnet50(entry, res), strict=True)
    return model, _transform(entry, res), model, 1


def _transform(entry: ModelEntry, res: Resolution) -> Callable:
    """thingsvision's transform for the study's ssl models, else imagenet_transform."""
    if res.extra.get("study_transform"):
        from pysim.models.ssl_models import study_transform

        return study_transform(entry)
    size = _input_size(entry)
    return imagenet_transform(size, size) if size else imagenet_transform()


def run_hub_entry(repo: str, name: str, res: Resolution, also_runs: tuple[str, ...] = (),
                  **kwargs: Any) -> torch.nn.Module:
    """A trusted hub repo's entry point (pysim.models.hub_trust): the cached copy run locally
    (what torch.hub does with a cached repo), else fetched by torch.hub; the digests of the
    repos it runs go into res.extra["hub_repos"] (the features' provenance)."""
    from pysim.models.hub_trust import check_trusted, repo_digest

    folder = hub_repo_dir(repo)
    digests = {repo: check_trusted(repo, folder)}
    for other in also_runs:  # repos the entry point itself torch.hub-loads
        digests[other] = check_trusted(other, hub_repo_dir(other))
    if folder.is_dir():
        model = torch.hub.load(str(folder), name, source="local", **kwargs)
    else:  # online (pysim-fetch-weights): the user trusts this repo (checked above)
        model = torch.hub.load(repo, name, trust_repo=True, **kwargs)
        digests[repo] = repo_digest(folder) if folder.is_dir() else ""
        check_trusted(repo, folder)  # a pinned repo: the fetched copy must match the pin
    res.extra["hub_repos"] = {r: d for r, d in digests.items() if d}
    return model


def build_hub(entry: ModelEntry, res: Resolution) -> Built:
    torch.manual_seed(RANDOM_SEED)
    model = run_hub_entry(res.extra["repo"], res.name, res, tuple(res.extra.get("also_runs", ())),
                          pretrained=res.pretrained and not res.weights_file, **_kwargs(entry))
    if res.weights_file:
        model.load_state_dict(load_state_file(res.weights_file), strict=True)
    return model, _transform(entry, res), model, 1


def build_align(entry: ModelEntry, res: Resolution) -> Built:
    from transformers import AlignConfig, AlignModel

    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if res.pretrained:
        source = res.weights_file and str(Path(res.weights_file).parent) or ALIGN_REPO
        model = AlignModel.from_pretrained(source, local_files_only=offline,
                                           cache_dir=str(hf_hub_cache())).vision_model
    else:
        torch.manual_seed(RANDOM_SEED)
        model = AlignModel(AlignConfig()).vision_model
    transform = imagenet_transform(289, 289, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return model, transform, lambda x: model(pixel_values=x), 0
