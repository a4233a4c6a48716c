"""A real `-profile test` run whose dataset list holds derived ids (BREEDS, imagenet-subset).

The list names `wds/demo_digits`, `living17` and `imagenet-subset-5k` but not ImageNet: the
ImageNet-like demo dataset is extracted once per model, sliced per derived id, and analysed
only through them; the subset-size sensitivity runs on 1, 5 and 10 (the reference) per
class. Expected files are re-derived here from the ImageNet features and the class lists'
JSON, then pushed through the entry points by hand.

`--performance_datasets` names `wds/demo_digits`, `living17` and `wds/imagenet1k` (the
original's second list): ImageNet is probed on its full splits, not analysed, and gives
`imagenet-subset-5k` (the same display name in the run's dataset table) its accuracies in
`similarity_vs_gap.csv`; the subset itself is not probed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from nf_helpers import REPO, TEST_MODELS, by_status, latest_trace, read_trace, run_nf
from scipy.stats import pearsonr, spearmanr

from conftest import run_cli
from pysim.demo import (
    DEMO_IMAGENET_CLASSES,
    DEMO_IMAGENET_PER_CLASS,
    write_demo_datasets,
    write_demo_imagenet,
)
from pysim.io import SplitFeatures, read_features, read_similarities, write_features

pytestmark = pytest.mark.slow

DATASETS = ("wds/demo_digits", "living17", "imagenet-subset-5k")
KEYS = ("wds_demo_digits", "living17", "imagenet-subset-5k")
DERIVED = ("living17", "imagenet-subset-5k")
PERFORMANCE = ("wds/demo_digits", "living17", "wds/imagenet1k")
PERF_KEYS = ("wds_demo_digits", "living17", "wds_imagenet1k")
SIZES = (1, 5, 10)
TASKS = json.loads((REPO / "pysim" / "data" / "breeds_tasks.json").read_text())
DEMO = REPO / "assets" / "demo"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run on 3 demo models; ImageNet is extracted but is not in the list."""
    launch = tmp_path_factory.mktemp("derived")
    root = launch / "data"
    write_demo_datasets(root)
    write_demo_imagenet(root)
    table = json.loads((DEMO / "models.json").read_text())
    models = launch / "models.json"
    models.write_text(json.dumps({k: table[k] for k in TEST_MODELS}))
    datasets = launch / "datasets.txt"
    datasets.write_text("".join(f"{d}\n" for d in DATASETS))
    performance = launch / "performance.txt"
    performance.write_text("".join(f"{d}\n" for d in PERFORMANCE))
    info = json.loads((DEMO / "dataset_info.json").read_text())
    info.update({d: {"name": "ImageNet-1k", "domain": "Natural (multi-domain)"}
                 for d in ("wds/imagenet1k", "imagenet-subset-5k")})
    (launch / "dataset_info.json").write_text(json.dumps(info))
    proc = run_nf(["run", str(REPO / "main.nf"), "-profile", "test", "--demo_data", "false",
                   "--dataset_root", str(root), "--models", str(models), "--datasets",
                   str(datasets), "--performance_datasets", str(performance), "--dataset_info",
                   str(launch / "dataset_info.json"), "--outdir", "results",
                   "--subset_sizes", "1,5"], cwd=launch)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {"out": launch / "results", "log": proc.stdout + proc.stderr}


def test_tasks_imagenet_extracted_once_and_not_analysed(run):
    rows = read_trace(latest_trace(run["out"]))
    assert set(by_status(rows)) == {"COMPLETED"}
    count = {p: sum(r["process"] == p for r in rows) for p in {r["process"] for r in rows}}
    assert count["EXTRACT_FEATURES"] == len(TEST_MODELS) * 2  # demo_digits and ImageNet
    sizes = ("imagenet-subset-1k", "imagenet-subset-10k")  # 5k: derived once, used twice
    assert count["DERIVE_FEATURES"] == len(TEST_MODELS) * (len(DERIVED) + len(sizes))
    assert count["FULL_SUBSET"] == count["SUBSET_SIZE_SIMILARITY"] == len(SIZES)
    assert count["SUBSET_SIZE"] == 1
    assert count["MAKE_SUBSET"] == count["COMPUTE_SIMILARITY"] == len(DATASETS)
    assert count["LINEAR_PROBE"] == len(TEST_MODELS) * len(PERFORMANCE)
    assert "wds/imagenet1k: probed for --performance_datasets; not in --datasets, so not " \
        "analysed as a dataset of its own" in run["log"]
    out = run["out"]
    assert sorted(p.stem for p in (out / "similarities").glob("*.h5")) == sorted(KEYS)
    # the performance list's datasets: full ImageNet, not the analysed subset
    assert sorted(p.name for p in (out / "probes").iterdir()) == sorted(PERF_KEYS)
    assert (out / "features" / "wds_imagenet1k").is_dir()  # published, not analysed


