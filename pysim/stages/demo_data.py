"""The pysim-demo-data stage: the bundled demo datasets in the CLIP-benchmark WebDataset layout."""

from __future__ import annotations

import os

from pysim.demo import write_demo_datasets


def run_demo_data(out_dir: str | os.PathLike, seed: int = 0) -> list[str]:
    """Write the demo datasets under `out_dir`; returns their dataset ids."""
    return list(write_demo_datasets(out_dir, seed))
