"""Peak memory and bytes read of a bin/ stage run as a real subprocess, above a warm baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs bin/<stage> twice in one fresh process: first on tiny inputs (warming up the runtime:
# imports, torch kernels), then, after resetting the kernel's peak-RSS mark, on the real inputs.
# Prints the RSS at the reset, the peak RSS after it and the bytes read by the real run.
MEASURE = r"""
import json, runpy, sys

def run(argv):
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        if exc.code:
            raise

def status(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field + ":"))

def rchar():
    with open("/proc/self/io") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("rchar:"))

warm, real = json.loads(sys.argv[1])
run(warm)
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
read0 = rchar()
run(real)
print("MEASURE " + json.dumps({"base": base, "peak": status("VmHWM"), "read": rchar() - read0}))
"""


def peak_memory(warm: list[str], real: list[str]) -> dict[str, int]:
    """Peak RSS above a warmed-up baseline and bytes read of one stage run (a real subprocess)."""
    if not (os.access("/proc/self/clear_refs", os.W_OK) and Path("/proc/self/io").exists()):
        pytest.skip("needs Linux /proc/self/clear_refs and /proc/self/io")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", MEASURE, json.dumps([warm, real])],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MEASURE "))
    result = json.loads(line.removeprefix("MEASURE "))
    return {"extra": result["peak"] - result["base"], "read": result["read"]}
