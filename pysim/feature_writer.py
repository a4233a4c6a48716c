"""Streaming writer of a features file (DESIGN §5): batches are appended to chunked,
resizable HDF5 datasets, so the host never holds more than one batch of features.

The file has the layout of `pysim.io.write_features` (groups per split with `features`
n x d float32/float16, `targets` int64, `keys` UTF-8 strings; root attributes with
`pysim_version` first) and `pysim.io.read_features` reads it unchanged. It is written under
a temporary name beside the target and renamed only when the `with` block ends without an
exception: an error (or a CUDA out-of-memory) leaves no file behind.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import h5py
import numpy as np

from pysim import __version__
from pysim.io import _attr, atomic_path

FEATURE_DTYPES = ("float32", "float16")
CHUNK_BYTES = 1 << 20  # size of one float32 features chunk (rows x d x 4 bytes)
KEY_CHUNK = 4096  # rows per chunk of `targets` and `keys`


class SplitWriter:
    """Appends batches of one split (group) of a features file."""

    def __init__(self, group: h5py.Group, dtype: np.dtype):
        self.group = group
        self.dtype = dtype
        self.n = 0
        self._features = self._targets = self._keys = None

    def _create(self, d: int) -> None:
        # rows per chunk from the float32 row size: float16 chunks are then exactly half
        rows = max(1, min(KEY_CHUNK, CHUNK_BYTES // max(1, d * 4)))
        self._features = self.group.create_dataset(
            "features", shape=(0, d), maxshape=(None, d), dtype=self.dtype, chunks=(rows, d))
        self._targets = self.group.create_dataset(
            "targets", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(KEY_CHUNK,))
        self._keys = self.group.create_dataset(
            "keys", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype("utf-8"),
            chunks=(KEY_CHUNK,))

    def append(self, features: np.ndarray, targets: Iterable[int], keys: Iterable[str]) -> None:
        """Append b rows: features b x d (cast to the file's dtype), b targets, b keys."""
        features = np.asarray(features)
        targets = np.asarray(targets, dtype=np.int64)
        keys = [str(k) for k in keys]
        if features.ndim != 2 or len(features) != len(targets) or len(keys) != len(targets):
            raise ValueError(f"append: inconsistent shapes (features {features.shape}, "
                             f"targets {targets.shape}, keys {len(keys)})")
        if self._features is None:
            self._create(features.shape[1])
        elif features.shape[1] != self._features.shape[1]:
            raise ValueError(f"append: {features.shape[1]} features per sample, the split has "
                             f"{self._features.shape[1]}")
        b = len(targets)
        if b == 0:
            return
        end = self.n + b
        for dset in (self._features, self._targets, self._keys):
            dset.resize(end, axis=0)
        self._features[self.n:end] = features.astype(self.dtype, copy=False)
        self._targets[self.n:end] = targets
        self._keys[self.n:end] = keys
        self.n = end


class FeatureWriter:
    """A features file written batch by batch; use as a context manager.

    >>> with FeatureWriter(path, dtype="float16") as w:
    ...     train = w.split("train")
    ...     train.append(feats, targets, keys)   # as many times as there are batches
    ...     w.set_attrs({"model_id": ..., "dataset": ...})
    """

    def __init__(self, path: str | os.PathLike, dtype: str = "float32"):
        if dtype not in FEATURE_DTYPES:
            raise ValueError(f"feature dtype must be one of {', '.join(FEATURE_DTYPES)}")
        self.path = path
        self.dtype = np.dtype(dtype)
        self._attrs: dict[str, Any] = {}
        self._stack: contextlib.ExitStack | None = None
        self._file: h5py.File | None = None
        self.splits: dict[str, SplitWriter] = {}

    def __enter__(self) -> FeatureWriter:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self._file = stack.enter_context(h5py.File(tmp, "w"))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        try:
            if exc_type is None:
                for key, value in {"pysim_version": __version__, **self._attrs}.items():
                    self._file.attrs[key] = _attr(value)
        except BaseException:
            stack.__exit__(*sys.exc_info())
            raise
        # closes the file, then renames it into place (or removes it after an exception)
        return bool(stack.__exit__(exc_type, exc, tb))

    def split(self, name: str) -> SplitWriter:
        """The writer of one split; its group is created now (in call order)."""
        if name in self.splits:
            raise ValueError(f"split '{name}' was already started")
        self.splits[name] = SplitWriter(self._file.create_group(name), self.dtype)
        return self.splits[name]

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Root attributes, written when the file is completed (after `pysim_version`)."""
        self._attrs.update(attrs)
