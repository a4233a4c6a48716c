"""Independent peer implementations, installed from PyPI on first use into
~/.cache/pysim/test-peers/<name> (never a dependency of pysim); a test needing one is skipped
when it cannot be installed (no network, no compiler).

repsim 0.1.5 (C++ all-pairs) builds from its sdist in about 2 minutes. Its directory is put
at the END of sys.path, so the environment's numpy is the one imported.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PEERS = Path.home() / ".cache" / "pysim" / "test-peers"
VERSIONS = {"repsim": "0.1.5", "rsatoolbox": "0.3.2"}


def peer(name: str):
    """The imported peer module, installed first if missing; pytest.skip if that fails."""
    target = PEERS / name
    if not (target / name).is_dir():
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target",
                               str(target), f"{name}=={VERSIONS[name]}"],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            pytest.skip(f"peer {name} {VERSIONS[name]} could not be installed: "
                        f"{proc.stderr.strip().splitlines()[-1:]}")
    if str(target) not in sys.path:
        sys.path.append(str(target))
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"peer {name} does not import: {exc}")
