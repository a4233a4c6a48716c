"""Real end-to-end runs of `-profile test`: outputs, entry points by hand, kill/resume, caching.

One finished run (module fixture) serves every test; the tests run in file order because the
last one changes the model table of that run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from nf_helpers import (
    DEMO,
    EXTRA_MODEL,
    TEST_DATASETS,
    TEST_MODELS,
    by_status,
    dataset_key,
    demo_run_args,
    latest_trace,
    read_trace,
    run_files,
    run_nf,
    start_nf,
    write_inputs,
)

from conftest import run_cli
from pysim.config import load_metrics
from pysim.io import read_features, read_similarities

pytestmark = pytest.mark.slow

KEYS = [dataset_key(d) for d in TEST_DATASETS]
RESULTS = Path("results")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted `-profile test` run on 3 demo models x 2 demo datasets."""
    launch = tmp_path_factory.mktemp("reference")
    inputs = write_inputs(launch / "inputs")
    started = time.monotonic()
    proc = run_nf(demo_run_args(inputs), cwd=launch)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    print(f"reference run: {time.monotonic() - started:.1f} s")
    shutil.copytree(launch / "results", launch / "results_first")
    return {"launch": launch, "inputs": inputs, "results": launch / "results_first"}


def test_every_design_output_exists_and_is_readable(reference_run):
    out = reference_run["results"]
    metric_ids = [m.id for m in load_metrics(DEMO / "metrics.json")]
    for key in KEYS:
        for model_id in TEST_MODELS:
            path = out / "features" / key / f"{model_id}.h5"
            train = read_features(path, "train")
            assert train.features.shape[0] == len(train.targets) == len(train.keys) > 0
            with h5py.File(path) as handle:
                assert handle.attrs["model_id"] == model_id
                assert set(handle.attrs) >= {"dataset", "module_name", "pysim_version"}
            probe = json.loads((out / "probes" / key / f"{model_id}.json").read_text())
            assert probe["model_id"] == model_id
            assert 0.0 <= probe["test_acc1"] <= probe["test_acc5"] <= 1.0
        subset = json.loads((out / "subsets" / f"{key}.json").read_text())
        assert {"dataset", "split", "seed", "max_samples", "n_total", "indices"} <= set(subset)
        assert subset["indices"] == sorted(subset["indices"])
        sims = read_similarities(out / "similarities" / f"{key}.h5")
        assert list(sims.model_ids) == list(TEST_MODELS)
        assert sorted(sims.matrices) == sorted(metric_ids)
        for matrix in sims.matrices.values():
            assert matrix.shape == (3, 3) and np.allclose(matrix, matrix.T)
    consistency = pd.read_csv(out / "consistency" / "consistency.csv")
    assert {"metric", "dataset_1", "dataset_2", "category", "group_1", "group_2", "n_pairs",
            "pearson_r", "spearman_r", "mantel_p", "ci_low", "ci_high"} <= set(consistency)
    assert set(consistency["metric"]) == set(metric_ids)
    for metric_id in metric_ids:
        assert len(pd.read_csv(out / "consistency" / f"aggregate_{metric_id}.csv")) == 3
    clusters = pd.read_csv(out / "consistency" / "clusters.csv")
    assert {"dataset", "metric", "model_id", "cluster"} <= set(clusters)
    assert set(consistency["transform"]) == {"none"}
    for metric_id in metric_ids:  # 3 models: t-SNE perplexity clipped to 2
        embedding = pd.read_csv(out / "consistency" / f"embedding_{metric_id}.csv")
        assert list(embedding.columns) == ["dataset", "model_id", "x", "y"]
        assert len(embedding) == 3 * len(KEYS) and np.isfinite(embedding[["x", "y"]]).all().all()
    agreement = pd.read_csv(out / "consistency" / "metric_agreement.csv")
    assert list(agreement.columns) == ["dataset", "metric_1", "metric_2", "pearson_r",
                                       "spearman_r"]
    n_metrics = len(metric_ids)
    assert len(agreement) == n_metrics * (n_metrics - 1) // 2 * len(KEYS)
    # 3 models leave at most 2 others per group: anchors need 3, so the tables have no rows
    anchors = pd.read_csv(out / "consistency" / "anchors.csv")
    assert {"metric", "anchor_model", "category", "group", "dataset_1", "dataset_2",
            "n_models", "pearson_r", "spearman_r", "transform"} <= set(anchors)
    tests = pd.read_csv(out / "consistency" / "anchor_tests.csv")
    assert {"statistic", "p_value", "p_adjusted", "transform"} <= set(tests)
    gap = pd.read_csv(out / "performance" / "similarity_vs_gap.csv")
    assert len(gap) == len(metric_ids) * len(KEYS)
    assert "<html" in (out / "report" / "index.html").read_text().lower()
    assert any((out / "report" / "figures").iterdir())
    figures = {p.name for p in (out / "report" / "figures").iterdir()}
    for prefix in ("embedding__", "meanstd__", "metrics__agreement"):
        assert any(name.startswith(prefix) for name in figures), prefix
    # the paper's figures: PNG + PDF + CSV per panel, each listed on the page
    page = (out / "report" / "index.html").read_text()
    paper = out / "report" / "paper_figures"
    stems = sorted(p.stem for p in paper.glob("*.png"))
    for stem in stems:
        png, pdf = (paper / f"{stem}.png").read_bytes(), (paper / f"{stem}.pdf").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[-8:-4] == b"IEND", stem
        assert pdf[:5] == b"%PDF-" and pdf.rstrip().endswith(b"%%EOF"), stem
        assert len(pd.read_csv(paper / f"{stem}.csv")) > 0, stem
        assert f'src="paper_figures/{stem}.png"' in page, stem
    assert len(list(paper.iterdir())) == 3 * len(stems)
    cka = "cka_kernel_linear_unbiased"
    assert {"fig1_scatter", f"sec4_2_matrices__{cka}", f"sec4_4_scatter__{cka}",
            f"sec4_6_matrix__{cka}__all", f"sec4_7_scatter__{cka}",
            f"appD_mean_std_transformed__{cka}", f"appG_r_per_dataset__{cka}"} <= set(stems)
    assert "appC_delta_box: not drawn from this run" in page  # no ImageNet in the demo
    info = out / "pipeline_info"
    for kind in ("execution_report", "execution_timeline", "pipeline_dag"):
        assert [p.stat().st_size > 0 for p in run_files(info, kind)] == [True], kind
    rows = read_trace(latest_trace(out))
    assert all(row["native_id"].isdigit() for row in rows)  # local executor: the task's pid
    assert set(by_status(rows)) == {"COMPLETED"}


