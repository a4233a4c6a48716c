"""The pysim-sim-vs-perf stage: model-pair similarity vs. probe-accuracy gap, one table."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from pysim.analysis.sim_vs_perf import TABLE_NAME, load_probes, sim_vs_perf_table
from pysim.analysis.stack import read_all
from pysim.io import write_csv

__all__ = ["TABLE_NAME", "run_sim_vs_perf"]


def run_sim_vs_perf(similarities: Sequence[str | os.PathLike],
                    probes: Sequence[str | os.PathLike], out: str | os.PathLike) -> pd.DataFrame:
    """Read similarity files and probe results, write the table (TABLE_NAME) to `out`."""
    files = [sims for _, sims in read_all(similarities)]
    table = sim_vs_perf_table(files, load_probes(probes))
    write_csv(out, table)
    return table
