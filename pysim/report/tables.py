"""The report's tables beyond models and datasets: probe accuracies, consistency rows and the
pipeline's software versions (all sortable and filterable in the page, see report.js)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pysim.errors import InputError
from pysim.report import html as h

MAX_CONSISTENCY_ROWS = 5000  # beyond this only category `all` (keeps the page light)


def probe_table(probes: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Test top-1 accuracy, one row per model, one column per dataset."""
    rows = [(m, ds, a) for ds, accs in probes.items() for m, a in accs.items()]
    frame = pd.DataFrame(rows, columns=["model_id", "dataset", "test_acc1"])
    if frame.empty:
        return frame
    wide = frame.pivot(index="model_id", columns="dataset", values="test_acc1")
    wide = wide.reindex(sorted(wide.columns), axis=1).reset_index()
    wide.columns.name = None
    return wide


def probes_section(probes: dict[str, dict[str, float]]) -> str:
    """The probe accuracies table, or a note when there are none."""
    if not probes:
        return h.note("no probe results under probes/")
    return (h.para("Linear-probe test top-1 accuracy (mean over seeds), per model and dataset.")
            + h.table(probe_table(probes)))


def consistency_rows(table: pd.DataFrame) -> str:
    """Every row of consistency.csv (only category `all` when there are very many)."""
    shown, remark = table, ""
    if len(table) > MAX_CONSISTENCY_ROWS:
        shown = table[table["category"] == "all"]
        remark = h.para(f"{len(table)} rows in consistency/consistency.csv: only category "
                        f"'all' is shown ({len(shown)} rows).")
    return "<h3>All consistency rows</h3>" + remark + h.table(shown)


def read_versions(path: Path) -> pd.DataFrame | None:
    """pipeline_info/software_versions.yml (process -> {package: version}) as rows, if present."""
    if not path.is_file():
        return None
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not readable YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise InputError(f"{path}: expected a mapping process -> {{package: version}}")
    rows = [(str(proc), str(pkg), str(ver)) for proc, pkgs in doc.items()
            for pkg, ver in pkgs.items()]
    return pd.DataFrame(rows, columns=["process", "package", "version"])


def versions_section(frame: pd.DataFrame | None) -> str | None:
    """The software versions table, or None when the run recorded none."""
    if frame is None:
        return None
    return (h.para("Software versions per process (pipeline_info/software_versions.yml).")
            + h.table(frame))
