"""Peak memory and bytes read of a bin/ stage run as a real subprocess, above a warm baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# the same child as benchmarks/scale.py: runs bin/<stage> on tiny inputs (imports, kernels),
# resets the kernel's peak-RSS mark, then runs it on the real inputs
CHILD = Path(__file__).resolve().parents[1] / "benchmarks" / "peak_child.py"


def peak_memory(warm: list[str], real: list[str]) -> dict[str, int]:
    """Peak RSS above a warmed-up baseline and bytes read of one stage run (a real subprocess)."""
    if not (os.access("/proc/self/clear_refs", os.W_OK) and Path("/proc/self/io").exists()):
        pytest.skip("needs Linux /proc/self/clear_refs and /proc/self/io")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(CHILD), json.dumps([warm, real])],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("POINT "))
    result = json.loads(line.removeprefix("POINT "))
    return {"extra": result["peak"] - result["base"], "read": result["read"]}
