"""The pysim-sim-vs-perf stage: model-pair similarity vs. probe-accuracy gap, one table; each
dataset's accuracies from the probes pysim-validate's dataset rows assign it (--datasets-table)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from pysim.analysis.sim_vs_perf import TABLE_NAME, load_probes, sim_vs_perf_table
from pysim.analysis.stack import read_all
from pysim.errors import InputError
from pysim.io import read_json, write_csv
from pysim.validate import performance_map

__all__ = ["TABLE_NAME", "run_sim_vs_perf"]


def read_performance_map(path: str | os.PathLike) -> dict[str, str]:
    """Similarity dataset -> performance dataset, from VALIDATE's datasets.json rows."""
    rows = read_json(path)
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "role" in r and "id" in r
                                             for r in rows):
        raise InputError(f"{path}: not a dataset table of pysim-validate --write-datasets "
                         "(a JSON list of rows with 'id' and 'role')")
    if not any(r["role"] == "analysed" and "performance" in r for r in rows):
        raise InputError(f"{path}: its analysed rows have no 'performance' column")
    return performance_map(rows)


def run_sim_vs_perf(similarities: Sequence[str | os.PathLike],
                    probes: Sequence[str | os.PathLike], out: str | os.PathLike,
                    datasets_table: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read similarity files and probe results, write the table (TABLE_NAME) to `out`.

    `datasets_table` (pysim-validate's datasets.json) says which dataset's probes each
    similarity dataset uses; without it each uses its own.
    """
    files = [sims for _, sims in read_all(similarities)]
    mapping = read_performance_map(datasets_table) if datasets_table else None
    table = sim_vs_perf_table(files, load_probes(probes), mapping)
    write_csv(out, table)
    return table
