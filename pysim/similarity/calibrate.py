"""Calibrated scores and uncertainty for any metric, all pairs per engine pass (issue 23).

Permutation null: each of K passes permutes every model's rows (samples) by its own seeded
random permutation; for a pair (a, b) that is a uniformly random relative permutation of b's
rows against a's (the null "no sample correspondence"), so one pass gives one null draw for
every pair. Per pair: p = (1 + #{null >= observed}) / (K + 1) (one-sided: more similar than
chance) and the calibrated score (observed - null mean) / null standard deviation.

Bootstrap: each of B passes resamples the samples with replacement (the same rows for every
model); the percentile interval of the B values is the confidence interval per pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pysim.config import MetricSpec
from pysim.errors import InputError
from pysim.similarity.engine import compute_similarities


@dataclass
class Calibrated:
    """Per metric id, m x m arrays (row and column order of the features given)."""

    score: dict[str, np.ndarray]
    null_mean: dict[str, np.ndarray]
    null_sd: dict[str, np.ndarray]
    p_value: dict[str, np.ndarray]
    calibrated: dict[str, np.ndarray]


def permutation_null(features: Mapping[str, Any], metrics: list[MetricSpec],
                     permutations: int = 100, seed: int = 0,
                     observed: dict[str, np.ndarray] | None = None, **engine) -> Calibrated:
    """Observed matrices (computed unless given), their permutation null (K = `permutations`
    engine passes, seeded), p-values and calibrated scores. `features` are numpy arrays or
    torch tensors (n x d); `engine` goes to compute_similarities."""
    if permutations < 1:
        raise InputError(f"permutations must be a positive integer, got {permutations}")
    rng = np.random.default_rng(seed)
    if observed is None:
        observed = compute_similarities(features, metrics, **engine)
    draws = {key: [] for key in observed}
    n = len(next(iter(features.values())))
    for _ in range(permutations):
        shuffled = {mid: f[rng.permutation(n)] for mid, f in features.items()}
        for key, matrix in compute_similarities(shuffled, metrics, **engine).items():
            draws[key].append(matrix)
    out = Calibrated({}, {}, {}, {}, {})
    for key, score in observed.items():
        null = np.stack(draws[key])
        mean, sd = null.mean(axis=0), null.std(axis=0, ddof=1) if permutations > 1 \
            else np.full_like(score, np.nan)
        out.score[key], out.null_mean[key], out.null_sd[key] = score, mean, sd
        out.p_value[key] = (1 + (null >= score[None]).sum(axis=0)) / (permutations + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.calibrated[key] = np.where(sd > 0, (score - mean) / sd, np.nan)
        for matrix in (out.p_value[key], out.calibrated[key], out.null_mean[key],
                       out.null_sd[key]):
            np.fill_diagonal(matrix, np.nan)  # a model against itself has no null
    return out


def bootstrap_interval(features: Mapping[str, Any], metrics: list[MetricSpec],
                       resamples: int = 100, level: float = 0.95, seed: int = 0,
                       **engine) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Percentile confidence interval (low, high) per metric id and pair over `resamples`
    engine passes on samples drawn with replacement (the same draw for every model)."""
    if resamples < 2 or not 0 < level < 1:
        raise InputError(f"need resamples >= 2 and 0 < level < 1, got {resamples}, {level}")
    rng = np.random.default_rng(seed)
    n = len(next(iter(features.values())))
    draws: dict[str, list[np.ndarray]] = {}
    for _ in range(resamples):
        rows = rng.integers(0, n, size=n)
        resampled = {mid: f[rows] for mid, f in features.items()}
        for key, matrix in compute_similarities(resampled, metrics, **engine).items():
            draws.setdefault(key, []).append(matrix)
    tail = (1 - level) / 2 * 100
    return {key: (np.nanpercentile(np.stack(v), tail, axis=0),
                  np.nanpercentile(np.stack(v), 100 - tail, axis=0)) for key, v in draws.items()}


def calibration_matrices(features: Mapping[str, Any], metrics: list[MetricSpec],
                         observed: dict[str, np.ndarray], permutations: int = 0,
                         bootstrap: int = 0, seed: int = 0, **engine) -> dict[str, np.ndarray]:
    """The matrices of the calibration file (DESIGN §5), keyed `<metric id>__<what>`: with
    permutations, null_mean, null_sd, p_value, calibrated; with bootstrap, ci_low, ci_high
    (95 %)."""
    out: dict[str, np.ndarray] = {}
    if permutations:
        cal = permutation_null(features, metrics, permutations, seed, observed, **engine)
        for what in ("null_mean", "null_sd", "p_value", "calibrated"):
            out.update({f"{key}__{what}": m for key, m in getattr(cal, what).items()})
    if bootstrap:
        for key, (low, high) in bootstrap_interval(features, metrics, bootstrap,
                                                   seed=seed, **engine).items():
            out[f"{key}__ci_low"], out[f"{key}__ci_high"] = low, high
    return out
