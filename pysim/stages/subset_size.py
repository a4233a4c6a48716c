"""The pysim-subset-size stage: how much each metric's matrix moves with the ImageNet subset
size (Appendix C), from the similarity files of imagenet-subset-<N>k."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from pysim.subset_size import REFERENCE, write_subset_size

__all__ = ["REFERENCE", "run_subset_size"]


def run_subset_size(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                    reference: int = REFERENCE) -> pd.DataFrame:
    """Write consistency/subset_size.csv (metric, samples_per_class, pearson_r); returns it."""
    return write_subset_size(paths, out, reference)
