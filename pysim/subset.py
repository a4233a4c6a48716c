"""Stratified, seeded subset of a dataset's train split (DESIGN §1.2, §5).

Classes are sampled as evenly as their sizes allow (water-filling: small classes are taken
whole, the rest share the remaining budget equally), so every model sees the same images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pysim.errors import InputError
from pysim.io import read_attrs, read_features, write_json


def class_quotas(sizes: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Samples to take per class: min(size, share), the leftover spread over the big classes.

    `sizes` are the class sizes (in class order); the classes that get one extra sample
    when the budget does not divide evenly are drawn with `rng`.
    """
    quotas = np.zeros(len(sizes), dtype=np.int64)
    remaining, order = budget, np.argsort(sizes, kind="stable")
    for pos, cls in enumerate(order):
        share = remaining // (len(order) - pos)
        if sizes[cls] <= share:
            quotas[cls] = sizes[cls]
            remaining -= sizes[cls]
            continue
        rest = order[pos:]  # every one of these classes has more than `share` samples
        quotas[rest] = share
        extra = remaining - share * len(rest)
        quotas[np.sort(rng.choice(rest, size=extra, replace=False))] += 1
        break
    return quotas


def stratified_indices(targets: np.ndarray, max_samples: int, seed: int) -> np.ndarray:
    """Sorted indices of at most max_samples samples, classes as balanced as their sizes allow."""
    targets = np.asarray(targets)
    if len(targets) <= max_samples:
        return np.arange(len(targets), dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, inverse, sizes = np.unique(targets, return_inverse=True, return_counts=True)
    quotas = class_quotas(sizes, max_samples, rng)
    chosen = [rng.choice(np.flatnonzero(inverse == c), size=q, replace=False)
              for c, q in enumerate(quotas) if q]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def make_subset(features: str | os.PathLike, out: str | os.PathLike, max_samples: int = 10000,
                seed: int = 0) -> dict[str, Any]:
    """Draw the subset of one features file's train split and write the subset JSON atomically."""
    if max_samples < 1:
        raise InputError(f"--max-samples must be at least 1, got {max_samples}")
    split = read_features(features, "train", load_features=False)
    if len(split) == 0:
        raise InputError(f"{features}: the train split is empty")
    dataset = read_attrs(features).get("dataset") or Path(features).parent.name
    indices = stratified_indices(split.targets, max_samples, seed)
    subset = {"dataset": str(dataset), "split": "train", "seed": seed,
              "max_samples": max_samples, "n_total": len(split),
              "indices": [int(i) for i in indices]}
    write_json(out, subset)
    return subset
