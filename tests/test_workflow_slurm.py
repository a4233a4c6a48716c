"""The slurm profile on a real one-node SLURM cluster started by the test (root only).

Checks that tasks run as SLURM jobs with the resources of conf/base.config (read back from the
`#SBATCH` lines Nextflow writes and from scontrol), that sbatch refusals which clear with time
are retried, that --max_time keeps requests under a partition's MaxTime, and that a task killed
for exceeding its memory is retried with more memory and succeeds.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from nf_helpers import (
    DEMO,
    REPO,
    SLURM_TEST_CONFIG,
    TEST_DATASETS,
    TEST_MODELS,
    check_jobs_have_label_resources,
    dataset_key,
    demo_run_args,
    latest_trace,
    nextflow_bin,
    nf_env,
    process_labels,
    read_trace,
    sbatch_directives,
    write_inputs,
)

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


def production_args(inputs: dict[str, Path], *extra: str) -> list[str]:
    """A `-profile slurm,gpu` stub run on the demo inputs: the labels' own resources."""
    return ["run", str(REPO / "main.nf"), "-profile", "slurm,gpu", "-stub-run",
            "--models", str(inputs["models"]), "--datasets", str(inputs["datasets"]),
            "--metrics", str(DEMO / "metrics.json"), "--demo_data", "--outdir", "results",
            "--cpu_partition", "cpu", "--gpu_partition", "gpu", "-c", str(inputs["config"]),
            *extra]


def slurm_inputs(folder: Path, models=TEST_MODELS, config: str = SLURM_TEST_CONFIG) -> dict:
    inputs = write_inputs(folder, models)
    inputs["config"] = folder / "slurm_test.config"
    inputs["config"].write_text(config)
    return inputs


