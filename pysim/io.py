"""Files between stages (DESIGN §5): atomic writes, features/similarity HDF5, subset JSON."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pysim import __version__
from pysim.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (indented, keys in insertion order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV atomically, without the index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_json(path: str | os.PathLike, reject_duplicates: bool = False) -> Any:
    """Read JSON; a missing or malformed file (or, if asked, a repeated key) is bad input."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None

    def no_duplicates(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise InputError(f"{path}: duplicate key '{key}'")
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=no_duplicates if reject_duplicates else None)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}") from None


# --- features files ---------------------------------------------------------------------

@dataclass
class SplitFeatures:
    """One split of a features file: n x d features, n targets, n sample keys."""

    features: np.ndarray
    targets: np.ndarray
    keys: np.ndarray  # numpy array of str

    def __len__(self) -> int:
        return len(self.targets)


def write_features(path: str | os.PathLike, splits: Mapping[str, SplitFeatures],
                   attrs: Mapping[str, Any]) -> None:
    """Write a features file: one group per split, root attributes (model_id, dataset, ...)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in {"pysim_version": __version__, **attrs}.items():
            f.attrs[key] = _attr(value)
        for name, split in splits.items():
            g = f.create_group(name)
            feats = np.asarray(split.features)
            if feats.dtype not in (np.float32, np.float16):
                feats = feats.astype(np.float32)
            g.create_dataset("features", data=feats)
            g.create_dataset("targets", data=np.asarray(split.targets, dtype=np.int64))
            g.create_dataset("keys", data=[str(k) for k in split.keys],
                             dtype=h5py.string_dtype("utf-8"))


def read_features(path: str | os.PathLike, split: str = "train",
                  load_features: bool = True) -> SplitFeatures:
    """Read one split of a features file; a missing file/split or bad layout is bad input."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if split not in f:
                raise InputError(f"{path}: no '{split}' split in features file")
            g = f[split]
            for name in ("features", "targets", "keys"):
                if name not in g:
                    raise InputError(f"{path}: '{split}' split has no '{name}' dataset")
            feats = g["features"][()] if load_features else np.empty((len(g["targets"]), 0))
            targets = g["targets"][()].astype(np.int64)
            keys = np.array([k.decode() if isinstance(k, bytes) else k for k in g["keys"][()]])
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 features file ({exc})") from None
    if feats.ndim != 2 or len(feats) != len(targets) or len(keys) != len(targets):
        raise InputError(f"{path}: '{split}' split has inconsistent shapes "
                         f"(features {feats.shape}, targets {targets.shape}, keys {keys.shape})")
    return SplitFeatures(feats, targets, keys)


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """Root attributes of an HDF5 file (features or similarity), JSON values decoded."""
    try:
        with h5py.File(path, "r") as f:
            return {k: _unattr(v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None


def has_split(path: str | os.PathLike, split: str) -> bool:
    """Whether a features file holds the given split."""
    with h5py.File(path, "r") as f:
        return split in f


# --- similarity files -------------------------------------------------------------------

@dataclass
class Similarities:
    """One dataset's similarity file: model ids (row order) and one m x m matrix per metric."""

    dataset: str
    model_ids: list[str]
    matrices: dict[str, np.ndarray]
    metric_attrs: dict[str, dict[str, Any]]


def write_similarities(path: str | os.PathLike, sims: Similarities,
                       attrs: Mapping[str, Any] | None = None) -> None:
    """Write a similarity file atomically (float64 matrices, metric parameters as attributes)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["dataset"] = sims.dataset
        f.attrs["model_ids"] = _attr(list(sims.model_ids))
        f.attrs["pysim_version"] = __version__
        for key, value in (attrs or {}).items():
            f.attrs[key] = _attr(value)
        for metric_id, matrix in sims.matrices.items():
            d = f.create_dataset(metric_id, data=np.asarray(matrix, dtype=np.float64))
            for key, value in sims.metric_attrs.get(metric_id, {}).items():
                d.attrs[key] = _attr(value)


def read_similarities(path: str | os.PathLike) -> Similarities:
    """Read a similarity file written by write_similarities."""
    try:
        with h5py.File(path, "r") as f:
            model_ids = [str(m) for m in _unattr(f.attrs["model_ids"])]
            matrices, metric_attrs = {}, {}
            for metric_id, d in f.items():
                matrices[metric_id] = d[()]
                metric_attrs[metric_id] = {k: _unattr(v) for k, v in d.attrs.items()}
            dataset = str(_unattr(f.attrs["dataset"]))
    except (OSError, KeyError) as exc:
        raise InputError(f"{path}: not a readable similarity file ({exc})") from None
    return Similarities(dataset, model_ids, matrices, metric_attrs)


# --- subset files -----------------------------------------------------------------------

def read_subset(path: str | os.PathLike) -> dict[str, Any]:
    """Read a subset JSON file (DESIGN §5) and check its fields."""
    subset = read_json(path)
    required = {"dataset", "split", "seed", "max_samples", "n_total", "indices"}
    if not isinstance(subset, dict) or not required <= subset.keys():
        raise InputError(f"{path}: subset file needs the fields {sorted(required)}")
    return subset


# --- attribute encoding -----------------------------------------------------------------

def _attr(value: Any) -> Any:
    """HDF5 attributes hold scalars and strings; anything structured is stored as JSON."""
    if isinstance(value, (str, int, float, bool, np.integer, np.floating)):
        return value
    if value is None:
        return "null"
    return json.dumps(value)


def _unattr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and (value[:1] in ("[", "{") or value == "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value
