"""The report folder's scripts (Plotly from the installed plotly package, report.js from pysim),
copied once into report/assets/ so the page opens offline, and the folder's atomic swap."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from pysim.errors import InputError

ASSETS = "assets"
SCRIPTS = ("plotly.min.js", "report.js")


def plotly_js() -> Path:
    """The minified Plotly bundle that the plotly Python package ships."""
    path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise InputError(f"{path}: Plotly's JavaScript bundle is missing (reinstall plotly)")
    return path


def copy_assets(out_dir: Path) -> list[str]:
    """Copy the scripts into out_dir/assets/; returns their page-relative paths, load order."""
    target = out_dir / ASSETS
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plotly_js(), target / SCRIPTS[0])
    own = resources.files("pysim.report") / SCRIPTS[1]
    (target / SCRIPTS[1]).write_text(own.read_text(encoding="utf-8"), encoding="utf-8")
    return [f"{ASSETS}/{name}" for name in SCRIPTS]


@contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """Yield an empty folder beside out_dir; it replaces out_dir only if the block succeeds."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
