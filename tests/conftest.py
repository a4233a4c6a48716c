"""Shared test helpers: paths and running a bin/ entry point as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SEED = FIXTURES / "seed"


def run_cli(name: str, *args: str | os.PathLike, check: bool = False,
            env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None
            ) -> subprocess.CompletedProcess:
    """Run bin/<name> with this interpreter and return the completed process (text output)."""
    cmd = [sys.executable, str(ROOT / "bin" / name), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def assert_bad_input(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2, exactly one line on stderr containing every fragment."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def one_thread():
    """Torch and BLAS on one thread: tiny computations only lose time to thread pools."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    """The bundled demo datasets (CLIP-benchmark layout), written once per test module."""
    from pysim.demo import write_demo_datasets

    root = tmp_path_factory.mktemp("demo")
    write_demo_datasets(root)
    return root


@pytest.fixture(scope="module")
def restore_torch_threads():
    """Give back torch's thread count after a module that changes it (extract's --threads)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def seed_dir() -> Path:
    """Directory with the original study's config files (the project's own copies)."""
    return SEED


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM cluster for the whole session (root only; skips elsewhere)."""
    from slurm_cluster import SlurmCluster, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no SLURM cluster: {reason}")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()
