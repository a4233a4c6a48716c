"""Collect whatever a pipeline output directory holds (similarities/, probes/, consistency/,
performance/, pipeline_info/), noting every part that is missing instead of failing; layer-wise
rows (ids `<model_id>@<module>`) are kept apart from the whole-model matrices."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pysim.analysis.sim_vs_perf import TABLE_NAME as SIM_VS_PERF_TABLE
from pysim.analysis.sim_vs_perf import load_probes
from pysim.analysis.stack import read_all
from pysim.config import ModelEntry, dataset_key, load_dataset_info, load_models
from pysim.errors import InputError
from pysim.io import Similarities
from pysim.report.interactive import split_layers
from pysim.report.tables import read_versions

log = logging.getLogger(__name__)


@dataclass
class Results:
    """The pieces of one pipeline run the report shows; `missing` explains absent parts."""

    root: Path
    similarities: list[Similarities] = field(default_factory=list)
    similarity_paths: list[Path] = field(default_factory=list)
    layers: list[Similarities] = field(default_factory=list)
    probes: dict[str, dict[str, float]] = field(default_factory=dict)
    probe_paths: list[Path] = field(default_factory=list)
    consistency: pd.DataFrame | None = None
    domains: pd.DataFrame | None = None
    clusters_ari: pd.DataFrame | None = None
    matrices: dict[str, pd.DataFrame] = field(default_factory=dict)
    sim_vs_gap: pd.DataFrame | None = None
    models: dict[str, ModelEntry] | None = None
    models_path: Path | None = None
    dataset_info: dict[str, dict[str, str]] | None = None
    dataset_info_path: Path | None = None
    pipeline_info: list[Path] = field(default_factory=list)
    software_versions: pd.DataFrame | None = None
    missing: dict[str, str] = field(default_factory=dict)

    def performance_source(self, dataset: str) -> str | None:
        """The dataset whose probes a similarity dataset's accuracy gaps use: its
        `performance_dataset` in the sim-vs-perf table (matched by pysim-validate; None when
        the table leaves it out), itself where the table has no such column or is absent."""
        table = self.sim_vs_gap
        if table is None or "performance_dataset" not in table.columns:
            return dataset
        rows = table[table["dataset"] == dataset]["performance_dataset"].dropna()
        return str(rows.iloc[0]) if len(rows) else None

    def accuracies(self, dataset: str) -> dict[str, float]:
        """model id -> the probe accuracy a similarity dataset's gaps use (performance_source)."""
        source = self.performance_source(dataset)
        return dict(self.probes.get(dataset_key(source), {})) if source else {}

    @property
    def datasets(self) -> list[str]:
        return sorted(s.dataset for s in self.similarities)

    @property
    def metrics(self) -> list[str]:
        return sorted({k for s in self.similarities for k in s.matrices}
                      | set(self.matrices))


def _table(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV table ({exc})") from None


def collect(results_dir: str | os.PathLike, models_path: str | os.PathLike | None = None,
            dataset_info_path: str | os.PathLike | None = None) -> Results:
    """Read the results directory; absent stages are recorded in `missing`, not raised."""
    root = Path(results_dir)
    if not root.is_dir():
        raise InputError(f"{root}: results directory not found")
    res = Results(root=root)
    if models_path:
        res.models, res.models_path = load_models(models_path), Path(models_path)
    else:
        res.missing["models"] = "no model table given (--models): categories are unknown"
    if dataset_info_path:
        res.dataset_info = load_dataset_info(dataset_info_path)
        res.dataset_info_path = Path(dataset_info_path)

    res.similarity_paths = sorted((root / "similarities").glob("*.h5"))
    if res.similarity_paths:
        parts = [split_layers(s, res.models) for _, s in read_all(res.similarity_paths)]
        res.similarities = [whole for whole, _ in parts if whole.model_ids]
        res.layers = [layer for _, layer in parts if layer is not None]
    else:
        res.missing["similarities"] = "no similarity files under similarities/"

    res.probe_paths = sorted((root / "probes").glob("**/*.json"))
    if res.probe_paths:
        res.probes = load_probes(res.probe_paths)
    else:
        res.missing["probes"] = "no probe results under probes/"

    cdir = root / "consistency"
    res.consistency = _table(cdir / "consistency.csv")
    if res.consistency is None:
        res.missing["consistency"] = "no consistency/consistency.csv"
    res.domains = _table(cdir / "domains.csv")
    res.clusters_ari = _table(cdir / "clusters_ari.csv")
    for path in sorted(cdir.glob("matrix_*.csv")):
        res.matrices[path.stem.removeprefix("matrix_")] = _table(path)
    res.sim_vs_gap = _table(root / SIM_VS_PERF_TABLE)
    if res.sim_vs_gap is None:
        res.missing["performance"] = f"no {SIM_VS_PERF_TABLE}"
    res.pipeline_info = sorted((root / "pipeline_info").glob("*.html"))
    res.software_versions = read_versions(root / "pipeline_info" / "software_versions.yml")
    return res
