"""Read many similarity files and align them: the same models, in one order, for every dataset.

Models missing from some datasets and metrics missing from some files are dropped with a
warning naming them; a stacked metric is a D x m x m float64 array (datasets sorted by id).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pysim.analysis.transforms import EDGE_TOLERANCE
from pysim.errors import InputError
from pysim.io import Similarities, read_similarities

log = logging.getLogger(__name__)


@dataclass
class SimilarityStack:
    """Aligned similarity matrices: datasets x models x models for each metric."""

    datasets: list[str]
    model_ids: list[str]
    matrices: dict[str, np.ndarray]          # metric id -> D x m x m
    sources: dict[str, str]                  # dataset id -> file it came from
    n_samples: dict[str, dict[str, int]]     # dataset id -> metric id -> n_samples (if stored)


def read_all(paths: Sequence[str | os.PathLike]) -> list[tuple[str, Similarities]]:
    """Read every similarity file; two files for one dataset or a malformed matrix is bad input."""
    out, seen = [], {}
    for path in paths:
        sims = read_similarities(path)
        if sims.dataset in seen:
            raise InputError(f"{path}: dataset '{sims.dataset}' also comes from "
                             f"{seen[sims.dataset]}")
        seen[sims.dataset] = str(path)
        if len(set(sims.model_ids)) != len(sims.model_ids):
            raise InputError(f"{path}: duplicate model ids in the 'model_ids' attribute")
        m = len(sims.model_ids)
        for metric_id, matrix in sims.matrices.items():
            if matrix.shape != (m, m):
                raise InputError(f"{path}: metric '{metric_id}' has shape {matrix.shape}, "
                                 f"expected {m} x {m} for {m} models")
            problem = matrix_problem(matrix, sims.metric_attrs.get(metric_id))
            if problem:
                raise InputError(f"{path}: metric '{metric_id}' is not a similarity matrix: "
                                 f"{problem}")
        out.append((str(path), sims))
    if not out:
        raise InputError("no similarity files given")
    return out


# rounding allowed when checking a matrix's range, symmetry and unit diagonal (the transforms'
# clipping tolerance)
MATRIX_TOLERANCE = EDGE_TOLERANCE


def matrix_problem(matrix: np.ndarray, attrs: dict | None = None) -> str | None:
    """What keeps an m x m matrix from being one of pysim's similarities, or None.

    A metric's matrix is symmetric with values in [-1, 1] and 1 on the diagonal unless its
    attributes say otherwise (`symmetric: false`, `value_range` [lo, hi], `diagonal`: the
    value expected there, NaN for none); a model without a defined similarity has a NaN row
    and column.
    """
    attrs = attrs or {}
    lo, hi = (float(v) for v in attrs.get("value_range", (-1.0, 1.0)))
    expected_diag = float(attrs.get("diagonal", 1.0))
    values = matrix[np.isfinite(matrix)]
    tol = MATRIX_TOLERANCE
    if values.size and (values.min() < lo - tol or values.max() > hi + tol):
        worst = values[np.argmax(np.maximum(lo - values, values - hi))]
        return f"value {worst:g} outside [{lo:g}, {hi:g}]"
    if np.isinf(matrix).any():
        return "infinite values"
    nan = np.isnan(matrix)
    if (nan != nan.T).any():
        return "not symmetric"
    if attrs.get("symmetric", True) and np.nanmax(np.abs(matrix - matrix.T), initial=0.0) \
            > MATRIX_TOLERANCE:
        return "not symmetric"
    if not np.isnan(expected_diag):
        diag = np.diag(matrix)
        off = diag[np.isfinite(diag) & (np.abs(diag - expected_diag) > MATRIX_TOLERANCE)]
        if off.size:
            return f"diagonal value {off[0]:g}, expected {expected_diag:g}"
    return None


def align(files: Sequence[tuple[str, Similarities]],
          model_order: Sequence[str] | None = None) -> SimilarityStack:
    """Keep the models and metrics present in every file, in a canonical order.

    model_order (e.g. the model table) fixes the row order, so that results do not depend on
    the order of the files; models it does not list are bad input.
    """
    files = sorted(files, key=lambda item: item[1].dataset)
    all_models: list[str] = []
    for _, sims in files:
        all_models += [m for m in sims.model_ids if m not in all_models]
    common = [m for m in all_models if all(m in s.model_ids for _, s in files)]
    dropped = [m for m in all_models if m not in common]
    if dropped:
        log.warning("models not present in every dataset, dropped: %s", ", ".join(dropped))
    if model_order is not None:
        unknown = [m for m in common if m not in model_order]
        if unknown:
            raise InputError(f"models not in the model table: {', '.join(unknown)}")
        common = [m for m in model_order if m in common]
    else:
        common = sorted(common)
    if len(common) < 2:
        raise InputError(f"fewer than 2 models are present in every dataset ({len(common)})")

    metrics = [k for k in files[0][1].matrices if all(k in s.matrices for _, s in files)]
    missing = sorted({k for _, s in files for k in s.matrices} - set(metrics))
    if missing:
        log.warning("metrics not present in every similarity file, dropped: %s",
                    ", ".join(missing))
    if not metrics:
        raise InputError("no metric is present in every similarity file")

    matrices = {}
    for metric_id in sorted(metrics):
        layers = []
        for _, sims in files:
            idx = [sims.model_ids.index(m) for m in common]
            layers.append(np.asarray(sims.matrices[metric_id], dtype=np.float64)[np.ix_(idx, idx)])
        matrices[metric_id] = np.stack(layers)
    n_samples = {s.dataset: {k: int(a["n_samples"]) for k, a in s.metric_attrs.items()
                             if "n_samples" in a} for _, s in files}
    return SimilarityStack([s.dataset for _, s in files], common, matrices,
                           {s.dataset: p for p, s in files}, n_samples)


def finite_models(stack: np.ndarray, model_ids: Sequence[str], metric_id: str) -> np.ndarray:
    """Positions of the models whose similarities are finite in every dataset (others warned)."""
    off = ~np.eye(stack.shape[1], dtype=bool)
    bad = ~np.isfinite(np.where(off, stack, 0.0)).all(axis=(0, 1))
    bad |= ~np.isfinite(np.where(off, stack, 0.0)).all(axis=(0, 2))
    if bad.any():
        names = ", ".join(m for m, b in zip(model_ids, bad, strict=True) if b)
        log.warning("metric '%s': models with non-finite similarities dropped: %s",
                    metric_id, names)
    return np.flatnonzero(~bad)
