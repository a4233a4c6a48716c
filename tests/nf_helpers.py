"""Helpers for the workflow tests: find Nextflow, run it on small demo inputs, read its trace.

The tests run the real workflow; entry points in bin/ use `#!/usr/bin/env python3`, so the
directory of the interpreter running pytest goes first on PATH.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "assets" / "demo"
# A few cheap demo models and two datasets keep each real run near a minute on 2 cores.
TEST_MODELS = ("timm_vit_tiny", "dino_vit_small_p16", "openclip_tiny_rn")
EXTRA_MODEL = "tv_resnet18"
TEST_DATASETS = ("wds/demo_digits", "wds/demo_shapes")


def nextflow_bin() -> str:
    """Path of the Nextflow launcher (the project's pinned one first), or skip the test."""
    local = REPO / ".tools" / "bin" / "nextflow"
    if local.exists():
        return str(local)
    found = shutil.which("nextflow")
    if found is None:
        pytest.skip("Nextflow not installed (run `make setup`)")
    return found


def nf_env() -> dict[str, str]:
    """Environment for Nextflow: this interpreter's bin first on PATH, plain log output."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["NXF_ANSI_LOG"] = "false"
    env.setdefault("NXF_OPTS", "-Xms64m -Xmx1g")
    return env


def run_nf(args: list[str], cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run `nextflow <args>` in cwd and return the finished process (stdout and stderr text)."""
    return subprocess.run([nextflow_bin(), *args], cwd=cwd, env=nf_env(), text=True,
                          capture_output=True, timeout=timeout)


def start_nf(args: list[str], cwd: Path) -> subprocess.Popen:
    """Start `nextflow <args>` in its own process group (so that it can be killed as a whole)."""
    log = open(cwd / "nextflow.out", "w")  # noqa: SIM115 (closed by the caller via proc.stdout)
    return subprocess.Popen([nextflow_bin(), *args], cwd=cwd, env=nf_env(), text=True,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def write_inputs(folder: Path, model_ids: tuple[str, ...] = TEST_MODELS) -> dict[str, Path]:
    """Write a model table with `model_ids` (demo entries, demo order) and a dataset list."""
    folder.mkdir(parents=True, exist_ok=True)
    table = json.loads((DEMO / "models.json").read_text())
    models = folder / "models.json"
    models.write_text(json.dumps({k: table[k] for k in model_ids}, indent=2))
    datasets = folder / "datasets.txt"
    datasets.write_text("".join(f"{d}\n" for d in TEST_DATASETS))
    return {"models": models, "datasets": datasets}


def demo_run_args(inputs: dict[str, Path], outdir: str = "results") -> list[str]:
    """Arguments of a `-profile test` run on the small inputs."""
    return ["run", str(REPO / "main.nf"), "-profile", "test", "--models", str(inputs["models"]),
            "--datasets", str(inputs["datasets"]), "--outdir", outdir]


def read_trace(path: Path) -> list[dict[str, str]]:
    """Rows of a Nextflow trace file (tab-separated, header line), each process by its own
    name: the workflow scope (`NFCORE_PYSIM:PYSIM:FEATURES:`) left out of process and name."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    for row in rows:
        for column in ("process", "name"):
            if column in row:
                row[column] = row[column].rpartition(":")[2] if column == "process" \
                    else re.sub(r"^[\w:]*:", "", row[column])
    return rows


def run_files(info: Path, prefix: str) -> list[Path]:
    """pipeline_info files of one kind (e.g. 'execution_trace'), oldest run first.

    Their names carry the run's start time (yyyy-MM-dd_HH-mm-ss), which sorts as text.
    """
    return sorted(Path(info).glob(f"{prefix}_*"))


def latest_trace(outdir: Path) -> Path:
    """The trace file of the newest run that wrote into `outdir`/pipeline_info."""
    traces = run_files(Path(outdir) / "pipeline_info", "execution_trace")
    if not traces:
        raise FileNotFoundError(f"no execution_trace_*.txt in {outdir}/pipeline_info")
    return traces[-1]


def by_status(rows: list[dict[str, str]]) -> dict[str, list[str]]:
    """Task names grouped by trace status (COMPLETED, CACHED, FAILED, ...)."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row["status"], []).append(row["name"])
    return groups


def dataset_key(dataset_id: str) -> str:
    """Output key of a dataset id (DESIGN §3)."""
    return dataset_id.replace("/", "_")


# Short SLURM polling and quick sbatch retries for runs on the test cluster (a -c file).
SLURM_TEST_CONFIG = """
executor {
    $slurm {
        queueStatInterval = '2 sec'
        pollInterval      = '1 sec'
        exitReadTimeout   = '10 sec'
        submitRateLimit   = '20/1sec'
    }
    retry {
        delay       = '1 sec'
        maxDelay    = '2 sec'
        maxAttempts = 60
    }
}
"""

_VALUE = {
    "cpus": re.compile(r"cpus\s*=\s*(\d+)"),
    "memory": re.compile(r"memory\s*=\s*\{\s*(\d+)\.GB \* task\.attempt\s*\}"),
    "time": re.compile(r"time\s*=\s*\{\s*(\d+)\.h \* task\.attempt\s*\}"),
}


def base_label_resources(text: str | None = None) -> dict[str, dict[str, int]]:
    """{label: {cpus, memory (GB), time (h)}} read from the text of conf/base.config."""
    text = (REPO / "conf" / "base.config").read_text() if text is None else text
    labels = {}
    for chunk in re.split(r"withLabel:\s*(?=')", text)[1:]:  # each runs to the next label
        name = re.match(r"'(\w+)'", chunk).group(1)
        labels[name] = {key: int(rx.search(chunk).group(1)) for key, rx in _VALUE.items()}
    return labels


def process_labels(gpu: bool = False) -> dict[str, str]:
    """{PROCESS: label} from modules/*.nf (a file holds the processes of one entry point).

    A label chosen by the device (`label((params.probe_device ?: params.device) == 'cuda' ?
    'process_gpu' : 'process_medium')`) reads as its first choice with `gpu` (-profile gpu
    sets --device cuda), else its second.
    """
    out = {}
    for path in sorted((REPO / "modules").glob("*.nf")):
        for text in re.split(r"^(?=process \w+)", path.read_text(), flags=re.M)[1:]:
            name = re.match(r"process (\w+)", text).group(1)
            chosen = re.search(r"^\s*label\(.*== 'cuda' \? '(\w+)' : '(\w+)'\)", text, re.M)
            if chosen:
                out[name] = chosen.group(1) if gpu else chosen.group(2)
            else:
                out[name] = re.search(r"label '(\w+)'", text).group(1)
    return out


def sbatch_directives(command_run: Path) -> dict[str, str]:
    """The `#SBATCH` options of a task's .command.run ({'-c': '8', '--mem': '65536M', ...})."""
    out = {}
    for line in Path(command_run).read_text().splitlines():
        if line.startswith("#SBATCH "):
            option = line[len("#SBATCH "):].strip()
            key, _, value = option.replace("=", " ", 1).partition(" ")
            out[key] = value.strip()
    return out


# Processes whose memory and time grow with their input file (nextflow.config, withName).
GROWS_WITH_INPUT = {"LINEAR_PROBE"}


def _slurm_seconds(text: str) -> int:
    """Seconds of a SLURM time limit ('HH:MM:SS' or 'D-HH:MM:SS')."""
    days, _, clock = text.rpartition("-")
    hours, minutes, seconds = (int(v) for v in clock.split(":"))
    return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds


def check_jobs_have_label_resources(rows: list[dict[str, str]], show_job,
                                    gpu: bool = False) -> None:
    """Each task's `#SBATCH` lines and SLURM job carry its label's conf/base.config resources.

    `show_job(job_id)` returns scontrol's fields of a job; GPU tasks go to partition `gpu`
    with `--gres=gpu:1`, the others to `cpu` without a gres. `gpu`: the run's --device is cuda
    (-profile gpu), so LINEAR_PROBE is a GPU task (process_labels).
    """
    labels, resources = process_labels(gpu), base_label_resources()
    for row in rows:
        label = labels[row["process"]]
        want = resources[label]
        sbatch = sbatch_directives(Path(row["workdir"]) / ".command.run")
        where = (row["name"], sbatch)
        # Nextflow leaves out `-c` for one CPU (SLURM's default)
        assert sbatch.get("-c", "1") == str(want["cpus"]), where
        job = show_job(row["native_id"])
        assert job["NumCPUs"] == str(want["cpus"]), (row["name"], job)
        mem_mb, seconds = int(sbatch["--mem"].removesuffix("M")), _slurm_seconds(sbatch["-t"])
        if row["process"] in GROWS_WITH_INPUT:  # the label's request, or more
            assert mem_mb >= want["memory"] * 1024 and seconds >= want["time"] * 3600, where
        else:
            assert mem_mb == want["memory"] * 1024 and seconds == want["time"] * 3600, where
            assert job["MinMemoryNode"] == f"{want['memory']}G", (row["name"], job)
        gpu = label == "process_gpu"
        assert sbatch["-p"] == job["Partition"] == ("gpu" if gpu else "cpu"), where
        assert sbatch.get("--gres") == ("gpu:1" if gpu else None), where
        assert ("gpu:1" in job.get("TresPerNode", "")) == gpu, (row["name"], job)
