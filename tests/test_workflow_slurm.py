"""`-profile slurm,test` on a real one-node SLURM cluster started by the test (root only).

Checks that tasks ran as SLURM jobs (the trace's native ids, seen by scontrol in the right
partition, GPU tasks with a gres) and that a task killed for exceeding its memory limit is
retried with more memory and succeeds.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from nf_helpers import (
    TEST_MODELS,
    demo_run_args,
    latest_trace,
    nextflow_bin,
    nf_env,
    read_trace,
    write_inputs,
)
from slurm_cluster import SlurmCluster, unavailable_reason

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

# The first attempt of MAKE_SUBSET asks for 100 MB and, before its script, holds 400 MB for
# a few seconds (a fast task alone can finish before SLURM's 1 s memory sampling sees it);
# the cluster's OverMemoryKill ends it, and base.config's retry gives the next attempt more.
MEMORY_KILL_CONFIG = """
process {
    withName: 'MAKE_SUBSET' {
        memory = { task.attempt == 1 ? 100.MB : 1.GB * task.attempt }
        beforeScript = {
            task.attempt == 1
                ? "python3 -c 'import time; b = b\\"x\\" * (400 << 20); time.sleep(8)'"
                : ''
        }
    }
}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no SLURM cluster: {reason}")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def test_slurm_profile_runs_tasks_as_jobs_and_retries_memory_kills(cluster, tmp_path):
    inputs = write_inputs(tmp_path / "inputs", TEST_MODELS[:2])
    extra = tmp_path / "memory_kill.config"
    extra.write_text(MEMORY_KILL_CONFIG)
    args = demo_run_args(inputs)
    args[args.index("test")] = "slurm,test"
    args += ["-c", str(extra), "--cpu_partition", "cpu", "--gpu_partition", "gpu",
             "--skip_probes"]
    started = time.monotonic()
    proc = subprocess.run([nextflow_bin(), *args], cwd=tmp_path, env=cluster.env(nf_env()),
                          text=True, capture_output=True, timeout=900)
    print(f"slurm run: {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:] + cluster.logs()

    rows = read_trace(latest_trace(tmp_path / "results"))
    assert rows and all(row["native_id"].isdigit() for row in rows)
    for row in rows:
        job = cluster.show_job(row["native_id"])
        expected = "gpu" if row["process"] in ("EXTRACT_FEATURES", "COMPUTE_SIMILARITY") else "cpu"
        assert job["Partition"] == expected, row["name"]
        if expected == "gpu":
            assert "gpu:1" in job.get("TresPerNode", ""), job
        assert job["JobState"] == ("COMPLETED" if row["status"] == "COMPLETED" else "FAILED")

    subsets = [row for row in rows if row["process"] == "MAKE_SUBSET"]
    for key in {row["tag"] for row in subsets}:
        attempts = sorted((row for row in subsets if row["tag"] == key),
                          key=lambda row: int(row["attempt"]))
        assert [row["status"] for row in attempts] == ["FAILED", "COMPLETED"], attempts
        assert attempts[0]["memory"] == "100 MB" and attempts[1]["memory"] == "2 GB"
    assert (tmp_path / "results" / "report" / "index.html").is_file()
