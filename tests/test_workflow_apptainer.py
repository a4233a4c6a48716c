"""The README's cluster command for real: `-profile slurm,gpu,apptainer` on the one-node SLURM
cluster, every task in a real Apptainer image, pretrained weights from a `--weights_dir`.

The weights are made here (seeded) and placed in the real cache layouts that the sources' own
loaders read offline: a Hugging Face hub cache (timm and OpenCLIP) and a torch hub checkpoint
(torchvision). The image is a small Debian one that runs this checkout's Python environment
(tests/apptainer_image.py). There is no GPU here, so `--device cpu` overrides the gpu profile's
device; everything else (labels, partitions, gres, --nv, binds, variables) is the production path.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import apptainer_image
import h5py
import numpy as np
import pytest
from nf_helpers import (
    DEMO,
    REPO,
    SLURM_TEST_CONFIG,
    TEST_DATASETS,
    by_status,
    check_jobs_have_label_resources,
    dataset_key,
    latest_trace,
    nextflow_bin,
    nf_env,
    read_trace,
)

from conftest import FIXTURES, run_cli
from pysim.io import read_features
from pysim.models.caches import weights_dir_env
from weights_cache import place_pretrained_weights

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

PRETRAINED = FIXTURES / "pretrained_models.json"
MODELS = tuple(json.loads(PRETRAINED.read_text()))
SMALL_RUN = ["--device", "cpu", "--precision", "fp32", "--max_samples", "200",
             "--batch_size", "64", "--num_workers", "0", "--probe_lrs", "0.1",
             "--probe_epochs", "2", "--probe_seeds", "0", "--permutations", "49",
             "--bootstrap", "20"]


@pytest.fixture(scope="module")
def image():
    reason = apptainer_image.unavailable_reason()
    if reason:
        pytest.skip(f"no Apptainer: {reason}")
    started = time.monotonic()
    path = apptainer_image.build_image()
    print(f"test image: {time.monotonic() - started:.1f} s (cached after the first build)")
    return path


def _env(base: dict[str, str]) -> dict[str, str]:
    """Nextflow's environment with `apptainer` on PATH (the private root's wrapper if needed)."""
    env = dict(base)
    entry = apptainer_image.apptainer_path_entry()
    if entry:
        env["PATH"] = entry + os.pathsep + env["PATH"]
    return env


def _inputs(folder: Path, model_ids=MODELS) -> dict[str, Path]:
    folder.mkdir(parents=True)
    table = json.loads(PRETRAINED.read_text())
    models = folder / "models.json"
    models.write_text(json.dumps({m: table[m] for m in model_ids}, indent=2))
    datasets = folder / "datasets.txt"
    datasets.write_text("".join(f"{d}\n" for d in TEST_DATASETS))
    config = folder / "slurm_test.config"
    config.write_text(SLURM_TEST_CONFIG)
    return {"models": models, "datasets": datasets, "config": config}


def _run_args(inputs, image_path: Path, weights: Path, profile: str) -> list[str]:
    return ["run", str(REPO / "main.nf"), "-profile", profile,
            "--models", str(inputs["models"]), "--datasets", str(inputs["datasets"]),
            "--metrics", str(DEMO / "metrics.json"), "--demo_data", "--outdir", "results",
            "--weights_dir", str(weights), "--container", str(image_path),
            "--apptainer_userns", "true",
            "--apptainer_binds", ",".join(apptainer_image.host_python_binds()),
            "-c", str(inputs["config"]), *SMALL_RUN]


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_cluster_command_in_apptainer_with_pretrained_weights(slurm_cluster, image, tmp_path):
    weights = tmp_path / "weights"
    placed = place_pretrained_weights(PRETRAINED, list(MODELS), weights)
    inputs = _inputs(tmp_path / "inputs")
    args = _run_args(inputs, image, weights, "slurm,gpu,apptainer")
    args += ["--cpu_partition", "cpu", "--gpu_partition", "gpu", "--gpu_gres", "gpu:1"]
    started = time.monotonic()
    proc = subprocess.run([nextflow_bin(), *args], cwd=tmp_path,
                          env=_env(slurm_cluster.env(nf_env())), text=True,
                          capture_output=True, timeout=1500)
    print(f"slurm + apptainer run: {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:] + slurm_cluster.logs()

    rows = read_trace(latest_trace(tmp_path / "results"))
    assert set(by_status(rows)) == {"COMPLETED"}
    check_jobs_have_label_resources(rows, slurm_cluster.show_job)
    for row in rows:  # every task ran in the image; GPU tasks with --nv
        wrapper = (Path(row["workdir"]) / ".command.run").read_text()
        assert "apptainer exec" in wrapper and str(image) in wrapper, row["name"]
        assert ("--nv" in wrapper) == (row["process"] in ("EXTRACT_FEATURES",
                                                          "COMPUTE_SIMILARITY")), row["name"]

    # Features come from the placed weights (not a random init), read inside the image...
    out = tmp_path / "results"
    demo_root = next(Path(r["workdir"]) / "demo-data" for r in rows if r["process"] == "DEMO_DATA")
    for model_id, weights_file in placed.items():
        for key in map(dataset_key, TEST_DATASETS):
            with h5py.File(out / "features" / key / f"{model_id}.h5") as handle:
                attrs = dict(handle.attrs)
            provenance = json.dumps({k: str(v) for k, v in attrs.items()})
            assert _sha256(weights_file) in provenance, (model_id, key)
    # ...and equal a run of the same entry point on the host, outside the container.
    host_env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="8",
                    **weights_dir_env(weights), HF_HUB_CACHE=str(weights / "huggingface" / "hub"))
    for model_id in MODELS:
        host = tmp_path / "host" / f"{model_id}.h5"
        run_cli("pysim-extract", "--models", inputs["models"], "--model-id", model_id,
                "--dataset-root", demo_root, "--dataset", TEST_DATASETS[0], "--out", host,
                "--device", "cpu", "--precision", "fp32", "--batch-size", "64",
                "--num-workers", "0", check=True, env=host_env)
        for split in ("train", "test"):
            mine = read_features(host, split)
            theirs = read_features(out / "features" / dataset_key(TEST_DATASETS[0]) /
                                   f"{model_id}.h5", split)
            assert np.array_equal(mine.keys, theirs.keys)
            np.testing.assert_allclose(theirs.features, mine.features, rtol=0, atol=1e-6)
    assert (out / "report" / "index.html").is_file()


def test_missing_weights_stop_the_run_in_validate(image, tmp_path):
    weights = tmp_path / "weights"
    placed = place_pretrained_weights(PRETRAINED, list(MODELS), weights)
    gone = MODELS[-1]
    Path(placed[gone]).unlink()  # a torch hub checkpoint: one file
    inputs = _inputs(tmp_path / "inputs")
    proc = subprocess.run([nextflow_bin(), *_run_args(inputs, image, weights, "apptainer")],
                          cwd=tmp_path, env=_env(nf_env()), text=True, capture_output=True,
                          timeout=900)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    naming = [line for line in output.splitlines() if "weights missing" in line]
    # the task's one line (the completion summary repeats it)
    assert len({line.strip().removeprefix("error: ") for line in naming}) == 1, output[-3000:]
    for line in naming:
        assert gone in line and str(weights) in line
        assert not any(m in line for m in MODELS if m != gone)
    rows = read_trace(latest_trace(tmp_path / "results"))
    assert [r["process"] for r in rows if r["status"] == "FAILED"] == ["VALIDATE"]
    assert not [r for r in rows if r["process"] == "EXTRACT_FEATURES"]
