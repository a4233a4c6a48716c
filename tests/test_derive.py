"""pysim-derive: BREEDS tasks and ImageNet subsets sliced from real ImageNet-like features.

The ImageNet-like WebDataset (pysim.demo.write_demo_imagenet) is extracted with two tiny
models; expected rows and labels are re-derived here from the class lists' JSON text.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import ROOT, assert_bad_input, run_cli
from pysim import derive as derive_module
from pysim.config import BREEDS_TASKS
from pysim.demo import DEMO_IMAGENET_CLASSES, DEMO_IMAGENET_PER_CLASS, write_demo_imagenet
from pysim.derive import derive
from pysim.features.extract import ExtractOptions, extract
from pysim.io import SplitFeatures, read_attrs, read_features, write_features

DEMO_TABLE = ROOT / "assets" / "demo" / "models.json"
TASKS_JSON = ROOT / "pysim" / "data" / "breeds_tasks.json"
REFERENCE_JSON = Path("/work/shared/reference/derived-datasets/breeds_tasks.json")
MODELS = {"timm_vit_tiny": "float32", "tv_resnet18": "float16"}

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    """{model_id: wds/imagenet1k features file} of the demo ImageNet-like dataset."""
    root = tmp_path_factory.mktemp("imagenet")
    assert write_demo_imagenet(root) == "wds/imagenet1k"
    out = {}
    for model_id, dtype in MODELS.items():
        opts = ExtractOptions(num_workers=0, progress=False, threads=1, feature_dtype=dtype)
        out[model_id] = extract(DEMO_TABLE, model_id, root, "wds/imagenet1k",
                                root / f"{model_id}.h5", opts)
    return out


def raw_split(path, split):
    """(features as stored, targets, keys) read with plain h5py."""
    with h5py.File(path) as f:
        g = f[split]
        return g["features"][()], g["targets"][()], [k.decode() for k in g["keys"][()]]


def expected_breeds(path, task, split):
    """Rows, labels of a BREEDS split re-derived row by row from the JSON class lists."""
    spec = json.loads(TASKS_JSON.read_text())[task]
    classes = spec["source_classes"] if split == "train" else spec["target_classes"]
    _, targets, _ = raw_split(path, split)
    rows = [i for i, t in enumerate(targets) if int(t) in classes]
    return rows, [spec["superclass_of"][str(int(targets[i]))] for i in rows]


def test_class_lists_are_the_reference_ones_and_the_known_tasks():
    tasks = json.loads(TASKS_JSON.read_text())
    assert sorted(tasks) == sorted(BREEDS_TASKS)
    if REFERENCE_JSON.exists():
        assert tasks == json.loads(REFERENCE_JSON.read_text())
    assert set(derive_module.load_breeds_tasks()) == set(BREEDS_TASKS)


def test_demo_imagenet_uses_living17_source_and_target_classes():
    spec = json.loads(TASKS_JSON.read_text())["living17"]
    demo = set(DEMO_IMAGENET_CLASSES)
    assert demo & set(spec["source_classes"]) and demo & set(spec["target_classes"])
    assert demo - set(map(int, spec["superclass_of"]))  # one class outside the task


@pytest.mark.parametrize("model_id", list(MODELS))
def test_breeds_rows_keys_and_superclass_labels(imagenet, tmp_path, model_id):
    source = imagenet[model_id]
    out = derive(source, "living17", tmp_path / "living17.h5")
    assert out["train"] > 0 and out["test"] > 0
    for split in ("train", "test"):
        rows, labels = expected_breeds(source, "living17", split)
        feats, _, keys = raw_split(source, split)
        got_feats, got_targets, got_keys = raw_split(tmp_path / "living17.h5", split)
        assert got_feats.dtype == np.dtype(MODELS[model_id])  # stored dtype kept
        assert np.array_equal(got_feats, feats[rows])
        assert got_keys == [keys[i] for i in rows]
        assert got_targets.tolist() == labels
        with h5py.File(tmp_path / "living17.h5") as f:
            assert f[split]["source_rows"][()].tolist() == rows
    train_labels = raw_split(tmp_path / "living17.h5", "train")[1]
    assert sorted(set(train_labels.tolist())) == [0, 1, 2]
    attrs, src_attrs = read_attrs(tmp_path / "living17.h5"), read_attrs(source)
    assert attrs["dataset"] == attrs["derived_task"] == "living17"
    assert attrs["derived_from"] == "wds/imagenet1k" and attrs["n_superclasses"] == 17
    assert attrs["model_id"] == model_id and attrs["module_name"] == src_attrs["module_name"]
    assert not list(tmp_path.glob(".*tmp"))


def test_breeds_streams_in_small_blocks_to_the_same_file_contents(imagenet, tmp_path,
                                                                  monkeypatch):
    source = imagenet["timm_vit_tiny"]
    derive(source, "living17", tmp_path / "whole.h5")
    monkeypatch.setattr(derive_module, "BLOCK_BYTES", 1)  # one row per read
    derive(source, "living17", tmp_path / "rows.h5")
    for split in ("train", "test"):
        a, b = raw_split(tmp_path / "whole.h5", split), raw_split(tmp_path / "rows.h5", split)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def expected_subset_counts(split, n):
    return {c: min(n, DEMO_IMAGENET_PER_CLASS[split]) for c in DEMO_IMAGENET_CLASSES}


@pytest.mark.parametrize("name, n", [("imagenet-subset-1k", 1), ("imagenet-subset-5k", 5),
                                     ("imagenet-subset-20k", 20)])
def test_imagenet_subset_n_per_class_same_rows_for_every_model(imagenet, tmp_path, name, n):
    files = {m: derive(imagenet[m], name, tmp_path / f"{m}.h5", seed=3) and tmp_path / f"{m}.h5"
             for m in MODELS}
    for split in ("train", "test"):
        per_model = []
        for model_id, path in files.items():
            feats, targets, keys = raw_split(imagenet[model_id], split)
            got_feats, got_targets, got_keys = raw_split(path, split)
            with h5py.File(path) as f:
                rows = f[split]["source_rows"][()].tolist()
            assert rows == sorted(set(rows))
            assert np.array_equal(got_feats, feats[rows])
            assert got_targets.tolist() == [int(targets[i]) for i in rows]  # ImageNet labels
            assert got_keys == [keys[i] for i in rows]
            counts = {int(c): int((got_targets == c).sum()) for c in np.unique(got_targets)}
            assert counts == expected_subset_counts(split, n)
            per_model.append(rows)
        assert per_model[0] == per_model[1]
    attrs = read_attrs(files["timm_vit_tiny"])
    assert (attrs["derived_seed"], attrs["samples_per_class"]) == (3, n)
    assert attrs["dataset"] == name and attrs["derived_from"] == "wds/imagenet1k"


def subset_rows(path, split="train"):
    with h5py.File(path) as f:
        return f[split]["source_rows"][()].tolist()


def test_imagenet_subset_is_deterministic_seeded_and_nested(imagenet, tmp_path):
    source = imagenet["timm_vit_tiny"]
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        derive(source, "imagenet-subset-5k", tmp_path / f"{name}.h5", seed=seed)
    assert subset_rows(tmp_path / "a.h5") == subset_rows(tmp_path / "b.h5")
    assert subset_rows(tmp_path / "a.h5") != subset_rows(tmp_path / "c.h5")
    assert subset_rows(tmp_path / "a.h5", "test") != subset_rows(tmp_path / "a.h5", "train")
    derive(source, "imagenet-subset-1k", tmp_path / "one.h5", seed=0)
    assert set(subset_rows(tmp_path / "one.h5")) <= set(subset_rows(tmp_path / "a.h5"))


def test_cli_writes_the_same_file_and_reports_counts(imagenet, tmp_path):
    source = imagenet["timm_vit_tiny"]
    proc = run_cli("pysim-derive", "--features", source, "--dataset", "living17",
                   "--out", tmp_path / "cli.h5", check=True)
    rows, _ = expected_breeds(source, "living17", "train")
    assert f"{len(rows)} train" in proc.stderr
    derive(source, "living17", tmp_path / "lib.h5")
    for split in ("train", "test"):
        a, b = raw_split(tmp_path / "cli.h5", split), raw_split(tmp_path / "lib.h5", split)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def fake_features(path, dataset, splits=("train", "test"), classes=(27, 26)):
    """A small features file of 3 samples per class with a chosen `dataset` attribute."""
    rng = np.random.default_rng(0)
    split_data = {}
    for split in splits:
        targets = np.repeat(classes, 3)
        split_data[split] = SplitFeatures(rng.normal(size=(len(targets), 4)).astype(np.float32),
                                          targets, np.array([f"{split}{i}" for i in
                                                             range(len(targets))]))
    write_features(path, split_data, {"model_id": "m", "dataset": dataset, "module_name": "x"})
    return path


@pytest.mark.parametrize("dataset, splits, classes, name, fragments", [
    ("wds/cars", ("train", "test"), (27, 26), "living17", ["wds/cars", "wds/imagenet1k"]),
    ("wds/imagenet1k", ("train",), (27, 26), "living17", ["no 'test' split", "living17"]),
    ("wds/imagenet1k", ("train", "test"), (500, 501), "living17", ["no train samples"]),
    ("wds/imagenet1k", ("train", "test"), (27, 26), "wds/cars", ["not a derived dataset"]),
    ("wds/imagenet1k", ("train", "test"), (27, 26), "imagenet-subset-0k",
     ["not a derived dataset"]),
])
def test_bad_input_is_one_line_and_leaves_no_file(tmp_path, dataset, splits, classes, name,
                                                  fragments):
    source = fake_features(tmp_path / "in.h5", dataset, splits, classes)
    out = tmp_path / "out" / "d.h5"
    proc = run_cli("pysim-derive", "--features", source, "--dataset", name, "--out", out)
    assert_bad_input(proc, *fragments)
    assert not out.exists() and not list(out.parent.glob(".*tmp"))


def test_subset_takes_a_small_class_whole(tmp_path):
    source = fake_features(tmp_path / "in.h5", "wds/imagenet1k", classes=(3, 7))
    derive(source, "imagenet-subset-2k", tmp_path / "out.h5")
    targets = read_features(tmp_path / "out.h5", "train", load_features=False).targets
    assert sorted(targets.tolist()) == [3, 3, 7, 7]
    derive(source, "imagenet-subset-10k", tmp_path / "all.h5")
    assert len(read_features(tmp_path / "all.h5", "test", load_features=False)) == 6
