"""The pysim-similarity stage: read one dataset's features files, check them, write matrices."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pysim.config import load_metrics
from pysim.errors import InputError
from pysim.io import (
    Similarities,
    read_attrs,
    read_features,
    read_subset,
    split_digests,
    write_similarities,
)
from pysim.similarity.engine import compute_similarities
from pysim.similarity.memory import current_rss, parse_size, return_freed_memory
from pysim.similarity.prepare import prepare_features

log = logging.getLogger("pysim.similarity")


def _subset_indices(path: str | os.PathLike, n_total: int) -> np.ndarray:
    """Indices of a subset file, checked against the number of train samples."""
    subset = read_subset(path)
    if subset["split"] != "train":
        raise InputError(f"{path}: subset is of split '{subset['split']}', expected 'train'")
    if subset["n_total"] != n_total:
        raise InputError(f"{path}: subset was drawn from {subset['n_total']} samples but the "
                         f"features have {n_total}")
    indices = np.asarray(subset["indices"], dtype=np.int64)
    if indices.ndim != 1 or (indices.size and (indices.min() < 0 or indices.max() >= n_total)):
        raise InputError(f"{path}: subset indices must lie in 0..{n_total - 1}")
    if np.any(np.diff(indices) <= 0):
        raise InputError(f"{path}: subset indices must be sorted and unique")
    return indices


def similarity_file(feature_paths: Sequence[str | os.PathLike], metrics_path: str | os.PathLike,
                    out: str | os.PathLike, subset_path: str | os.PathLike | None = None,
                    normalize: str = "l2", device: str = "cpu",
                    max_memory: int | str | None = None, progress: bool = True) -> Similarities:
    """Compute every metric for every model of one dataset and write the similarity file.

    All models must have identical train keys and targets (else InputError naming the first
    model that differs); the subset (if any) selects the same rows of every model. On CPU,
    `max_memory` bounds what this stage adds to the process's resident memory (features and
    working buffers), beyond the Python/torch runtime it starts with.
    """
    from pysim.cli import resolve_device

    return_freed_memory()
    start_rss = current_rss()
    metrics = load_metrics(metrics_path)
    device = resolve_device(device)
    if not feature_paths:
        raise InputError("no --features files given")
    features, first, dataset, indices = {}, None, None, None
    for path in feature_paths:
        attrs = read_attrs(path)
        model_id = str(attrs.get("model_id") or Path(path).stem)
        if model_id in features:
            raise InputError(f"{path}: model '{model_id}' is given twice")
        # keys and targets are compared through digests read block by block, and only the
        # subset's rows of the features are read: memory and bytes read do not grow with the
        # train split (beyond its keys and targets)
        n_total, targets_digest, keys_digest = split_digests(path, "train")
        if first is None:
            first = (model_id, n_total, targets_digest, keys_digest)
            dataset = attrs.get("dataset")
            if subset_path is not None:
                indices = _subset_indices(subset_path, n_total)
        else:
            ref_id, ref_n, ref_targets, ref_keys = first
            if n_total != ref_n or keys_digest != ref_keys:
                raise InputError(f"{path}: model '{model_id}' has different sample keys than "
                                 f"model '{ref_id}'")
            if targets_digest != ref_targets:
                raise InputError(f"{path}: model '{model_id}' has different targets than "
                                 f"model '{ref_id}'")
            if attrs.get("dataset") != dataset:
                raise InputError(f"{path}: model '{model_id}' is of dataset "
                                 f"'{attrs.get('dataset')}', not '{dataset}'")
        split = read_features(path, "train", rows=indices)
        features[model_id] = prepare_features(split.features, normalize, device)
        del split
        log.info("loaded %s (%d x %d)", model_id, *features[model_id].shape)
    n_samples = next(iter(features.values())).shape[0]
    if max_memory is not None and not device.startswith("cuda"):
        max_memory = parse_size(max_memory) + start_rss  # the engine counts the whole process
    matrices = compute_similarities(features, metrics, device=device, max_memory=max_memory,
                                    normalize="none", progress=progress)
    metric_attrs = {s.id: {**s.params(), "n_samples": n_samples} for s in metrics}
    sims = Similarities(dataset=str(dataset), model_ids=list(features), matrices=matrices,
                        metric_attrs=metric_attrs)
    write_similarities(out, sims, {"normalize": normalize, "n_samples": n_samples,
                                   "n_total": first[1] if first else 0})
    return sims
