"""pysim-subset: stratified, seeded, sorted subset indices (DESIGN §1.2, §5)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from pysim.io import SplitFeatures, write_features
from pysim.subset import class_quotas, per_class_quotas, stratified_indices


def write_targets(path: Path, targets: np.ndarray, dataset: str = "wds_toy") -> Path:
    n = len(targets)
    keys = np.array([f"k{i}" for i in range(n)])
    split = SplitFeatures(np.zeros((n, 2), np.float32), targets, keys)
    write_features(path, {"train": split}, {"model_id": "m", "dataset": dataset,
                                           "module_name": "head"})
    return path


def original_rule(class_sizes: list[int], max_samples: int) -> list[int]:
    """The original study's notebook, re-derived: ceil(max / C) per class, capped by the class."""
    per_class = -(-max_samples // len(class_sizes))  # integer ceil
    return [min(n, per_class) for n in class_sizes]


def shuffled_labels(sizes, labels, seed=0) -> np.ndarray:
    targets = np.repeat(labels, sizes)
    np.random.default_rng(seed).shuffle(targets)
    return targets


@pytest.mark.parametrize("sizes, max_samples, expected, total", [
    # classes like Diabetic Retinopathy's (two under 2 000): the study's subset of 7 581 images
    ([25810, 2443, 5292, 873, 708], 10000, [2000, 2000, 2000, 873, 708], 7581),
    # classes like FER2013's (one of 436 images): the study's subset of 9 010 images
    ([3995, 436, 4097, 7215, 4830, 3171, 4965], 10000, [1429, 436] + [1429] * 5, 9010),
    # Diabetic Retinopathy's train classes scaled down by 100: 20 per class, no redistribution
    ([258, 24, 53, 8, 7], 100, [20, 20, 20, 8, 7], 75),
    # three big classes: ceil(100 / 3) = 34 each, 102 in all (the rule may overshoot)
    ([40, 50, 60], 100, [34, 34, 34], 102),
    # one big class cannot use the small classes' unused budget
    ([1, 2, 500], 90, [1, 2, 30], 33),
])
def test_per_class_rule_of_the_original_study(sizes, max_samples, expected, total):
    assert original_rule(sizes, max_samples) == expected and sum(expected) == total
    labels = np.array([7, 3, 11, 5, 9, 0, 2][:len(sizes)])  # labels in no particular order
    targets = shuffled_labels(sizes, labels)
    idx = stratified_indices(targets, max_samples, seed=2)
    assert np.all(np.diff(idx) > 0)
    counts = [int(np.sum(targets[idx] == label)) for label in labels]
    assert counts == expected and len(idx) == total
    assert per_class_quotas(np.array(sizes), max_samples).tolist() == expected
    assert stratified_indices(targets, max_samples, seed=2, mode="per_class").tolist() == \
        idx.tolist()


def test_classes_are_as_even_as_their_sizes_allow_in_balanced_mode():
    sizes = np.array([5, 300, 50, 200, 51])
    targets = np.repeat(np.arange(5) * 10, sizes)  # labels need not be 0..k-1
    np.random.default_rng(0).shuffle(targets)
    idx = stratified_indices(targets, 100, seed=4, mode="balanced")
    assert len(idx) == 100 and np.all(np.diff(idx) > 0)
    counts = np.array([np.sum(targets[idx] == c * 10) for c in range(5)])
    assert counts[0] == 5  # the small class is taken whole
    rest = counts[1:]
    assert rest.sum() == 95 and rest.max() - rest.min() <= 1  # the others share the rest evenly


def test_quotas_water_filling():
    rng = np.random.default_rng(0)
    quotas = class_quotas(np.array([3, 10, 10]), 20, rng)
    assert quotas[0] == 3 and sorted(quotas[1:].tolist()) == [8, 9]
    assert class_quotas(np.array([2, 2, 2]), 6, rng).tolist() == [2, 2, 2]
    quotas = class_quotas(np.array([1, 4, 30, 30]), 40, rng)
    assert quotas[:2].tolist() == [1, 4] and sorted(quotas[2:].tolist()) == [17, 18]


@pytest.mark.parametrize("mode", ["per_class", "balanced"])
def test_small_dataset_uses_all_samples(mode):
    assert stratified_indices(np.array([0, 1, 1, 0]), 10, 0, mode).tolist() == [0, 1, 2, 3]
    assert stratified_indices(np.array([0, 1, 1, 0]), 4, 0, mode).tolist() == [0, 1, 2, 3]
    # imbalanced but not larger than max_samples: still whole (the study subsets only bigger sets)
    assert len(stratified_indices(np.repeat([0, 1], [90, 10]), 100, 0, mode)) == 100


def test_cli_writes_identical_output_for_identical_input(tmp_path):
    targets = np.random.default_rng(1).integers(0, 7, size=500)
    feats = write_targets(tmp_path / "m.h5", targets)
    outs = [tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"]
    for out, seed in zip(outs, (3, 3, 4), strict=True):
        proc = run_cli("pysim-subset", "--features", feats, "--out", out,
                       "--max-samples", "120", "--seed", str(seed))
        assert proc.returncode == 0, proc.stderr
    assert outs[0].read_bytes() == outs[1].read_bytes()
    subset = json.loads(outs[0].read_text())
    assert list(subset) == ["dataset", "split", "seed", "max_samples", "mode", "n_total",
                            "keys_sha256", "indices"]
    # the digest of the train keys, each UTF-8 and NUL-terminated (DESIGN §5)
    keys = b"".join(f"k{i}".encode() + b"\0" for i in range(500))
    assert subset["keys_sha256"] == hashlib.sha256(keys).hexdigest()
    assert subset["mode"] == "per_class"
    assert subset["dataset"] == "wds_toy" and subset["split"] == "train"
    assert (subset["seed"], subset["max_samples"], subset["n_total"]) == (3, 120, 500)
    assert len(subset["indices"]) == 7 * 18  # ceil(120 / 7) of each class (all hold > 18)
    assert subset["indices"] == sorted(set(subset["indices"]))
    assert json.loads(outs[2].read_text())["indices"] != subset["indices"]


def test_cli_balanced_mode_fills_the_budget_exactly(tmp_path):
    targets = np.repeat(np.arange(4), [5, 10, 200, 300])
    feats = write_targets(tmp_path / "m.h5", targets)
    counts = {}
    for mode in ("per_class", "balanced"):
        out = tmp_path / f"{mode}.json"
        run_cli("pysim-subset", "--features", feats, "--out", out, "--max-samples", "100",
                "--mode", mode, check=True)
        subset = json.loads(out.read_text())
        assert subset["mode"] == mode
        counts[mode] = np.bincount(targets[subset["indices"]], minlength=4).tolist()
    assert counts["per_class"] == [5, 10, 25, 25]  # ceil(100 / 4) = 25, no redistribution
    assert counts["balanced"] == [5, 10, 42, 43] or counts["balanced"] == [5, 10, 43, 42]


@pytest.mark.parametrize("args, reason", [
    (["--max-samples", "0"], "max-samples"),
    (["--features", "missing.h5"], "missing.h5"),
    (["--mode", "even"], "--mode"),
])
def test_cli_bad_input_exits_2(tmp_path, args, reason):
    feats = write_targets(tmp_path / "m.h5", np.zeros(10, np.int64))
    base = {"--features": str(feats), "--out": str(tmp_path / "s.json")}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    proc = run_cli("pysim-subset", *[x for kv in base.items() for x in kv])
    assert proc.returncode == 2
    assert reason in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.json").exists()
