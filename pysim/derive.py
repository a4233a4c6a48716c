"""Derived datasets (DESIGN §3): features of BREEDS tasks and ImageNet subsets, sliced by rows
from one model's `wds/imagenet1k` features file, so ImageNet is neither copied nor extracted twice.

BREEDS: train keeps ImageNet train rows of the task's source classes, test keeps ImageNet test
rows of its target classes, and the label becomes the superclass. imagenet-subset-<N>k: N rows
per class of each split, drawn with a fixed seed from the targets alone (the same rows for
every model). Keys are kept; each split records its rows of the ImageNet split (`source_rows`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pysim.config import IMAGENET_ID, SPLIT_NAMES, derived_kind, subset_per_class
from pysim.errors import InputError
from pysim.feature_writer import FeatureWriter
from pysim.io import read_attrs, read_features

log = logging.getLogger(__name__)

# rows of features read and written at once (about this many bytes): memory stays bounded
BLOCK_BYTES = 64 << 20
# source attributes that describe the source dataset, not the model: not copied
SOURCE_ONLY_ATTRS = ("dataset", "pysim_version", "n_skipped_train", "n_skipped_test")


@dataclass(frozen=True)
class BreedsTask:
    """One BREEDS task: ImageNet class indices of each split and their superclass labels."""

    name: str
    n_superclasses: int
    source_classes: tuple[int, ...]
    target_classes: tuple[int, ...]
    superclass_of: dict[int, int]

    def classes(self, split: str) -> tuple[int, ...]:
        """ImageNet classes whose images form `split` (train: source, test: target)."""
        return self.source_classes if split == "train" else self.target_classes


def load_breeds_tasks() -> dict[str, BreedsTask]:
    """The BREEDS tasks shipped with pysim (pysim/data/breeds_tasks.json)."""
    text = resources.files("pysim.data").joinpath("breeds_tasks.json").read_text()
    return {name: BreedsTask(name, int(t["n_superclasses"]), tuple(t["source_classes"]),
                             tuple(t["target_classes"]),
                             {int(c): int(s) for c, s in t["superclass_of"].items()})
            for name, t in json.loads(text).items()}


def breeds_rows(targets: np.ndarray, task: BreedsTask, split: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """(rows of the split's classes in file order, their superclass labels)."""
    targets = np.asarray(targets, dtype=np.int64)
    rows = np.flatnonzero(np.isin(targets, task.classes(split)))
    labels = np.array([task.superclass_of[int(c)] for c in targets[rows]], dtype=np.int64)
    return rows.astype(np.int64), labels


def per_class_rows(targets: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted rows of `per_class` random samples of every class (a smaller class: all of it).

    Each class (ascending) gets its own permutation from one generator, whatever `per_class`
    is, so the subsets of one seed are nested: the 5-per-class rows hold the 1-per-class rows.
    """
    targets = np.asarray(targets, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = np.argsort(targets, kind="stable")  # rows grouped by class, ascending within one
    _, counts = np.unique(targets, return_counts=True)
    chosen = [rng.permutation(rows)[:per_class] for rows in np.split(order, np.cumsum(counts))
              if len(rows)]
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def select(dataset_id: str, split: str, targets: np.ndarray, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray]:
    """(rows of the ImageNet split, new targets) of one split of a derived dataset."""
    if derived_kind(dataset_id) == "breeds":
        return breeds_rows(targets, load_breeds_tasks()[dataset_id], split)
    split_seed = seed * len(SPLIT_NAMES) + SPLIT_NAMES.index(split)  # own draw per split
    rows = per_class_rows(targets, subset_per_class(dataset_id), split_seed)
    return rows, np.asarray(targets, dtype=np.int64)[rows]


def _source_splits(path: Path, dataset_id: str) -> list[str]:
    """Splits of the ImageNet file to derive from; BREEDS needs both."""
    attrs = read_attrs(path)
    if attrs.get("dataset") != IMAGENET_ID:
        raise InputError(f"{path}: features of dataset '{attrs.get('dataset')}', but "
                         f"'{dataset_id}' is derived from {IMAGENET_ID}")
    with h5py.File(path, "r") as f:
        splits = [s for s in SPLIT_NAMES if s in f]
    if derived_kind(dataset_id) == "breeds" and "test" not in splits:
        raise InputError(f"{path}: no 'test' split, which BREEDS task '{dataset_id}' tests on")
    return splits


def _stored_dtype(path: Path, split: str) -> str:
    with h5py.File(path, "r") as f:
        return str(f[split]["features"].dtype)


def _check_classes(dataset_id: str, split: str, targets: np.ndarray, labels: np.ndarray) -> None:
    """An empty derived split is bad input; classes missing from ImageNet only warn."""
    if len(labels) == 0:
        raise InputError(f"dataset '{dataset_id}': no {split} samples of its classes in the "
                         f"{IMAGENET_ID} features")
    if derived_kind(dataset_id) == "breeds":
        missing = set(load_breeds_tasks()[dataset_id].classes(split)) - set(targets.tolist())
        if missing:
            log.warning("%s %s: %d of its ImageNet classes have no samples", dataset_id, split,
                        len(missing))


def derive(source: str | os.PathLike, dataset_id: str, out: str | os.PathLike,
           seed: int = 0) -> dict[str, Any]:
    """Write the features file of a derived dataset from one model's ImageNet features file."""
    source, kind = Path(source), derived_kind(dataset_id)
    if kind is None:
        raise InputError(f"dataset '{dataset_id}' is not a derived dataset (a BREEDS task or "
                         "imagenet-subset-<N>k)")
    splits = _source_splits(source, dataset_id)
    attrs = {k: v for k, v in read_attrs(source).items() if k not in SOURCE_ONLY_ATTRS}
    counts = {}
    with FeatureWriter(out, dtype=_stored_dtype(source, "train")) as writer:
        for split in splits:
            targets = read_features(source, split, load_features=False).targets
            rows, labels = select(dataset_id, split, targets, seed)
            _check_classes(dataset_id, split, targets, labels)
            sink = writer.split(split)
            _copy_rows(source, split, rows, labels, sink)
            sink.group.create_dataset("source_rows", data=rows)
            counts[split] = len(rows)
        attrs.update(dataset=dataset_id, derived_from=IMAGENET_ID, derived_task=dataset_id)
        if kind == "breeds":
            attrs["n_superclasses"] = load_breeds_tasks()[dataset_id].n_superclasses
        else:
            attrs.update(derived_seed=seed, samples_per_class=subset_per_class(dataset_id))
        writer.set_attrs(attrs)
    return {"dataset": dataset_id, "model_id": attrs.get("model_id"), **counts}


def _copy_rows(source: Path, split: str, rows: np.ndarray, labels: np.ndarray, sink) -> None:
    """Append the rows block by block (stored dtype, original keys, new labels)."""
    with h5py.File(source, "r") as f:
        d = f[split]["features"].shape[1]
        row_bytes = max(1, d * f[split]["features"].dtype.itemsize)
    block = max(1, BLOCK_BYTES // row_bytes)
    for start in range(0, len(rows), block):
        part = read_features(source, split, rows=rows[start:start + block], dtype=None)
        sink.append(part.features, labels[start:start + block], part.keys)
