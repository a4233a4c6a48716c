"""The pysim-derive stage: a derived dataset's features (BREEDS task, imagenet-subset-<N>k)
sliced from one model's wds/imagenet1k features file."""

from __future__ import annotations

import os
from typing import Any

from pysim.derive import derive


def run_derive(features: str | os.PathLike, dataset: str, out: str | os.PathLike,
               seed: int = 0) -> dict[str, Any]:
    """Write the derived dataset's features file; returns the model id and rows per split."""
    return derive(features, dataset, out, seed)
