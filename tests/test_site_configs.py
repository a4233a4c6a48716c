"""Institutional site profiles (nf-core/configs' layout) launch pysim with the site's limits.

tests/fixtures/sites holds three test sites, one per pattern that nf-core/configs profiles use:
`newsite` (process.resourceLimits with Nextflow values, an executor scope, its own withLabel
block, Singularity on, an unknown param), `oldsite` (max_* params as MemoryUnit / Duration
values, an executor block, unknown params) and `strsite` (max_* params as strings, a project
param and a clusterOptions closure, a withLabel block on a pysim label). Each launches a stub
run whose trace shows every task's cpus / memory / time after the site's limits: a -c file
makes the local executor as large as a cluster node (PLATFORM.md), so that nothing but the
limits caps a request. The config-only checks (containers, test_full) need no run.
"""

from __future__ import annotations

import json

import pytest
import yaml
from nf_helpers import REPO, latest_trace, read_trace, run_nf, write_inputs

SITES = REPO / "tests" / "fixtures" / "sites"
LOCAL_NODE = "process.executor = 'local'\nexecutor { $local { cpus = 4096; memory = '64 TB' } }\n"
GIB = 2**30
# conf/base.config's requests at attempt 1 (cpus, memory, hours), written here again.
LABELS = {"process_single": (1, 4 * GIB, 2), "process_medium": (8, 32 * GIB, 8),
          "process_gpu": (8, 64 * GIB, 12)}
PROCESS_LABEL = {"VALIDATE": "process_single", "MAKE_SUBSET": "process_single",
                 "REPORT": "process_single", "CONSISTENCY": "process_medium",
                 "EXTRACT_FEATURES": "process_gpu", "COMPUTE_SIMILARITY": "process_gpu"}
# Each site's limits (cpus, memory, hours) as its config writes them, with what the user adds
# on the command line, which wins key by key over the site's (newsite's own time is 10 h,
# strsite's memory 20 GB).
CASES = {
    "newsite": (["--max_time", "7.h"], (6, 40 * GIB, 7)),
    "oldsite": ([], (4, 30 * GIB, 9)),
    "strsite": (["--max_memory", "18.GB"], (3, 18 * GIB, 120)),
}
UNKNOWN = {"newsite": ["--igenomes_base"], "oldsite": ["--igenomes_ignore", "--project"],
           "strsite": ["--project", "--clusterOptions", "--schema_ignore_params"]}


def site_args(site: str) -> list[str]:
    """Arguments naming the test sites and one of their profiles."""
    return ["-profile", site, "--custom_config_base", str(SITES)]


def size(text: str) -> int:
    """Bytes of a trace memory value ('40 GB')."""
    number, unit = text.split()
    return int(float(number) * 2 ** (10 * ["B", "KB", "MB", "GB", "TB"].index(unit)))


def hours(text: str) -> float:
    """Hours of a trace time value ('10h', '5d')."""
    scale = {"h": 1, "d": 24, "m": 1 / 60}
    return float(text[:-1]) * scale[text[-1]]


@pytest.fixture(scope="module", params=list(CASES))
def site_run(request, tmp_path_factory):
    """A stub run of the small demo inputs under one test site (without probes)."""
    case = request.param
    extra, limits = CASES[case]
    launch = tmp_path_factory.mktemp(case)
    inputs = write_inputs(launch / "inputs", model_ids=("timm_vit_tiny", "dino_vit_small_p16"))
    (launch / "node.config").write_text(LOCAL_NODE)
    proc = run_nf(["run", str(REPO / "main.nf"), "-stub-run", *site_args(case),
                   "-c", "node.config", "--models", str(inputs["models"]),
                   "--datasets", str(inputs["datasets"]),
                   "--metrics", str(REPO / "assets" / "demo" / "metrics.json"), "--demo_data",
                   "--skip_probes", "--outdir", "out", *extra], cwd=launch, timeout=900)
    return {"case": case, "proc": proc, "limits": limits, "out": launch / "out"}


