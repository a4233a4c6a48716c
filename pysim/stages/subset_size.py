"""The pysim-subset-size stage: how much each metric's matrix moves with the ImageNet subset
size (Appendix C), from the similarity files of imagenet-subset-<N>k."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from pysim.subset_size import REFERENCE, write_subset_size

__all__ = ["REFERENCE", "run_subset_size"]


def run_subset_size(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                    reference: int = REFERENCE, delta_out: str | os.PathLike | None = None,
                    matrices_out: str | os.PathLike | None = None) -> dict[str, pd.DataFrame]:
    """Write consistency/subset_size.csv (pysim's r against the reference), the notebook's
    subset_size_delta.csv and subset_size_matrices.csv (DESIGN §5); returns the tables."""
    return write_subset_size(paths, out, reference, delta_out, matrices_out)
