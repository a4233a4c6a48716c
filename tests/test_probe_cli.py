"""pysim-probe entry point: the DESIGN §5 probe JSON, determinism, --test-from-train, bad input."""

import json

import h5py
import numpy as np
import pytest

from conftest import assert_bad_input, run_cli
from pysim.analysis.sim_vs_perf import load_probes
from pysim.io import SplitFeatures, write_features

FIELDS = ["model_id", "dataset", "test_acc1", "test_acc5", "val_acc1", "lr", "weight_decay",
          "epochs", "seeds", "n_train", "n_test", "batch_size", "val_proportion", "selection",
          "tie_break", "wd_grid", "test_acc1_per_seed", "val_acc1_per_seed"]
QUICK = ["--epochs", "4", "--seeds", "0,1", "--batch-size", "64"]


def write_gaussian_features(path, n_train=120, n_test=60, d=24, n_classes=4, with_test=True):
    """A features file of well separated Gaussian classes (raw, float16 like a real extract)."""
    rng = np.random.default_rng(0)
    means = rng.standard_normal((n_classes, d)) * 3

    def split(n, prefix):
        y = np.arange(n) % n_classes + 10  # labels need not start at 0
        x = means[y - 10] + rng.standard_normal((n, d))
        return SplitFeatures(x.astype(np.float16), y, [f"{prefix}{i}" for i in range(n)])

    splits = {"train": split(n_train, "tr")}
    if with_test:
        splits["test"] = split(n_test, "te")
    write_features(path, splits, {"model_id": "toy_model", "dataset": "wds_toy",
                                  "module_name": "head"})
    return path


@pytest.fixture
def features(tmp_path):
    return write_gaussian_features(tmp_path / "toy.h5")


def probe(features, out, *extra):
    return run_cli("pysim-probe", "--features", features, "--out", out, *extra)


def test_writes_the_probe_record_deterministically(features, tmp_path):
    out, again = tmp_path / "p" / "a.json", tmp_path / "p" / "b.json"
    proc = probe(features, out, *QUICK, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert list(record) == FIELDS
    assert record["model_id"] == "toy_model" and record["dataset"] == "wds_toy"
    assert record["test_acc1"] == 1.0
    assert record["test_acc5"] is None and '"test_acc5": null' in out.read_text()  # 4 classes
    assert record["epochs"] == 4 and record["seeds"] == [0, 1]
    assert record["n_train"] == 120 and record["n_test"] == 60
    assert len(record["lr"]) == len(record["weight_decay"]) == 2
    assert set(record["lr"]) <= {1e-1, 1e-2, 1e-3, 1e-4}
    assert set(record["weight_decay"]) <= set(np.logspace(-6, 1, 64).tolist())
    assert (record["batch_size"], record["val_proportion"]) == (64, 0.2)
    assert (record["selection"], record["tie_break"]) == ("per_seed", "order")
    assert record["wd_grid"] == {"name": "paper", "start": -6, "stop": 1, "num": 64,
                                 "coarse_step": 9, "refine_steps": [4, 2, 1]}
    assert "top-5 n/a" in proc.stderr
    # the report's and sim-vs-perf's reader takes the record with its null top-5 and lr lists
    assert load_probes([out]) == {"wds_toy": {"toy_model": 1.0}}
    assert probe(features, again, *QUICK).returncode == 0
    assert again.read_bytes() == out.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.json", "b.json"]  # no temp files


def test_default_batch_size_is_the_studys_and_options_reach_the_record(features, tmp_path):
    out = tmp_path / "shared.json"
    proc = probe(features, out, "--epochs", "2", "--seeds", "0,1", "--selection", "shared",
                 "--wd-grid", "fine", "--tie-break", "loss")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["batch_size"] == 1024
    assert (record["selection"], record["tie_break"]) == ("shared", "loss")
    assert record["wd_grid"]["num"] == 113
    assert record["lr"][0] == record["lr"][1]
    assert record["weight_decay"][0] == record["weight_decay"][1]


def test_missing_test_split_is_bad_input_unless_carved_from_train(tmp_path):
    features = write_gaussian_features(tmp_path / "notest.h5", n_train=150, with_test=False)
    out = tmp_path / "out.json"
    assert_bad_input(probe(features, out, *QUICK), "notest.h5", "no 'test' split",
                     "--test-from-train")
    assert not out.exists()
    proc = probe(features, out, *QUICK, "--test-from-train", "--test-proportion", "0.2")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert (record["n_train"], record["n_test"]) == (120, 30)
    assert record["test_acc1"] == 1.0


@pytest.mark.parametrize("extra, fragment", [
    (["--val-proportion", "1.5"], "--val-proportion"),
    (["--lrs", "0.1,abc"], "--lrs"),
    (["--lrs", "0.1,-1"], "learning rates must be positive"),
    (["--seeds", "1,1"], "seeds"),
    (["--normalize", "l3"], "--normalize"),
    (["--selection", "best"], "--selection"),
    (["--wd-grid", "coarse"], "--wd-grid"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_bad_options_are_one_line_errors(features, tmp_path, extra, fragment):
    out = tmp_path / "out.json"
    assert_bad_input(probe(features, out, *extra), fragment)
    assert not out.exists()


def test_wrong_feature_file_is_bad_input(tmp_path):
    not_hdf5 = tmp_path / "model.h5"
    not_hdf5.write_text("this is not HDF5\n")
    out = tmp_path / "out.json"
    assert_bad_input(probe(not_hdf5, out), "model.h5", "not a readable HDF5")
    assert_bad_input(probe(tmp_path / "absent.h5", out), "absent.h5")
    bad = write_gaussian_features(tmp_path / "nan.h5")
    with h5py.File(bad, "r+") as f:
        f["train/features"][0, 0] = np.nan
    assert_bad_input(probe(bad, out), "nan.h5", "NaN")
    assert not out.exists()
