"""The similarity engine's default memory budget respects the job's cgroup limit (SLURM)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

LIMIT = 3 << 30
PROBE = ("from pysim.similarity.memory import available_ram, cgroup_available, working_budget;"
         "print(cgroup_available(), working_budget('cpu', None), available_ram())")


def _new_memory_cgroup() -> tuple[Path, str]:
    """A fresh memory cgroup (v1 or v2) with a 3 GiB limit; skips where none can be made."""
    v1 = Path("/sys/fs/cgroup/memory")
    if v1.is_dir():
        folder, limit_file = v1 / f"pysim-test-{uuid.uuid4().hex[:8]}", "memory.limit_in_bytes"
    elif Path("/sys/fs/cgroup/cgroup.controllers").exists():
        folder, limit_file = Path(f"/sys/fs/cgroup/pysim-test-{uuid.uuid4().hex[:8]}"), \
            "memory.max"
    else:
        pytest.skip("no cgroup memory controller mounted")
    try:
        folder.mkdir()
        (folder / limit_file).write_text(str(LIMIT))
    except OSError as exc:
        pytest.skip(f"cannot create a memory cgroup here: {exc}")
    return folder, limit_file


def test_default_budget_stays_under_the_cgroup_limit():
    folder, _ = _new_memory_cgroup()
    try:
        # the child moves itself into the cgroup, then runs the probe under its limit
        script = f"echo $$ > {folder}/cgroup.procs && exec {sys.executable} -c \"{PROBE}\""
        proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=120)
        assert proc.returncode == 0, proc.stderr
        left, budget, ram = (int(v) for v in proc.stdout.split())
        assert LIMIT - (1 << 30) < left < LIMIT  # the probe's own usage is under 1 GiB
        # half of what is left; the two readings are a few allocations apart (<= 1 MiB)
        assert abs(budget - min(left, ram) // 2) <= 1 << 20, (budget, left, ram)
    finally:
        folder.rmdir()
