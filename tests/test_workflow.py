"""Workflow tests that need Nextflow but no real computation: config, params, help, stub run."""

from __future__ import annotations

import re

import pytest
from nf_helpers import (
    DEMO,
    REPO,
    base_label_resources,
    latest_trace,
    read_trace,
    run_files,
    run_nf,
)

PROCESSES = ("DEMO_DATA", "VALIDATE", "EXTRACT_FEATURES", "MAKE_SUBSET", "COMPUTE_SIMILARITY",
             "LINEAR_PROBE", "CONSISTENCY", "SIM_VS_PERF", "REPORT")

# Every profile combination a user would type (DESIGN §7); "" is no profile at all.
PROFILE_COMBINATIONS = ("", "slurm", "gpu", "apptainer", "slurm,gpu", "slurm,apptainer",
                        "slurm,gpu,apptainer", "local,gpu", "test", "slurm,test")
FLAT_LABEL = re.compile(r"^process\.'withLabel:(\w+)'\.(\w+) = (.*)$")
PROFILE_MARKERS = {
    "test": "params.demo_data = true",
    "local": "process.executor = 'local'",
    "slurm": "process.executor = 'slurm'",
    "gpu": "params.device = 'cuda'",
    "apptainer": "apptainer.enabled = true",
}


@pytest.mark.parametrize("profile", PROFILE_COMBINATIONS)
def test_every_label_keeps_base_config_resources_under_every_profile(profile, tmp_path):
    args = ["config", "-flat", str(REPO)] + (["-profile", profile] if profile else [])
    proc = run_nf(args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    flat: dict[str, dict[str, str]] = {}
    for line in proc.stdout.splitlines():
        match = FLAT_LABEL.match(line)
        if match:
            flat.setdefault(match[1], {})[match[2]] = match[3]
    for name in filter(None, profile.split(",")):
        assert PROFILE_MARKERS[name] in proc.stdout, name
    assert "manifest.nextflowVersion = '>=24.10.0'" in proc.stdout
    expected = base_label_resources()
    assert set(flat) == set(expected)
    for label, want in expected.items():
        assert flat[label] == {"cpus": str(want["cpus"]),
                               "memory": f"{{ {want['memory']}.GB * task.attempt }}",
                               "time": f"{{ {want['time']}.h * task.attempt }}"}, label


@pytest.mark.parametrize("missing", ["models", "metrics", "dataset_root"])
def test_missing_required_param_stops_before_any_task(missing, tmp_path):
    given = {"models": DEMO / "models.json", "datasets": DEMO / "datasets.txt",
             "metrics": DEMO / "metrics.json", "outdir": tmp_path / "out",
             "dataset_root": tmp_path}
    args = ["run", str(REPO / "main.nf")]
    for name, value in given.items():
        if name != missing:
            args += [f"--{name}", str(value)]
    proc = run_nf(args, cwd=tmp_path, timeout=180)
    assert proc.returncode != 0
    output = (proc.stdout + proc.stderr).splitlines()
    naming = [line for line in output if f"--{missing}" in line]
    assert len(naming) == 1, output
    assert naming[0].startswith("Missing required parameter")
    assert not any("executor >" in line or "Submitted process" in line for line in output)
    work = tmp_path / "work"
    assert not work.exists() or not any(work.iterdir())


def test_unknown_model_id_is_one_line(tmp_path):
    proc = run_nf(["run", str(REPO / "main.nf"), "-profile", "test", "--model_ids", "nope",
                   "--outdir", "out"], cwd=tmp_path, timeout=180)
    assert proc.returncode != 0
    naming = [line for line in (proc.stdout + proc.stderr).splitlines() if "'nope'" in line]
    assert len(naming) == 1 and naming[0].startswith("--model_ids")
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_help_lists_the_params(tmp_path):
    proc = run_nf(["run", str(REPO / "main.nf"), "--help"], cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("--models", "--datasets", "--metrics", "--dataset_root", "--outdir",
                 "--max_samples", "--model_ids", "--skip_probes", "--gpu_partition",
                 "--slurm_account", "--permutations", "--container_dir", "--weights_dir",
                 "--similarity_memory", "--max_memory", "--max_time", "--apptainer_binds"):
        assert name in proc.stdout, name
    work = tmp_path / "work"
    assert not work.exists() or not any(work.iterdir())


# Launch-time refusals: one line naming the problem, before any task (so before any GPU job).
LAUNCH_ERRORS = {
    "gpu image missing": (["-profile", "gpu,apptainer", "--container_dir", "{tmp}"],
                          "image not found: {tmp}/pysim-gpu.sif (GPU tasks run on CUDA)"),
    "bad similarity memory": (["--similarity_memory", "lots"],
                              "--similarity_memory: cannot read size 'lots'"),
    "weights dir missing": (["--weights_dir", "{tmp}/nowhere"],
                            "--weights_dir: folder not found: {tmp}/nowhere"),
}


@pytest.mark.parametrize("case", list(LAUNCH_ERRORS))
def test_launch_refusals_are_one_line_before_any_task(case, tmp_path):
    extra, message = LAUNCH_ERRORS[case]
    extra = [arg.format(tmp=tmp_path) for arg in extra]
    args = ["run", str(REPO / "main.nf"), "--models", str(DEMO / "models.json"),
            "--datasets", str(DEMO / "datasets.txt"), "--metrics", str(DEMO / "metrics.json"),
            "--demo_data", "--outdir", str(tmp_path / "out"), *extra]
    proc = run_nf(args, cwd=tmp_path, timeout=180)
    assert proc.returncode != 0
    output = (proc.stdout + proc.stderr).splitlines()
    naming = [line for line in output if message.format(tmp=tmp_path) in line]
    assert len(naming) == 1, output
    work = tmp_path / "work"
    assert not work.exists() or not any(work.iterdir())


@pytest.mark.slow
def test_stub_run_of_the_whole_workflow(tmp_path):
    proc = run_nf(["run", str(REPO / "main.nf"), "-profile", "test", "-stub-run",
                   "--outdir", "out"], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = read_trace(latest_trace(tmp_path / "out"))
    assert {row["process"] for row in rows} == set(PROCESSES)
    assert all(row["status"] == "COMPLETED" for row in rows)
    models = (DEMO / "models.json").read_text().count('"model_name"')
    datasets = len((DEMO / "datasets.txt").read_text().split())
    counts = {p: sum(row["process"] == p for row in rows) for p in PROCESSES}
    assert counts["EXTRACT_FEATURES"] == counts["LINEAR_PROBE"] == models * datasets
    assert counts["COMPUTE_SIMILARITY"] == counts["MAKE_SUBSET"] == datasets
    out = tmp_path / "out"
    for path in ("consistency/consistency.csv", "performance/similarity_vs_gap.csv",
                 "report/index.html"):
        assert (out / path).is_file(), path
    for kind in ("execution_report", "execution_timeline", "pipeline_dag", "execution_trace"):
        assert len(run_files(out / "pipeline_info", kind)) == 1, kind
    assert len(list((out / "similarities").glob("*.h5"))) == datasets
    assert len(list((out / "probes").glob("*/*.json"))) == models * datasets
