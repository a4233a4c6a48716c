"""The pysim-report stage: the HTML report of a pipeline output directory."""

from __future__ import annotations

import os
from pathlib import Path


def run_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike,
               models: str | os.PathLike | None = None,
               dataset_info: str | os.PathLike | None = None,
               run_outdir: str | None = None) -> Path:
    """Write the report folder (index.html, assets/, figures/); returns index.html's path."""
    from pysim.report.build import build_report  # matplotlib: only when the stage runs

    return Path(build_report(results_dir, out_dir, models, dataset_info, run_outdir))
