"""The similarity matrix aggregated across datasets: mean and standard deviation per model pair."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def aggregate_pairs(stack: np.ndarray, model_ids: Sequence[str]) -> pd.DataFrame:
    """One row per model pair (i < j): mean, std (population) and count over the datasets."""
    rows, cols = np.triu_indices(len(model_ids), 1)
    values = stack[:, rows, cols]
    return pd.DataFrame({
        "model_1": [model_ids[i] for i in rows], "model_2": [model_ids[j] for j in cols],
        "mean": values.mean(axis=0), "std": values.std(axis=0),
        "n_datasets": stack.shape[0]})