def sliced(imagenet: Path, split: str) -> SplitFeatures:
    """A living17 split re-derived here from the ImageNet file and the JSON class lists."""
    with h5py.File(imagenet) as f:
        feats, targets = f[split]["features"][()], f[split]["targets"][()].tolist()
        keys = [k.decode() for k in f[split]["keys"][()]]
    task = TASKS["living17"]
    classes = task["source_classes" if split == "train" else "target_classes"]
    rows = [i for i, t in enumerate(targets) if t in classes]
    labels = [task["superclass_of"][str(targets[i])] for i in rows]
    return SplitFeatures(feats[rows], np.array(labels), np.array([keys[i] for i in rows]))


@pytest.mark.parametrize("model_id", TEST_MODELS)
def test_living17_features_are_the_imagenet_rows_of_its_classes(run, model_id):
    imagenet = run["out"] / "features" / "wds_imagenet1k" / f"{model_id}.h5"
    derived = run["out"] / "features" / "living17" / f"{model_id}.h5"
    for split in ("train", "test"):
        want, got = sliced(imagenet, split), read_features(derived, split)
        assert np.array_equal(got.features, want.features)
        assert got.targets.tolist() == want.targets.tolist()
        assert got.keys.tolist() == want.keys.tolist()
    probe = json.loads((run["out"] / "probes" / "living17" / f"{model_id}.json").read_text())
    assert probe["n_train"] == len(sliced(imagenet, "train").targets)
    assert probe["n_test"] == len(sliced(imagenet, "test").targets)
    assert 0.0 <= probe["test_acc1"] <= 1.0


def test_subset_features_have_five_per_class_and_the_same_rows_for_every_model(run):
    keys = []
    for model_id in TEST_MODELS:
        got = read_features(run["out"] / "features" / "imagenet-subset-5k" / f"{model_id}.h5")
        classes, counts = np.unique(got.targets, return_counts=True)
        assert classes.tolist() == sorted(DEMO_IMAGENET_CLASSES) and set(counts) == {5}
        keys.append(got.keys.tolist())
    assert keys[0] == keys[1] == keys[2]


def test_derived_similarities_equal_the_entry_points_on_hand_sliced_files(run, tmp_path):
    out, env = run["out"], dict(os.environ, OMP_NUM_THREADS="1")
    files = []
    for model_id in TEST_MODELS:
        imagenet = out / "features" / "wds_imagenet1k" / f"{model_id}.h5"
        path = tmp_path / "living17" / f"{model_id}.h5"
        write_features(path, {s: sliced(imagenet, s) for s in ("train", "test")},
                       {"model_id": model_id, "dataset": "living17", "module_name": "x"})
        files.append(path)
    subset = tmp_path / "living17.json"
    run_cli("pysim-subset", "--features", files[0], "--out", subset, "--max-samples", "200",
            "--seed", "0", check=True, env=env)
    assert json.loads(subset.read_text())["indices"] == json.loads(
        (out / "subsets" / "living17.json").read_text())["indices"]
    by_hand = tmp_path / "living17.h5"
    run_cli("pysim-similarity", *[a for f in files for a in ("--features", f)], "--metrics",
            DEMO / "metrics.json", "--subset", subset, "--out", by_hand, "--normalize", "l2",
            "--device", "cpu", check=True, env=env)
    mine, theirs = read_similarities(by_hand), read_similarities(out / "similarities" /
                                                                 "living17.h5")
    assert list(theirs.model_ids) == list(TEST_MODELS)
    for metric_id, matrix in mine.matrices.items():
        assert matrix.shape == (3, 3)
        np.testing.assert_allclose(theirs.matrices[metric_id], matrix, rtol=0, atol=1e-10)


