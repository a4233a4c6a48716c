"""Two similarity metrics compared as the study's notebooks compare them.

- Section 4.2 (`mean_agreement`): per model pair the similarity averaged over every dataset,
  under metric A and under metric B; Pearson r of the two means over the model pairs (upper
  triangle, k=1). The paper shows CKA linear against CKA RBF 0.4 and against RSA (Spearman).
- Appendix E (`consistency_agreement`): the consistency coefficients of one metric against
  those of another, over every row of the consistency table outside category `all` (each
  category column, dataset pair and unordered group pair with at least 2 model pairs, as the
  notebook aggregating model-set pairs keeps them); Pearson r over the rows, matched by
  (dataset_1, dataset_2, category, group_1, group_2).

Both use the model pairs (or rows) finite under both metrics; with none missing this is the
notebooks' number.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd

from pysim.analysis.consistency import ALL

MEAN_COLUMNS = ["metric_1", "metric_2", "n_pairs", "pearson_r"]
CONSISTENCY_COLUMNS = ["metric_1", "metric_2", "coefficient", "n_rows", "pearson_r"]
ROW_KEY = ["dataset_1", "dataset_2", "category", "group_1", "group_2"]
COEFFICIENTS = ("pearson_r", "spearman_r")


def pearson(x: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    """(n, Pearson r) over the entries finite in both; r is NaN under 3 entries or constant."""
    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    if n < 3:
        return n, np.nan
    x, y = x[keep] - x[keep].mean(), y[keep] - y[keep].mean()
    denom = float(np.sqrt((x @ x) * (y @ y)))
    return n, (float(x @ y) / denom if denom > 0 else np.nan)


def mean_agreement(matrices: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per metric pair (metric_1 < metric_2): r of the cross-dataset mean similarity
    (matrices are D x m x m, the same models and datasets for every metric)."""
    means = {}
    for metric, stack in matrices.items():
        rows, cols = np.triu_indices(stack.shape[1], 1)
        means[metric] = stack[:, rows, cols].mean(axis=0)
    out = []
    for m1, m2 in itertools.combinations(sorted(means), 2):
        n, r = pearson(means[m1], means[m2])
        out.append({"metric_1": m1, "metric_2": m2, "n_pairs": n, "pearson_r": r})
    return pd.DataFrame(out, columns=MEAN_COLUMNS)


def consistency_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """One row per metric pair (metric_1 < metric_2) and coefficient of the consistency table
    (its `pearson_r` or `spearman_r` column): r between the two metrics' coefficients."""
    rows = table[table["category"] != ALL]
    out = []
    for coefficient in COEFFICIENTS:
        wide = rows.set_index([*ROW_KEY, "metric"])[coefficient].unstack("metric")
        for m1, m2 in itertools.combinations(sorted(rows["metric"].unique()), 2):
            n, r = pearson(wide[m1].to_numpy(dtype=float), wide[m2].to_numpy(dtype=float))
            out.append({"metric_1": m1, "metric_2": m2, "coefficient": coefficient,
                        "n_rows": n, "pearson_r": r})
    return pd.DataFrame(out, columns=CONSISTENCY_COLUMNS)