def test_slurm_profile_runs_tasks_as_jobs_and_retries_memory_kills(slurm_cluster, tmp_path):
    inputs = write_inputs(tmp_path / "inputs", TEST_MODELS[:2])
    extra = tmp_path / "memory_kill.config"
    extra.write_text(MEMORY_KILL_CONFIG)
    args = demo_run_args(inputs)
    args[args.index("test")] = "slurm,test"
    args += ["-c", str(extra), "--cpu_partition", "cpu", "--gpu_partition", "gpu",
             "--skip_probes"]
    started = time.monotonic()
    proc = subprocess.run([nextflow_bin(), *args], cwd=tmp_path,
                          env=slurm_cluster.env(nf_env()), text=True, capture_output=True,
                          timeout=900)
    print(f"slurm run: {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:] + slurm_cluster.logs()

    rows = read_trace(latest_trace(tmp_path / "results"))
    assert rows and all(row["native_id"].isdigit() for row in rows)
    labels = process_labels()
    for row in rows:
        job = slurm_cluster.show_job(row["native_id"])
        expected = "gpu" if labels[row["process"]] == "process_gpu" else "cpu"
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


def test_gpu_profile_jobs_get_base_config_resources_and_outlast_sbatch_refusals(
        slurm_cluster, tmp_path):
    inputs = slurm_inputs(tmp_path / "inputs")
    # The GPU partition refuses submissions (as during maintenance, or a QOS submit limit)
    # until the test opens it again: GPU tasks must be resubmitted, not fail the run.
    slurm_cluster.scontrol("update", "PartitionName=gpu", "State=INACTIVE")
    log = open(tmp_path / "nextflow.out", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([nextflow_bin(), *production_args(inputs)], cwd=tmp_path,
                            env=slurm_cluster.env(nf_env()), text=True, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        nf_log = tmp_path / ".nextflow.log"
        while not (nf_log.exists() and "Failed to submit process" in nf_log.read_text()):
            assert proc.poll() is None, (tmp_path / "nextflow.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "no sbatch refusal seen"
            time.sleep(0.5)
        assert "Required partition not available" in nf_log.read_text()
    finally:
        slurm_cluster.scontrol("update", "PartitionName=gpu", "State=UP")
    proc.wait(timeout=600)
    log.close()
    output = (tmp_path / "nextflow.out").read_text()
    assert proc.returncode == 0, output[-4000:] + slurm_cluster.logs()

    rows = read_trace(latest_trace(tmp_path / "results"))
    # every process of the demo's workflow ran (derived datasets and the ImageNet subset-size
    # processes only run with ImageNet in the list)
    imagenet_only = {"DERIVE_FEATURES", "FULL_SUBSET", "SUBSET_SIZE", "SUBSET_SIZE_SIMILARITY"}
    assert {row["process"] for row in rows} == set(process_labels()) - imagenet_only
    check_jobs_have_label_resources(rows, slurm_cluster.show_job, gpu=True)


def test_max_time_keeps_requests_under_the_partition_limit(slurm_cluster, tmp_path):
    # A GPU task asking for 36 h (as the third attempt of a 12 h task would) on a partition
    # whose MaxTime is 24 h: the default --max_time caps the request and the job runs; with
    # --max_time 100h sbatch refuses it (EnforcePartLimits) and the run says why.
    config = SLURM_TEST_CONFIG + "process { withName: 'EXTRACT_FEATURES' { time = 36.h } }\n"
    inputs = slurm_inputs(tmp_path / "inputs", TEST_MODELS[:1], config)
    inputs["datasets"].write_text("wds/demo_digits\n")
    env = slurm_cluster.env(nf_env())
    capped = subprocess.run([nextflow_bin(), *production_args(inputs, "--skip_probes")],
                            cwd=tmp_path, env=env, text=True, capture_output=True, timeout=600)
    assert capped.returncode == 0, capped.stdout[-4000:] + slurm_cluster.logs()
    rows = read_trace(latest_trace(tmp_path / "results"))
    extract = [r for r in rows if r["process"] == "EXTRACT_FEATURES"]
    assert len(extract) == 1
    assert sbatch_directives(Path(extract[0]["workdir"]) / ".command.run")["-t"] == "24:00:00"
    assert slurm_cluster.show_job(extract[0]["native_id"])["TimeLimit"] == "1-00:00:00"

    over = subprocess.run([nextflow_bin(), *production_args(inputs, "--skip_probes",
                                                            "--max_time", "100h")],
                          cwd=tmp_path / "inputs", env=env, text=True, capture_output=True,
                          timeout=600)
    assert over.returncode != 0
    assert "Requested time limit is invalid" in over.stdout + over.stderr


SBATCH_COUNTER = """#!/bin/sh
# Counts sbatch calls (one line per call), then runs the real sbatch.
echo "$@" >> "{log}"
exec "{sbatch}" "$@"
"""


def test_array_size_submits_extraction_as_job_arrays(slurm_cluster, tmp_path):
    # 3 models x 2 datasets = 6 extraction tasks with --array_size 4: arrays of 4 and 2
    # tasks, so 2 sbatch calls for them instead of 6 (counted by a wrapper around sbatch).
    inputs = slurm_inputs(tmp_path / "inputs")
    shims, log = tmp_path / "shims", tmp_path / "sbatch_calls.txt"
    shims.mkdir()
    real = shutil.which("sbatch", path=slurm_cluster.env(nf_env())["PATH"])
    (shims / "sbatch").write_text(SBATCH_COUNTER.format(log=log, sbatch=real))
    (shims / "sbatch").chmod(0o755)
    env = slurm_cluster.env(nf_env())
    env["PATH"] = f"{shims}:{env['PATH']}"
    proc = subprocess.run([nextflow_bin(), *production_args(inputs, "--skip_probes",
                                                            "--array_size", "4")],
                          cwd=tmp_path, env=env, text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + slurm_cluster.logs()

    rows = read_trace(latest_trace(tmp_path / "results"))
    extract = [row for row in rows if row["process"] == "EXTRACT_FEATURES"]
    others = [row for row in rows if row["process"] != "EXTRACT_FEATURES"]
    assert len(extract) == len(TEST_MODELS) * len(TEST_DATASETS) == 6
    # an array child's job id is <array job id>_<index>
    arrays = {row["native_id"].split("_")[0] for row in extract}
    assert all("_" in row["native_id"] for row in extract) and len(arrays) == 2, extract
    assert all(row["native_id"].isdigit() for row in others)
    calls = log.read_text().splitlines()
    print(f"sbatch calls: {len(calls)} for {len(rows)} tasks")
    assert len(calls) == len(others) + len(arrays) < len(rows)
    check_jobs_have_label_resources(rows, slurm_cluster.show_job, gpu=True)
    key = dataset_key(TEST_DATASETS[0])
    assert (tmp_path / "results" / "features" / key / f"{TEST_MODELS[0]}.h5").exists()
