"""Workflow tests that need Nextflow but no real computation: config, params, help, stub run."""

from __future__ import annotations

import pytest
from nf_helpers import DEMO, REPO, read_trace, run_nf

PROCESSES = ("DEMO_DATA", "VALIDATE", "EXTRACT_FEATURES", "MAKE_SUBSET", "COMPUTE_SIMILARITY",
             "LINEAR_PROBE", "CONSISTENCY", "SIM_VS_PERF", "REPORT")

PROFILE_MARKERS = {
    "test": "demo_data = true",
    "local": "executor = 'local'",
    "slurm": "executor = 'slurm'",
    "gpu": "device = 'cuda'",
    "apptainer": "apptainer",
    "slurm,test": "exitReadTimeout = '10 sec'",
}


@pytest.mark.parametrize("profile", list(PROFILE_MARKERS))
def test_config_resolves_for_every_profile(profile, tmp_path):
    proc = run_nf(["config", str(REPO), "-profile", profile], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert PROFILE_MARKERS[profile] in proc.stdout
    assert "nextflowVersion = '>=24.10.0'" in proc.stdout
    if profile == "slurm":
        assert "--gres=${params.gpu_gres}" in proc.stdout
        assert "queueSize = 100" in proc.stdout


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
                 "--slurm_account", "--permutations", "--container_dir"):
        assert name in proc.stdout, name
    work = tmp_path / "work"
    assert not work.exists() or not any(work.iterdir())


@pytest.mark.slow
def test_stub_run_of_the_whole_workflow(tmp_path):
    proc = run_nf(["run", str(REPO / "main.nf"), "-profile", "test", "-stub-run",
                   "--outdir", "out"], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = read_trace(tmp_path / "out" / "pipeline_info" / "execution_trace.txt")
    assert {row["process"] for row in rows} == set(PROCESSES)
    assert all(row["status"] == "COMPLETED" for row in rows)
    models = (DEMO / "models.json").read_text().count('"model_name"')
    datasets = len((DEMO / "datasets.txt").read_text().split())
    counts = {p: sum(row["process"] == p for row in rows) for p in PROCESSES}
    assert counts["EXTRACT_FEATURES"] == counts["LINEAR_PROBE"] == models * datasets
    assert counts["COMPUTE_SIMILARITY"] == counts["MAKE_SUBSET"] == datasets
    out = tmp_path / "out"
    for path in ("consistency/consistency.csv", "performance/similarity_vs_gap.csv",
                 "report/index.html", "pipeline_info/execution_report.html",
                 "pipeline_info/execution_timeline.html", "pipeline_info/pipeline_dag.html"):
        assert (out / path).is_file(), path
    assert len(list((out / "similarities").glob("*.h5"))) == datasets
    assert len(list((out / "probes").glob("*/*.json"))) == models * datasets
