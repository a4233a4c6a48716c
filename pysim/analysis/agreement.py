"""Agreement between similarity metrics (the paper's Section 4.2 and Appendix E, e.g. a local
metric such as mutual k-NN against a global one such as CKA): per dataset and metric pair, the
Pearson and Spearman correlation of the two metrics' values over the model pairs (k=1)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

COLUMNS = ["dataset", "metric_1", "metric_2", "pearson_r", "spearman_r"]


def pair_values(matrix: np.ndarray) -> np.ndarray:
    """The upper-triangle entries (k=1) of one similarity matrix."""
    rows, cols = np.triu_indices(matrix.shape[0], 1)
    return matrix[rows, cols]


def correlate(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson and Spearman r over the pairs finite in both (NaN when fewer than 3 or constant)."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan
    return float(pearsonr(x, y)[0]), float(spearmanr(x, y)[0])


def metric_agreement(datasets: Sequence[str], matrices: Mapping[str, np.ndarray]
                     ) -> pd.DataFrame:
    """One row per dataset and metric pair (metric_1 < metric_2); matrices are D x m x m."""
    rows = []
    for metric_1, metric_2 in itertools.combinations(sorted(matrices), 2):
        for k, dataset in enumerate(datasets):
            r, rho = correlate(pair_values(matrices[metric_1][k]),
                               pair_values(matrices[metric_2][k]))
            rows.append({"dataset": dataset, "metric_1": metric_1, "metric_2": metric_2,
                         "pearson_r": r, "spearman_r": rho})
    return pd.DataFrame(rows, columns=COLUMNS)