def test_consistency_pairs_the_derived_datasets(run):
    table = pd.read_csv(run["out"] / "consistency" / "consistency.csv")
    named = set(table["dataset_1"]) | set(table["dataset_2"])
    assert {"living17", "imagenet-subset-5k"} <= named
    assert not any("imagenet1k" in str(d) for d in named)


def test_subset_size_table_against_its_published_similarities(run):
    out = run["out"]
    table = pd.read_csv(out / "consistency" / "subset_size.csv")
    assert list(table.columns) == ["metric", "samples_per_class", "pearson_r"]
    n_classes = len(DEMO_IMAGENET_CLASSES)
    sims = {}
    for n in SIZES:
        sims[n] = read_similarities(out / "subset_size" / "similarities" /
                                    f"imagenet-subset-{n}k.h5")
        assert list(sims[n].model_ids) == list(TEST_MODELS)
        for attrs in sims[n].metric_attrs.values():  # every image, no --max_samples cap
            assert attrs["n_samples"] == n * n_classes
    assert sorted(table.samples_per_class.unique()) == list(SIZES)
    rows, cols = np.triu_indices(len(TEST_MODELS), k=1)
    for metric, matrix in sims[10].matrices.items():
        for n in SIZES:
            want = np.corrcoef(matrix[rows, cols], sims[n].matrices[metric][rows, cols])[0, 1]
            got = table[(table.metric == metric) & (table.samples_per_class == n)].pearson_r
            assert got.tolist() == pytest.approx([want], abs=1e-9)


def probe_accuracies(out: Path, key: str) -> dict[str, dict]:
    return {m: json.loads((out / "probes" / key / f"{m}.json").read_text()) for m in TEST_MODELS}


def test_imagenet_probed_on_its_full_splits(run):
    n_classes = len(DEMO_IMAGENET_CLASSES)
    for model_id, probe in probe_accuracies(run["out"], "wds_imagenet1k").items():
        imagenet = run["out"] / "features" / "wds_imagenet1k" / f"{model_id}.h5"
        with h5py.File(imagenet) as f:
            n_train, n_test = len(f["train"]["targets"]), len(f["test"]["targets"])
        assert (n_train, n_test) == (DEMO_IMAGENET_PER_CLASS["train"] * n_classes,
                                     DEMO_IMAGENET_PER_CLASS["test"] * n_classes)
        assert (probe["dataset"], probe["n_train"], probe["n_test"]) == (
            "wds/imagenet1k", n_train, n_test)


def test_similarity_vs_gap_takes_full_imagenets_accuracy_for_the_subset(run):
    out = run["out"]
    table = pd.read_csv(out / "performance" / "similarity_vs_gap.csv")
    sources = dict(zip(table["dataset"], table["performance_dataset"], strict=False))
    assert sources == {"wds/demo_digits": "wds/demo_digits", "living17": "living17",
                       "imagenet-subset-5k": "wds/imagenet1k"}
    for dataset, key in zip(DATASETS, KEYS, strict=True):
        sims = read_similarities(out / "similarities" / f"{key}.h5")
        assert list(sims.model_ids) == list(TEST_MODELS)
        perf_key = sources[dataset].replace("/", "_")
        accs = {m: p["test_acc1"] for m, p in probe_accuracies(out, perf_key).items()}
        for metric, matrix in sims.matrices.items():
            xs, gaps = [], []
            for i in range(len(TEST_MODELS)):
                for j in range(i + 1, len(TEST_MODELS)):
                    xs.append(float(matrix[i, j]))
                    gaps.append(abs(accs[TEST_MODELS[i]] - accs[TEST_MODELS[j]]))
            row = table[(table.metric == metric) & (table.dataset == dataset)].iloc[0]
            assert row["n_pairs"] == len(xs) == 3
            assert row["pearson_r"] == pytest.approx(pearsonr(xs, gaps)[0], abs=1e-9)
            assert row["spearman_r"] == pytest.approx(spearmanr(xs, gaps)[0], abs=1e-9)
