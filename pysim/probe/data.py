"""Probe inputs: read and check a features file, L2-normalise, map labels, stratified splits."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pysim.errors import InputError
from pysim.io import has_split, read_attrs, read_features


@dataclass
class ProbeData:
    """Train and test features (float32, n x d), labels mapped to 0..n_classes-1, and identity."""

    model_id: str
    dataset: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def stratified_split(targets: np.ndarray, proportion: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held-out) with about `proportion` of every class held out.

    Per class round(proportion * n_c) samples are held out, at most n_c - 1 (every class keeps
    one sample); the counts depend only on the class sizes, the chosen samples on `seed`.
    """
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        n_held = min(int(np.floor(proportion * len(members) + 0.5)), len(members) - 1)
        held.append(rng.permutation(members)[:n_held])
    held_idx = np.sort(np.concatenate(held)).astype(np.int64)
    kept_idx = np.setdiff1d(np.arange(len(targets)), held_idx).astype(np.int64)
    return kept_idx, held_idx


# rows per block when normalising or checking features in place (bounds the temporaries)
BLOCK_ROWS = 4096


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Divide every row by its Euclidean norm (all-zero rows stay zero), into a new array."""
    return l2_normalize_(np.array(x, copy=True))


def l2_normalize_(x: np.ndarray) -> np.ndarray:
    """l2_normalize in place, a block of rows at a time (no full-size temporary); returns x.

    Every row's norm and quotient are computed exactly as by `x / norm(x, axis=1)`, so the
    result is bit-identical to normalising a copy.
    """
    tiny = np.finfo(x.dtype).tiny
    for start in range(0, len(x), BLOCK_ROWS):
        block = x[start:start + BLOCK_ROWS]
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        np.divide(block, np.maximum(norms, tiny), out=block)
    return x


def load_probe_data(path: str | os.PathLike, normalize: str = "l2", test_from_train: bool = False,
                    test_proportion: float = 0.2, split_seed: int = 0) -> ProbeData:
    """Read a features file for probing; no test split is bad input unless `test_from_train`.

    With `test_from_train` and no test split in the file, a stratified `test_proportion` of the
    train split (drawn with `split_seed`) becomes the test split. Features are read once as
    float32 and normalised in place: memory is about one copy of the file's features.
    """
    if normalize not in ("l2", "none"):
        raise InputError(f"unknown normalisation '{normalize}' (expected l2 or none)")
    attrs = read_attrs(path)
    for name in ("model_id", "dataset"):
        if name not in attrs:
            raise InputError(f"{path}: features file has no root attribute '{name}'")
    if has_split(path, "test"):
        train = read_features(path, "train")
        test = read_features(path, "test")
    elif test_from_train:
        targets = read_features(path, "train", load_features=False).targets
        kept, held = stratified_split(targets, test_proportion, split_seed)
        if len(held) == 0:
            raise InputError(f"{path}: too few train samples to carve out a test split "
                             f"(--test-proportion {test_proportion})")
        train = read_features(path, "train", rows=kept)
        test = read_features(path, "train", rows=held)
    else:
        raise InputError(f"{path}: no 'test' split in features file "
                         "(pass --test-from-train to carve one out of the train split)")
    x_train, y_train, x_test, y_test = train.features, train.targets, test.features, test.targets
    del train, test
    _check(path, x_train, y_train, x_test)
    unseen = np.setdiff1d(y_test, y_train)
    if unseen.size:
        raise InputError(f"{path}: {unseen.size} test label(s) never occur in the train split "
                         f"(e.g. {unseen[0]}): the probe cannot predict them")
    classes = np.unique(np.concatenate([y_train, y_test]))
    if normalize == "l2":
        l2_normalize_(x_train)
        l2_normalize_(x_test)
    return ProbeData(str(attrs["model_id"]), str(attrs["dataset"]), x_train,
                     np.searchsorted(classes, y_train), x_test, np.searchsorted(classes, y_test),
                     len(classes))


def _check(path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> None:
    """Bad features (empty, mismatched widths, NaN/inf, constant, one class) are bad input."""
    if len(x_train) == 0 or len(x_test) == 0:
        raise InputError(f"{path}: empty train or test split")
    if x_train.shape[1] != x_test.shape[1]:
        raise InputError(f"{path}: train and test features differ in width "
                         f"({x_train.shape[1]} vs {x_test.shape[1]})")
    for name, x in (("train", x_train), ("test", x_test)):
        if not all(np.isfinite(x[i:i + BLOCK_ROWS]).all() for i in range(0, len(x), BLOCK_ROWS)):
            raise InputError(f"{path}: '{name}' features contain NaN or inf")
    # every row equal to the first (e.g. all zero): nothing to learn; stops at the first
    # block that differs, so real features cost one block
    if len(x_train) > 1 and all((x_train[i:i + BLOCK_ROWS] == x_train[0]).all()
                                for i in range(0, len(x_train), BLOCK_ROWS)):
        raise InputError(f"{path}: the 'train' features are constant (every sample has the same "
                         "feature vector)")
    if len(np.unique(y_train)) < 2:
        raise InputError(f"{path}: the train split has fewer than 2 classes")
