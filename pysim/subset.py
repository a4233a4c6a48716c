"""Stratified, seeded subset of a dataset's train split (DESIGN §1.2, §5).

Two rules for the samples per class, both leaving datasets at or under `max_samples` whole:
`per_class` (the original study's, the default) takes ceil(max_samples / C) images of every
class, the whole class when it is smaller, and does not hand the unused budget to other classes;
`balanced` water-fills: small classes are taken whole and the rest share the remaining budget
equally, so the subset has exactly `max_samples` images.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from pysim.errors import InputError
from pysim.io import read_attrs, read_features, split_digests, write_json

MODES = ("per_class", "balanced")


def per_class_quotas(sizes: np.ndarray, budget: int) -> np.ndarray:
    """The original rule: min(size, ceil(budget / C)) per class, no redistribution."""
    return np.minimum(np.asarray(sizes, dtype=np.int64), math.ceil(budget / len(sizes)))


def class_quotas(sizes: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Water-filling: min(size, share) per class, the leftover spread over the big classes.

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


def stratified_indices(targets: np.ndarray, max_samples: int, seed: int,
                       mode: str = "per_class") -> np.ndarray:
    """Sorted indices of the subset: all samples when there are at most max_samples, else the
    per-class quotas of `mode` drawn at random with `seed`."""
    if mode not in MODES:
        raise InputError(f"unknown subset mode '{mode}' (expected {' or '.join(MODES)})")
    targets = np.asarray(targets)
    if len(targets) <= max_samples:
        return np.arange(len(targets), dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, inverse, sizes = np.unique(targets, return_inverse=True, return_counts=True)
    if mode == "per_class":
        quotas = per_class_quotas(sizes, max_samples)
    else:
        quotas = class_quotas(sizes, max_samples, rng)
    chosen = [rng.choice(np.flatnonzero(inverse == c), size=q, replace=False)
              for c, q in enumerate(quotas) if q]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def make_subset(features: str | os.PathLike, out: str | os.PathLike, max_samples: int = 10000,
                seed: int = 0, mode: str = "per_class") -> dict[str, Any]:
    """Draw the subset of one features file's train split and write the subset JSON atomically."""
    if max_samples < 1:
        raise InputError(f"--max-samples must be at least 1, got {max_samples}")
    if mode not in MODES:
        raise InputError(f"unknown subset mode '{mode}' (expected {' or '.join(MODES)})")
    split = read_features(features, "train", load_features=False)
    if len(split) == 0:
        raise InputError(f"{features}: the train split is empty")
    dataset = read_attrs(features).get("dataset") or Path(features).parent.name
    indices = stratified_indices(split.targets, max_samples, seed, mode)
    keys_digest = split_digests(features, "train")[2]
    subset = {"dataset": str(dataset), "split": "train", "seed": seed,
              "max_samples": max_samples, "mode": mode, "n_total": len(split),
              "keys_sha256": keys_digest, "indices": [int(i) for i in indices]}
    write_json(out, subset)
    return subset