def test_similarities_equal_the_entry_points_run_by_hand(reference_run, tmp_path):
    out = reference_run["results"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in KEYS:
        features = [out / "features" / key / f"{m}.h5" for m in TEST_MODELS]
        subset = tmp_path / f"{key}.json"
        run_cli("pysim-subset", "--features", features[0], "--out", subset, "--max-samples",
                "200", "--seed", "0", check=True, env=env)
        assert json.loads(subset.read_text()) == json.loads(
            (out / "subsets" / f"{key}.json").read_text())
        by_hand = tmp_path / f"{key}.h5"
        args = [a for f in features for a in ("--features", f)]
        run_cli("pysim-similarity", *args, "--metrics", DEMO / "metrics.json", "--subset", subset,
                "--out", by_hand, "--normalize", "l2", "--device", "cpu", check=True, env=env)
        mine, theirs = read_similarities(by_hand), read_similarities(out / "similarities" /
                                                                     f"{key}.h5")
        assert list(mine.model_ids) == list(theirs.model_ids)
        assert sorted(mine.matrices) == sorted(theirs.matrices)
        for metric_id, matrix in mine.matrices.items():
            np.testing.assert_allclose(theirs.matrices[metric_id], matrix, rtol=0, atol=1e-10)


def _completed_rows(launch: Path) -> list[dict[str, str]]:
    try:
        return [r for r in read_trace(latest_trace(launch / RESULTS))
                if r.get("status") == "COMPLETED"]
    except (OSError, KeyError):
        return []


def test_kill_then_resume_recomputes_nothing_finished(reference_run, tmp_path):
    # the very same input files (the demo table may have changed since the reference run)
    shutil.copytree(reference_run["inputs"]["models"].parent, tmp_path / "inputs")
    inputs = {name: tmp_path / "inputs" / path.name
              for name, path in reference_run["inputs"].items()}
    args = demo_run_args(inputs)
    proc = start_nf(args, tmp_path)
    deadline = time.monotonic() + 900
    while len(_completed_rows(tmp_path)) < 5:
        assert proc.poll() is None, (tmp_path / "nextflow.out").read_text()[-3000:]
        assert time.monotonic() < deadline, "no task finished in time"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # Nextflow and its running tasks, like a lost node
    proc.wait()
    finished = {row["name"]: row["workdir"] for row in _completed_rows(tmp_path)}
    assert finished and not (tmp_path / "results" / "report").exists()
    killed_trace = latest_trace(tmp_path / RESULTS)
    time.sleep(1.1)  # the next run's files are stamped with a later second

    resumed = run_nf([*args, "-resume"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-4000:]
    rows = {row["name"]: row for row in read_trace(latest_trace(tmp_path / RESULTS))}
    # the killed run's record is kept next to the resumed run's
    assert latest_trace(tmp_path / RESULTS) != killed_trace and killed_trace.is_file()
    for name, workdir in finished.items():
        assert rows[name]["status"] == "CACHED", name
        assert rows[name]["workdir"] == workdir
    assert by_status(rows.values()).get("COMPLETED"), "the rest of the run was not executed"
    _assert_same_results(tmp_path / "results", reference_run["results"])


def _assert_same_results(mine: Path, reference: Path) -> None:
    for key in KEYS:
        a = read_similarities(mine / "similarities" / f"{key}.h5")
        b = read_similarities(reference / "similarities" / f"{key}.h5")
        assert list(a.model_ids) == list(b.model_ids)
        for metric_id in b.matrices:
            assert np.array_equal(a.matrices[metric_id], b.matrices[metric_id]), metric_id
        for model_id in TEST_MODELS:
            fa = read_features(mine / "features" / key / f"{model_id}.h5", "train")
            fb = read_features(reference / "features" / key / f"{model_id}.h5", "train")
            assert np.array_equal(fa.features, fb.features)
        for rel in [f"subsets/{key}.json"] + [f"probes/{key}/{m}.json" for m in TEST_MODELS]:
            assert json.loads((mine / rel).read_text()) == json.loads((reference / rel).read_text())
    for rel in ("consistency/consistency.csv", "consistency/clusters.csv",
                "performance/similarity_vs_gap.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(mine / rel), pd.read_csv(reference / rel))


def test_resume_after_a_finished_run_caches_every_task(reference_run):
    launch = reference_run["launch"]
    proc = run_nf([*demo_run_args(reference_run["inputs"]), "-resume"], cwd=launch)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rows = read_trace(latest_trace(launch / RESULTS))
    n_models, n_datasets = len(TEST_MODELS), len(KEYS)
    # DEMO_DATA, VALIDATE; extraction and probe per pair; subset and similarity per dataset;
    # CONSISTENCY, SIM_VS_PERF, REPORT
    assert len(rows) == 2 + 2 * n_models * n_datasets + 2 * n_datasets + 3
    assert set(by_status(rows)) == {"CACHED"}, by_status(rows)


def test_adding_a_model_reruns_only_what_depends_on_it(reference_run):
    launch, inputs = reference_run["launch"], reference_run["inputs"]
    table = json.loads(inputs["models"].read_text())
    table[EXTRA_MODEL] = json.loads((DEMO / "models.json").read_text())[EXTRA_MODEL]
    inputs["models"].write_text(json.dumps(table, indent=2))  # appended: the others unchanged
    proc = run_nf([*demo_run_args(inputs), "-resume"], cwd=launch)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    status = {row["name"]: row["status"] for row in read_trace(latest_trace(launch / RESULTS))}
    expected = {"DEMO_DATA": "CACHED", "VALIDATE": "COMPLETED", "CONSISTENCY": "COMPLETED",
                "SIM_VS_PERF": "COMPLETED", "REPORT": "COMPLETED"}
    for key in KEYS:
        expected[f"MAKE_SUBSET ({key})"] = "CACHED"
        expected[f"COMPUTE_SIMILARITY ({key})"] = "COMPLETED"
        for model_id in (*TEST_MODELS, EXTRA_MODEL):
            again = "COMPLETED" if model_id == EXTRA_MODEL else "CACHED"
            expected[f"EXTRACT_FEATURES ({model_id} {key})"] = again
            expected[f"LINEAR_PROBE ({model_id} {key})"] = again
    assert status == expected
    sims = read_similarities(launch / "results" / "similarities" / f"{KEYS[0]}.h5")
    assert list(sims.model_ids) == [*TEST_MODELS, EXTRA_MODEL]
