"""Vectorised correlation statistics over many vectors at once: Pearson/Spearman between rows,
stratified resampling plans, Mantel permutation p-values and model-bootstrap intervals.

Model pairs are indexed by the upper triangle (k=1) of an m x m matrix: pair p is
(rows[p], cols[p]). Resampling acts on models, so one plan serves every dataset pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

P_TOLERANCE = 1e-12


def standardize_rows(x: np.ndarray) -> np.ndarray:
    """Z-score every row (population std); a constant row becomes all NaN."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)
    scale = np.sqrt((centred ** 2).mean(axis=-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 1e-12 * (1 + np.abs(x).max(axis=-1, keepdims=True)),
                        centred / np.where(scale > 0, scale, 1), np.nan)


def pearson_rows(x: np.ndarray) -> np.ndarray:
    """Pearson correlation between every pair of rows of x (D x p) -> D x D (NaN if constant)."""
    z = standardize_rows(x)
    r = np.clip(z @ z.T / z.shape[-1], -1.0, 1.0)
    # two points: exactly +-1, as scipy.stats.pearsonr gives it (rank tests see the ties)
    return np.round(r) if z.shape[-1] == 2 else r


def spearman_rows(x: np.ndarray) -> np.ndarray:
    """Spearman correlation (Pearson of average ranks) between every pair of rows -> D x D."""
    return pearson_rows(rankdata(x, axis=-1))


def _classes(labels: Sequence) -> list[np.ndarray]:
    """Model positions grouped by label (None is a class of its own)."""
    keys = ["\0none" if lab is None else str(lab) for lab in labels]
    return [np.flatnonzero(np.array(keys) == key) for key in sorted(set(keys))]


def stratified_permutations(labels: Sequence, n: int, rng: np.random.Generator) -> np.ndarray:
    """n permutations of the m models (n x m), each mapping a model to one with the same label."""
    m = len(labels)
    perms = np.tile(np.arange(m), (n, 1))
    for idx in _classes(labels):
        perms[:, idx] = rng.permuted(np.tile(idx, (n, 1)), axis=1)
    return perms


def stratified_resamples(labels: Sequence, n: int, rng: np.random.Generator) -> np.ndarray:
    """n bootstrap draws of models (n x m): each label's models resampled with replacement."""
    m = len(labels)
    draws = np.empty((n, m), dtype=np.int64)
    for idx in _classes(labels):
        draws[:, idx] = idx[rng.integers(0, len(idx), size=(n, len(idx)))]
    return draws


def symmetric_from_pairs(values: np.ndarray, m: int, rows: np.ndarray, cols: np.ndarray
                         ) -> np.ndarray:
    """Place pair values (D x P) into symmetric D x m x m matrices (zero diagonal)."""
    out = np.zeros(values.shape[:-1] + (m, m))
    out[..., rows, cols] = values
    out[..., cols, rows] = values
    return out


def mantel_counts(z_pairs: np.ndarray, masks: Sequence[np.ndarray], r_obs: Sequence[np.ndarray],
                  perms: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                  max_block: int = 4_000_000) -> list[np.ndarray]:
    """For each pair group: how many permutations give |r| >= |r_obs|, for every dataset pair.

    z_pairs (D x P) holds each pair's value standardised within its group (0 outside any group);
    perms must keep every group's pairs inside the group (stratified by label), so a permuted
    standardised vector is still standardised and r = <z_a, z_b o perm> / n_pairs.
    Returns one D x D count array per mask (the second dataset is the permuted one).
    Permutations are processed in chunks of about max_block gathered values.
    """
    d, m = z_pairs.shape[0], perms.shape[1]
    chunk = max(1, max_block // max(1, z_pairs.size))
    full = symmetric_from_pairs(z_pairs, m, rows, cols).reshape(d, m * m).T.copy()  # m*m x D
    counts = [np.zeros((d, d), dtype=np.int64) for _ in masks]
    limits = [np.abs(r)[:, None, :] - P_TOLERANCE for r in r_obs]
    for start in range(0, len(perms), chunk):
        block = perms[start:start + chunk]
        flat = block[:, rows] * m + block[:, cols]                   # nc x P
        for k, mask in enumerate(masks):
            n_pairs = int(mask.sum())
            permuted = full[flat[:, mask].T].reshape(n_pairs, -1)    # p x (nc*D)
            r = (z_pairs[:, mask] @ permuted / n_pairs).reshape(d, len(block), d)  # a, n, b
            counts[k] += (np.abs(r) >= limits[k]).sum(axis=1)
    return counts


def bootstrap_pearson(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted Pearson r between every pair of rows of x (D x p) for each weight row (n x p).

    With weights = how often each model pair occurs in a bootstrap draw of models, this equals
    Pearson r over the resampled list of pairs. Returns n x D x D (NaN where degenerate).
    """
    z = standardize_rows(x)
    z = np.where(np.isfinite(z), z, 0.0)
    d = z.shape[0]
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = weights @ z.T / total[:, None]                         # n x D
        ia, ib = np.triu_indices(d)
        second = weights @ (z[ia] * z[ib]).T / total[:, None]         # n x Q
        cov = np.zeros((len(weights), d, d))
        cov[:, ia, ib] = second - mean[:, ia] * mean[:, ib]
        cov[:, ib, ia] = cov[:, ia, ib]
        var = np.diagonal(cov, axis1=1, axis2=2)                      # n x D
        denom = np.sqrt(var[:, :, None] * var[:, None, :])
        r = np.where(denom > 1e-12, cov / np.where(denom > 0, denom, 1), np.nan)
    r[total <= 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def pair_weights(draws: np.ndarray, m: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """How often each model pair (i < j) occurs among the position pairs of each draw (n x P)."""
    counts = np.zeros((len(draws), m))
    np.add.at(counts, (np.arange(len(draws))[:, None], draws), 1.0)
    return counts[:, rows] * counts[:, cols]


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval (linear interpolation) over the first axis, ignoring NaN."""
    tail = (1 - level) / 2
    shape = samples.shape[1:]
    ordered = np.sort(samples, axis=0)                     # NaN last
    n = np.isfinite(samples).sum(axis=0)
    bounds = []
    for q in (tail, 1 - tail):
        pos = q * np.maximum(n - 1, 0)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        if len(samples) == 0:
            bounds.append(np.full(shape, np.nan))
            continue
        v_lo = np.take_along_axis(ordered, lo[None], axis=0)[0]
        v_hi = np.take_along_axis(ordered, hi[None], axis=0)[0]
        value = v_lo + (pos - lo) * (v_hi - v_lo)
        bounds.append(np.where(n > 0, value, np.nan))
    return bounds[0], bounds[1]