@pytest.mark.slow
def test_site_profile_launches_and_its_limits_cap_every_task(site_run):
    proc = site_run["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    max_cpus, max_memory, max_hours = site_run["limits"]
    rows = read_trace(latest_trace(site_run["out"]))
    seen = set()
    for row in rows:
        process = row["process"]
        if process not in PROCESS_LABEL:
            continue
        cpus, memory, hours_ = LABELS[PROCESS_LABEL[process]]
        assert int(row["cpus"]) == min(cpus, max_cpus), row
        assert size(row["memory"]) == min(memory, max_memory), row
        assert hours(row["time"]) == min(hours_, max_hours), row
        seen.add(process)
    assert {"EXTRACT_FEATURES", "COMPUTE_SIMILARITY", "VALIDATE"} <= seen


@pytest.mark.slow
def test_params_unknown_to_pysim_from_a_site_config_only_warn(site_run):
    site = site_run["case"]
    warnings = [line for line in site_run["proc"].stdout.splitlines()
                if "Parameters not used by pysim" in line]
    assert len(warnings) == 1, site_run["proc"].stdout[-3000:]
    named = sorted(warnings[0].split("(ignored): ")[1].split(", "))
    assert named == sorted(UNKNOWN[site])


def test_an_unknown_param_on_the_command_line_stops_unless_checks_are_off(tmp_path):
    base = ["run", str(REPO / "main.nf"), "-preview", "-profile", "test,strsite",
            "--custom_config_base", str(SITES), "--outdir", "out", "--project", "mine"]
    proc = run_nf(base, cwd=tmp_path, timeout=180)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "--project" in line]
    assert any("Unknown parameter --project" in line for line in lines), lines
    proc = run_nf([*base, "--validate_params", "false"], cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def config_flat(tmp_path, *args: str) -> dict[str, str]:
    """`nextflow config -flat` of the pipeline as name -> value text."""
    proc = run_nf(["config", "-flat", str(REPO), *args], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(line.split(" = ", 1) for line in proc.stdout.splitlines() if " = " in line)


def test_without_a_site_the_limits_are_this_machines(tmp_path):
    import os

    limits = config_flat(tmp_path)["process.resourceLimits"]
    assert f"cpus:{os.cpu_count()}" in limits and "time:'24h'" in limits, limits


def test_container_profiles(tmp_path):
    singularity = config_flat(tmp_path, "-profile", "singularity")
    apptainer = config_flat(tmp_path, "-profile", "apptainer")
    assert singularity["singularity.enabled"] == "true"
    assert singularity.get("apptainer.enabled") == "false"
    assert singularity["singularity.runOptions"] == apptainer["apptainer.runOptions"]
    assert singularity["process.container"] == apptainer["process.container"]
    for engine in ("docker", "podman"):
        flat = config_flat(tmp_path, "-profile", f"{engine},gpu")
        assert flat[f"{engine}.enabled"] == "true"
        assert flat["process.container"] == "'pysim-dev/pysim:0.1.0-gpu'"
        assert f"-v {REPO}:{REPO}" in flat[f"{engine}.runOptions"]
    dockerfile = (REPO / "containers" / "Dockerfile").read_text()
    assert "constraints.txt" in dockerfile and "procps" in dockerfile


def test_test_full_profile_holds_the_paper_params(tmp_path):
    proc = run_nf(["config", "-o", "json", "-profile", "test_full", str(REPO)], cwd=tmp_path,
                  timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    params = json.loads(proc.stdout)["params"]
    paper = yaml.safe_load((REPO / "assets" / "paper" / "params.yaml").read_text())
    for key, value in paper.items():
        if isinstance(value, str):
            value = value.replace("${projectDir}", str(REPO))
        assert params[key] == value, key


def test_debug_profile_keeps_work_and_dumps_hashes(tmp_path):
    flat = config_flat(tmp_path, "-profile", "debug")
    assert flat["dumpHashes"] == "true" and flat["cleanup"] == "false"
    assert flat["process.beforeScript"] == "'echo $HOSTNAME'"
