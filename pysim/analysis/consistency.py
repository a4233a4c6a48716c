"""Consistency of similarity structure across datasets (DESIGN §1.5): for every metric and pair of
datasets, Pearson/Spearman r of the upper triangles over all model pairs and per category pair,
with a Mantel permutation p-value and a model-bootstrap confidence interval.

Resampling is stratified by the category column being analysed (models are permuted or
resampled only among models with the same label; for `all` among all models), so a category
pair's null distribution and bootstrap keep exactly that pair's models. One resampling plan per
category serves every metric and every dataset pair, which is what makes it vectorisable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pysim.analysis import statistics as st

COLUMNS = ["metric", "dataset_1", "dataset_2", "category", "group_1", "group_2", "n_pairs",
           "pearson_r", "spearman_r", "mantel_p", "ci_low", "ci_high"]
MIN_PAIRS = 2
ALL = "all"


@dataclass
class PairGroup:
    """The model pairs (upper-triangle mask) of one unordered category pair."""

    category: str
    group_1: str
    group_2: str
    mask: np.ndarray


def category_labels(model_ids: Sequence[str], categories: Mapping[str, Mapping[str, str]],
                    columns: Sequence[str]) -> dict[str, list[str | None]]:
    """Labels per category column (`all` first); a model without a value gets None."""
    labels: dict[str, list[str | None]] = {ALL: [ALL] * len(model_ids)}
    for column in columns:
        values = [categories.get(m, {}).get(column) for m in model_ids]
        if any(v is not None for v in values):
            labels[column] = values
    return labels


def pair_groups(category: str, labels: Sequence[str | None], min_pairs: int = MIN_PAIRS
                ) -> list[PairGroup]:
    """Unordered label pairs with at least min_pairs model pairs (pairs with None are left out)."""
    rows, cols = np.triu_indices(len(labels), 1)
    keys = {}
    for p, (i, j) in enumerate(zip(rows, cols, strict=True)):
        if labels[i] is None or labels[j] is None:
            continue
        keys.setdefault(tuple(sorted((labels[i], labels[j]))), []).append(p)
    groups = []
    for (g1, g2), pairs in sorted(keys.items()):
        if len(pairs) >= min_pairs:
            mask = np.zeros(len(rows), dtype=bool)
            mask[pairs] = True
            groups.append(PairGroup(category, g1, g2, mask))
    return groups


def resampling_plan(labels: Mapping[str, Sequence[str | None]], permutations: int,
                    bootstrap: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per category: (permutations x m model permutations, bootstrap x m model draws), seeded."""
    plan = {}
    for k, (category, labs) in enumerate(labels.items()):
        perm_rng = np.random.default_rng([seed, k, 0])
        boot_rng = np.random.default_rng([seed, k, 1])
        plan[category] = (st.stratified_permutations(labs, permutations, perm_rng),
                          st.stratified_resamples(labs, bootstrap, boot_rng))
    return plan


def consistency_rows(metric_id: str, datasets: Sequence[str], stack: np.ndarray,
                     labels: Mapping[str, Sequence[str | None]],
                     plan: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """The consistency table of one metric: every dataset pair (i < j) x every pair group."""
    d, m = stack.shape[0], stack.shape[1]
    rows, cols = np.triu_indices(m, 1)
    values = stack[:, rows, cols]
    upper = np.triu_indices(d, 1)
    frames = []
    for category, labs in labels.items():
        groups = pair_groups(category, labs)
        if not groups or d < 2:
            continue
        perms, draws = plan[category]
        blocks = [values[:, g.mask] for g in groups]
        pearson = [st.pearson_rows(x) for x in blocks]
        spearman = [st.spearman_rows(x) for x in blocks]
        pvalues = _mantel(values, groups, pearson, perms, rows, cols)
        weights = st.pair_weights(draws, m, rows, cols)
        for g, x, pr, sr, pv in zip(groups, blocks, pearson, spearman, pvalues, strict=True):
            low, high = st.percentile_interval(st.bootstrap_pearson(x, weights[:, g.mask]))
            frames.append(pd.DataFrame({
                "metric": metric_id, "dataset_1": [datasets[a] for a in upper[0]],
                "dataset_2": [datasets[b] for b in upper[1]], "category": category,
                "group_1": g.group_1, "group_2": g.group_2, "n_pairs": int(g.mask.sum()),
                "pearson_r": pr[upper], "spearman_r": sr[upper], "mantel_p": pv[upper],
                "ci_low": low[upper], "ci_high": high[upper]}))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def _mantel(values: np.ndarray, groups: Sequence[PairGroup], pearson: Sequence[np.ndarray],
            perms: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
    """Mantel p-values (two-sided, (1 + #|r_perm| >= |r|) / (n + 1)) per group, D x D each."""
    if len(perms) == 0:
        return [np.full_like(r, np.nan) for r in pearson]
    z_pairs = np.zeros_like(values)
    for g in groups:
        z_pairs[:, g.mask] = np.nan_to_num(st.standardize_rows(values[:, g.mask]))
    counts = st.mantel_counts(z_pairs, [g.mask for g in groups], pearson, perms, rows, cols)
    return [np.where(np.isfinite(r), (1 + c) / (len(perms) + 1), np.nan)
            for c, r in zip(counts, pearson, strict=True)]


def consistency_matrix(table: pd.DataFrame, metric_id: str, datasets: Sequence[str],
                       value: str = "pearson_r") -> pd.DataFrame:
    """Wide dataset x dataset table of one metric's all-pairs consistency (diagonal 1)."""
    out = pd.DataFrame(np.eye(len(datasets)), index=list(datasets), columns=list(datasets))
    sel = table[(table["metric"] == metric_id) & (table["category"] == ALL)]
    for a, b, r in zip(sel["dataset_1"], sel["dataset_2"], sel[value], strict=True):
        out.loc[a, b] = out.loc[b, a] = r
    out.index.name = "dataset"
    return out.reset_index()
