"""Workflow tests that need Nextflow but no real computation: config, params, help, stub run."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from nf_helpers import (
    DEMO,
    REPO,
    TEST_MODELS,
    base_label_resources,
    demo_run_args,
    latest_trace,
    read_trace,
    run_files,
    run_nf,
    write_inputs,
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
    assert "manifest.nextflowVersion = '!>=24.10.0'" in proc.stdout
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
                 "--similarity_memory", "--max_memory", "--max_time", "--apptainer_binds",
                 "--array_size", "--consistency_transform", "--consistency_anchors",
                 "--decode"):
        assert name in proc.stdout, name
    work = tmp_path / "work"
    assert not work.exists() or not any(work.iterdir())


# Launch-time refusals: one line naming the problem, before any task (so before any GPU job).
LAUNCH_ERRORS = {
    "gpu image missing": (["-profile", "gpu,apptainer", "--container_dir", "{tmp}"],
                          "image not found: {tmp}/pysim-gpu.sif (GPU tasks run on CUDA)"),
    "bad similarity memory": (["--similarity_memory", "lots"],
                              "--similarity_memory: cannot read size 'lots'"),
    "array size over SLURM's limit": (["-profile", "slurm", "--array_size", "5000"],
                                      "--array_size must be an integer from 0 to 1000"),
    "unknown decode": (["--decode", "nvjpeg"], "--decode must be cpu or gpu, got 'nvjpeg'"),
    "unknown transform": (["--consistency_transform", "log"],
                          "--consistency_transform must be none, tan or arccos, got 'log'"),
    "weights dir missing": (["--weights_dir", "{tmp}/nowhere"],
                            "--weights_dir: folder not found: {tmp}/nowhere"),
    # hard links (the default --publish_dir_mode) cannot cross file systems: said at launch,
    # not after the first extraction (Nextflow 24.10 then fails "Invalid cross-device link")
    "hard links across file systems": (["--outdir", "/dev/shm/pysim-out-{name}"],
                                       "--publish_dir_mode link: --outdir "
                                       "/dev/shm/pysim-out-{name} and the work folder "
                                       "{tmp}/work are on different file systems"),
}


@pytest.mark.parametrize("case", list(LAUNCH_ERRORS))
def test_launch_refusals_are_one_line_before_any_task(case, tmp_path):
    extra, message = LAUNCH_ERRORS[case]
    names = {"tmp": tmp_path, "name": tmp_path.name}
    if "/dev/shm" in " ".join(extra) and (not Path("/dev/shm").is_dir() or
                                          os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev):
        pytest.skip("/dev/shm is not a file system of its own here")
    extra = [arg.format(**names) for arg in extra]
    outdir = [] if "--outdir" in extra else ["--outdir", str(tmp_path / "out")]
    args = ["run", str(REPO / "main.nf"), "--models", str(DEMO / "models.json"),
            "--datasets", str(DEMO / "datasets.txt"), "--metrics", str(DEMO / "metrics.json"),
            "--demo_data", *outdir, *extra]
    try:
        proc = run_nf(args, cwd=tmp_path, timeout=180)
    finally:
        if "/dev/shm" in " ".join(extra):  # the run's pipeline_info folder, if any
            shutil.rmtree(extra[extra.index("--outdir") + 1], ignore_errors=True)
    assert proc.returncode != 0
    output = (proc.stdout + proc.stderr).splitlines()
    naming = [line for line in output if message.format(**names) in line]
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


@pytest.mark.slow
def test_probe_on_cuda_gets_its_device_and_memory_from_the_features(tmp_path):
    # No GPU here: a real run whose probe asks for CUDA fails in pysim-probe itself, which shows
    # that `--device cuda` reached its command. Its label is then process_gpu: a site config's
    # block for that label (a tiny memory) is what the probe starts from, and its memory grows
    # to 3 x its features file. Features are published as hard links (the default).
    inputs = write_inputs(tmp_path / "inputs", TEST_MODELS[:1])
    inputs["datasets"].write_text("wds/demo_digits\n")
    site = tmp_path / "site.config"
    site.write_text("process { withLabel: 'process_gpu' { cpus = 1; "
                    "memory = { 100.KB * task.attempt }; time = { 1.h * task.attempt } } }\n")
    args = demo_run_args(inputs) + ["--probe_device", "cuda", "--similarity_memory", "64.MB",
                                    "-c", str(site)]
    proc = run_nf(args, cwd=tmp_path, timeout=600)
    assert proc.returncode != 0
    rows = {row["process"]: row for row in read_trace(latest_trace(tmp_path / "results"))}
    probe, extract = rows["LINEAR_PROBE"], rows["EXTRACT_FEATURES"]
    assert probe["status"] == "FAILED" and probe["exit"] == "2", probe
    task_dir = Path(probe["workdir"])
    assert "--device cuda" in (task_dir / ".command.sh").read_text()
    assert "--device cuda was requested but torch sees no CUDA device" in \
        (task_dir / ".command.err").read_text()

    features = Path(extract["workdir"]) / "timm_vit_tiny.h5"
    assert extract["memory"] == "100 KB"
    value, unit = probe["memory"].split()
    scale = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[unit]
    assert abs(float(value) * scale - 3 * features.stat().st_size) <= 0.05 * scale, probe["memory"]

    published = tmp_path / "results" / "features" / "wds_demo_digits" / "timm_vit_tiny.h5"
    assert published.stat().st_ino == features.stat().st_ino and published.stat().st_nlink == 2
