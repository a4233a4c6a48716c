"""The pysim-subset stage: stratified, seeded subset indices of one dataset's train split."""

from __future__ import annotations

import os
from typing import Any

from pysim.subset import MODES, make_subset

__all__ = ["MODES", "run_subset"]


def run_subset(features: str | os.PathLike, out: str | os.PathLike, max_samples: int = 10000,
               seed: int = 0, mode: str = "per_class") -> dict[str, Any]:
    """Draw the subset of the features file's train split and write it as JSON."""
    return make_subset(features, out, max_samples, seed, mode)
