"""Features files of one dataset for the similarity stage: read, check they match, prepare."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pysim.errors import InputError
from pysim.io import read_attrs, read_features, read_subset, split_digests
from pysim.similarity.prepare import prepare_features

log = logging.getLogger("pysim.similarity")


def _subset_indices(path: str | os.PathLike, n_total: int, keys_digest: str,
                    features: str | os.PathLike) -> np.ndarray:
    """Indices of a subset file, checked against the train samples it was drawn from: their
    number and (when the file records it, DESIGN §5) the digest of their keys."""
    subset = read_subset(path)
    if subset["split"] != "train":
        raise InputError(f"{path}: subset is of split '{subset['split']}', expected 'train'")
    if subset["n_total"] != n_total:
        raise InputError(f"{path}: subset was drawn from {subset['n_total']} samples but the "
                         f"features have {n_total}")
    recorded = subset.get("keys_sha256")
    if recorded is None:
        log.warning("%s: subset file records no keys_sha256 (older pysim); cannot check it "
                    "was drawn from these samples", path)
    elif recorded != keys_digest:
        raise InputError(f"{path}: subset was drawn from other samples than those of {features} "
                         f"(keys_sha256 differs: another dataset?)")
    indices = np.asarray(subset["indices"], dtype=np.int64)
    if indices.ndim != 1 or (indices.size and (indices.min() < 0 or indices.max() >= n_total)):
        raise InputError(f"{path}: subset indices must lie in 0..{n_total - 1}")
    if np.any(np.diff(indices) <= 0):
        raise InputError(f"{path}: subset indices must be sorted and unique")
    return indices


@dataclass
class DatasetFeatures:
    """The prepared train features of every model of one dataset, checked to match."""

    dataset: str
    features: dict[str, torch.Tensor]  # model id -> prepared n x d tensor (file order)
    n_total: int  # train samples in each file (before the subset)
    module_names: dict[str, str] = field(default_factory=dict)  # model id -> extracted module


def _check_same(path, model_id: str, attrs: dict, digests: tuple, first: tuple) -> None:
    """InputError unless a model's train split and dataset match the first model's."""
    ref_id, ref_n, ref_targets, ref_keys, ref_dataset = first
    n_total, targets_digest, keys_digest = digests
    if n_total != ref_n or keys_digest != ref_keys:
        raise InputError(f"{path}: model '{model_id}' has different sample keys than "
                         f"model '{ref_id}'")
    if targets_digest != ref_targets:
        raise InputError(f"{path}: model '{model_id}' has different targets than "
                         f"model '{ref_id}'")
    if attrs.get("dataset") != ref_dataset:
        raise InputError(f"{path}: model '{model_id}' is of dataset "
                         f"'{attrs.get('dataset')}', not '{ref_dataset}'")


def read_dataset_features(feature_paths: Sequence[str | os.PathLike],
                          subset_path: str | os.PathLike | None, normalize: str,
                          device: str, dtype: torch.dtype | None = None) -> DatasetFeatures:
    """Read, check and prepare (once) the subset's train rows of every model of one dataset.

    All models must have identical train keys and targets (else InputError naming the first
    model that differs); the subset (if any) selects the same rows of every model. Keys and
    targets are compared through digests read block by block and only the subset's rows are
    read, so memory does not grow with the train split beyond its keys and targets.
    """
    if not feature_paths:
        raise InputError("no --features files given")
    features: dict[str, torch.Tensor] = {}
    modules: dict[str, str] = {}
    first, indices = None, None
    for path in feature_paths:
        attrs = read_attrs(path)
        model_id = str(attrs.get("model_id") or Path(path).stem)
        if model_id in features:
            raise InputError(f"{path}: model '{model_id}' is given twice")
        digests = split_digests(path, "train")
        if first is None:
            first = (model_id, *digests, attrs.get("dataset"))
            if subset_path is not None:
                indices = _subset_indices(subset_path, digests[0], digests[2], path)
        else:
            _check_same(path, model_id, attrs, digests, first)
        split = read_features(path, "train", rows=indices)
        features[model_id] = prepare_features(split.features, normalize, device,
                                              dtype or torch.float32)
        modules[model_id] = str(attrs.get("module_name", ""))
        del split
        log.info("loaded %s (%d x %d)", model_id, *features[model_id].shape)
    return DatasetFeatures(dataset=str(first[4]), features=features, n_total=first[1],
                           module_names=modules)
