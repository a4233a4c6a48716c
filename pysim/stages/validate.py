"""The pysim-validate stage: check the model table, dataset list and metric list before any
work (pysim.validate), optionally map models to loaders and check their weights."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pysim.validate import summary, validate_inputs


def run_validate(models: str | os.PathLike, datasets: str | os.PathLike,
                 metrics: str | os.PathLike, dataset_root: str | os.PathLike | None = None,
                 dataset_info: str | os.PathLike | None = None, resolve: bool = False,
                 check_weights: bool = False) -> Iterator[str]:
    """Yield the summary, the resolution report if asked, then 'inputs OK'; InputError if bad."""
    inputs = validate_inputs(models, datasets, metrics, dataset_root, dataset_info)
    yield summary(inputs)
    if resolve or check_weights:
        import pysim.models  # torch: only when asked

        report = pysim.models.check_weights if check_weights else pysim.models.resolve_report
        yield report(inputs.models, base_dir=Path(models).resolve().parent)
    yield "inputs OK"
