"""Where weight caches live: one `--weights-dir W` holds them all, each moved by its variable.

`W/huggingface` is HF_HOME (hub cache `W/huggingface/hub`), `W/torch` is TORCH_HOME (torch hub
checkpoints `W/torch/hub/checkpoints`, torch.hub repos `W/torch/hub`), `W/open_clip` is
PYSIM_OPENCLIP_CACHE (OpenCLIP URL downloads). Without `--weights-dir` the variables are used as
they are, and an unset PYSIM_OPENCLIP_CACHE means open_clip's own default folder (~/.cache/clip).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

WEIGHTS_DIR_ENV = "PYSIM_WEIGHTS_DIR"  # default of the entry points' --weights-dir
OPENCLIP_CACHE_ENV = "PYSIM_OPENCLIP_CACHE"
# open_clip's own default (open_clip.pretrained.download_pretrained_from_url), used only when
# PYSIM_OPENCLIP_CACHE is unset; pysim passes the folder to open_clip, so both always agree
OPENCLIP_DEFAULT_CACHE = "~/.cache/clip"
# sub-folder of the weights dir -> the variable that points a cache at it
SUBDIRS = {"HF_HOME": "huggingface", "TORCH_HOME": "torch", OPENCLIP_CACHE_ENV: "open_clip"}
# variables that would override HF_HOME's hub cache; dropped by use_weights_dir
_HF_OVERRIDES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE",
                 "HUGGINGFACE_ASSETS_CACHE", "HF_XET_CACHE")


def weights_dir_env(weights_dir: str | os.PathLike) -> dict[str, str]:
    """The three cache variables for a weights dir (absolute paths, symlinks kept)."""
    root = Path(os.path.abspath(Path(weights_dir).expanduser()))
    return {var: str(root / sub) for var, sub in SUBDIRS.items()}


def use_weights_dir(weights_dir: str | os.PathLike) -> dict[str, str]:
    """Point every weight cache of this process at `weights_dir` (also an imported huggingface_hub).

    Sets HF_HOME, TORCH_HOME and PYSIM_OPENCLIP_CACHE, drops HF_HUB_CACHE & co. (they would
    override HF_HOME) and returns the three variables.
    """
    env = weights_dir_env(weights_dir)
    for var in _HF_OVERRIDES:
        os.environ.pop(var, None)
    os.environ.update(env)
    hf_constants = sys.modules.get("huggingface_hub.constants")
    if hf_constants is not None:  # its cache paths are read from the environment at import
        importlib.reload(hf_constants)  # in place: `constants.X` lookups see the new values
        manager = sys.modules.get("huggingface_hub.utils._cache_manager")
        if manager is not None:
            manager.HF_HUB_CACHE = hf_constants.HF_HUB_CACHE
    return env


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache as huggingface_hub sees it now."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def open_clip_cache_dir() -> Path:
    """OpenCLIP's URL download folder: PYSIM_OPENCLIP_CACHE, else open_clip's own default."""
    return Path(os.environ.get(OPENCLIP_CACHE_ENV) or OPENCLIP_DEFAULT_CACHE).expanduser()
