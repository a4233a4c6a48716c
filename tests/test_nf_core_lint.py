"""`nf-core pipelines lint` (nf-core tools 4.2.1, offline) passes apart from the commented
ignores of .nf-core.yml (nf-core's own organisation: GitHub set-up, logos, name).

nf-core tools is not a dependency of pysim (its pins conflict with the environment's): the
session fixture installs it once into its own venv, ~/.cache/pysim/tools/nf-core-4.2.1
(PYSIM_CACHE moves ~/.cache/pysim), with pip from PyPI; the test skips when that cannot be done.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nf_helpers import REPO, nextflow_bin

NF_CORE_VERSION = "4.2.1"


@pytest.fixture(scope="session")
def nf_core() -> Path:
    """The nf-core command of the tool venv, installed on first use."""
    cache = Path(os.environ.get("PYSIM_CACHE", Path.home() / ".cache" / "pysim"))
    venv = cache / "tools" / f"nf-core-{NF_CORE_VERSION}"
    command = venv / "bin" / "nf-core"
    if not command.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                           capture_output=True, timeout=300)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                            f"nf-core=={NF_CORE_VERSION}"], check=True, capture_output=True,
                           timeout=900)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.skip(f"cannot install nf-core {NF_CORE_VERSION} with pip: {exc}")
    return command


@pytest.mark.slow
def test_nf_core_lint_has_no_failures(nf_core, tmp_path):
    env = dict(os.environ)
    env["PATH"] = str(Path(nextflow_bin()).parent) + os.pathsep + env["PATH"]
    env["NXF_OFFLINE"] = "true"  # the nf-core template's own config would fetch nf-core/configs
    env["NXF_ANSI_LOG"] = "false"
    report = tmp_path / "lint.json"
    proc = subprocess.run([str(nf_core), "pipelines", "lint", "--dir", str(REPO), "--json",
                           str(report)], cwd=tmp_path, env=env, text=True, capture_output=True,
                          timeout=900)
    assert report.exists(), proc.stdout[-4000:] + proc.stderr[-4000:]
    results = json.loads(report.read_text())
    failed = [f"{name}: {message}" for name, message in results["tests_failed"]]
    assert failed == [], "\n".join(failed)
    assert results["num_tests_pass"] > 100
