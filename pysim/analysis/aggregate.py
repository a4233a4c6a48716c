"""The similarity matrix aggregated across datasets: mean and standard deviation per model pair.

The raw mean and std are those of the paper's Section 4.2; Appendix D plots the mean against
the std of the *transformed* similarities (tan and arccos, each applied per dataset before
aggregating), so both transforms get their own columns. The std is the population one (numpy's
default, as the study's notebooks compute it on stacked arrays)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pysim.analysis.transforms import transform_similarities

COLUMNS = ["model_1", "model_2", "mean", "std", "n_datasets", "mean_tan", "std_tan",
           "mean_arccos", "std_arccos"]


def aggregate_pairs(stack: np.ndarray, model_ids: Sequence[str], label: str = ""
                    ) -> pd.DataFrame:
    """One row per model pair (i < j): mean, std (population) and count over the datasets, and
    the mean and std of tan(S) and arccos(S) (S clipped to [-1, 1] first)."""
    rows, cols = np.triu_indices(len(model_ids), 1)
    values = stack[:, rows, cols]
    table = pd.DataFrame({
        "model_1": [model_ids[i] for i in rows], "model_2": [model_ids[j] for j in cols],
        "mean": values.mean(axis=0), "std": values.std(axis=0),
        "n_datasets": stack.shape[0]})
    for transform in ("tan", "arccos"):
        moved = transform_similarities(values, transform, label)
        table[f"mean_{transform}"] = moved.mean(axis=0)
        table[f"std_{transform}"] = moved.std(axis=0)
    return table[COLUMNS]
