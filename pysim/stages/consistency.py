"""The pysim-consistency stage: consistency of similarity structure across datasets and the
further analyses (model maps, metric agreement, anchor models), written as tables."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from pysim.analysis.run import compute_consistency, write_outputs
from pysim.analysis.transforms import TRANSFORMS

__all__ = ["TRANSFORMS", "run_consistency"]


def run_consistency(similarities: Sequence[str | os.PathLike], models: str | os.PathLike,
                    out_dir: str | os.PathLike, dataset_info: str | os.PathLike | None = None,
                    permutations: int = 1000, bootstrap: int = 1000, seed: int = 0,
                    num_clusters: int = 5, transform: str = "none",
                    anchor_models: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Compute every consistency table and write each (atomically) into `out_dir`."""
    outputs = compute_consistency(similarities, models, dataset_info, permutations, bootstrap,
                                  seed, num_clusters, transform, anchor_models or None)
    write_outputs(outputs, out_dir)
    return outputs
