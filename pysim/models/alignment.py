"""Feature alignment of a model-table entry (`"alignment": "gLocal"`), as thingsvision's align().

gLocal (Muttenthaler et al., 2023) publishes one affine transform per (model, module): a file
`transform.npz` holding `weights` (d x d'), `bias` (d', optional), and scalars `mean`, `std`.
The aligned features of a batch X (n x d, float) are ((X - mean) / std) @ weights + bias.
thingsvision 2.6.10 downloads the file for every batch from the gLocal repository,
<GLOCAL_URL>/<name>/<module>/transform.npz, where <name> is the model name, or for OpenCLIP
`OpenCLIP_<variant>_<dataset>` and for clip / DreamSim `<model_name>_<variant>`.

pysim keeps the file in the weights folder, `$TORCH_HOME/glocal/<name>/<module>/transform.npz`
(`--weights-dir W`: W/torch/glocal/...), filled by pysim-fetch-weights from the same URL, and
applies it in float64 to the float32 features of the entry's module (the result is stored as
float32, the dtype thingsvision's transform and features have).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pysim.config import ModelEntry
from pysim.errors import InputError

GLOCAL_URL = "https://raw.githubusercontent.com/LukasMut/gLocal/main/transforms/"
GLOCAL_SUBDIR = "glocal"  # under TORCH_HOME: the folder every workflow task already points at
GLOCAL_FILE = "transform.npz"
GLOCAL_KEYS = ("weights", "mean", "std")  # required; "bias" is optional (added when present)


def torch_home() -> Path:
    """TORCH_HOME as torch resolves it (default $XDG_CACHE_HOME/torch, ~/.cache/torch)."""
    default = os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", default)))


def glocal_model_name(entry: ModelEntry) -> str:
    """The model name gLocal publishes a transform under (thingsvision's naming)."""
    params = entry.model_parameters
    if entry.model_name == "OpenCLIP":
        return "_".join((entry.model_name, str(params.get("variant")), str(params.get("dataset"))))
    if entry.model_name in ("clip", "DreamSim"):
        return "_".join((entry.model_name, str(params.get("variant"))))
    return entry.model_name


@dataclass(frozen=True)
class AlignmentSource:
    """Where an entry's alignment transform comes from and where it is kept locally."""

    kind: str   # gLocal
    url: str
    path: Path  # the local copy in the weights folder

    def cached(self) -> bool:
        return self.path.is_file()

    def describe(self) -> str:
        return f"{self.kind} transform {self.url} ({'cached' if self.cached() else 'not cached'})"


def resolve_alignment(entry: ModelEntry) -> AlignmentSource | None:
    """The entry's alignment transform (None when the entry has no alignment); no download."""
    if entry.alignment is None:
        return None
    if entry.alignment != "gLocal":
        raise InputError(f"alignment {entry.alignment!r} is not implemented (known: gLocal)")
    parts = (glocal_model_name(entry), entry.module_name, GLOCAL_FILE)
    return AlignmentSource("gLocal", GLOCAL_URL + "/".join(parts),
                           torch_home().joinpath(GLOCAL_SUBDIR, *parts))


def fetch_alignment(src: AlignmentSource) -> Path:
    """Download the transform to its local path (atomically) and check that it loads."""
    import torch.hub

    from pysim.io import atomic_path

    src.path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(src.path) as tmp:
        torch.hub.download_url_to_file(src.url, str(tmp), progress=False)
        load_glocal(tmp)
    return src.path


def load_glocal(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a gLocal transform file; InputError naming the file if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"gLocal transform {path}: not a readable .npz file "
                         f"({type(exc).__name__})") from None
    missing = [k for k in GLOCAL_KEYS if k not in arrays]
    if missing:
        raise InputError(f"gLocal transform {path}: missing {', '.join(missing)} "
                         f"(has {', '.join(arrays) or 'nothing'})")
    if arrays["weights"].ndim != 2:
        raise InputError(f"gLocal transform {path}: 'weights' must be a matrix, got shape "
                         f"{arrays['weights'].shape}")
    return arrays


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class GLocalTransform:
    """Callable n x d features -> n x d' aligned features (float64 arithmetic, float32 out)."""

    def __init__(self, src: AlignmentSource):
        self.src = src
        arrays = load_glocal(src.path)
        self.dim_in, self.dim_out = arrays["weights"].shape
        self._arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()
                        if k in (*GLOCAL_KEYS, "bias")}
        self._device_arrays: dict[str, Any] = {}

    def _on(self, device) -> dict[str, Any]:
        import torch

        key = str(device)
        if key not in self._device_arrays:
            self._device_arrays = {key: {k: torch.as_tensor(v, dtype=torch.float64, device=device)
                                         for k, v in self._arrays.items()}}
        return self._device_arrays[key]

    def __call__(self, features):
        import torch

        if features.ndim != 2 or features.shape[1] != self.dim_in:
            raise InputError(f"gLocal transform {self.src.path}: expects n x {self.dim_in} "
                             f"features, got shape {tuple(features.shape)}")
        t = self._on(features.device)
        out = (features.to(torch.float64) - t["mean"]) / t["std"]
        out = out @ t["weights"]
        if "bias" in t:
            out = out + t["bias"]
        return out.to(torch.float32)

    def provenance(self) -> dict[str, Any]:
        """Root attributes of a features file made with this transform."""
        return {"alignment": self.src.kind, "alignment_url": self.src.url,
                "alignment_file": str(self.src.path),
                "alignment_sha256": sha256_file(self.src.path),
                "alignment_dim": [int(self.dim_in), int(self.dim_out)]}


def load_alignment(src: AlignmentSource | None):
    """The transform callable of a resolved alignment (None: no alignment)."""
    if src is None:
        return None
    if not src.cached():
        raise InputError(f"{src.kind} transform not available: {src.path} not found (run "
                         f"pysim-fetch-weights on a machine with network; source {src.url})")
    return GLocalTransform(src)
