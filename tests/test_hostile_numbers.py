"""Hostile inputs that used to give a silent wrong number (issue 25): each is refused with one
line and exit 2, or -- where a result is still honest -- computed with a warning and NaN.

Every family goes once through its real entry point (a subprocess of bin/pysim-<stage>,
asserting the exit code, the single stderr line and that no output file was left); its
variants run the same stage function in-process to keep the suite fast.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import run_cli
from pysim.analysis.stack import matrix_problem, read_all
from pysim.config import MetricSpec
from pysim.errors import InputError
from pysim.io import (
    Similarities,
    SplitFeatures,
    read_features,
    read_similarities,
    read_subset,
    split_digests,
    write_features,
    write_similarities,
)
from pysim.probe.data import load_probe_data
from pysim.report.build import not_computable_note
from pysim.similarity import compute_similarities
from pysim.stages.probe import run_probe
from pysim.stages.similarity import run_similarity
from pysim.stages.subset import run_subset

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
LINEAR = {"sim_method": "cka", "sim_kernel": "linear"}


def cli(stage: str, *args) -> tuple[int, str]:
    proc = run_cli(f"pysim-{stage}", *args, env=ENV)
    return proc.returncode, proc.stderr


def assert_refused(result: tuple[int, str], out: Path, *fragments: str) -> None:
    """Exit 2, one error line (the last; no traceback) naming every fragment, no output left.

    Progress and warnings may precede it."""
    code, stderr = result
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert code == 2, stderr
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert not out.exists()
    assert not out.parent.exists() or not [p for p in out.parent.iterdir()
                                           if p.name.startswith(f".{out.name}.")]


def toy(n: int = 40, d: int = 6, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, d)) * scale).astype(np.float32)


def write(path: Path, feats, targets=None, keys=None, test=None, dataset="wds_toy",
          model_id=None) -> Path:
    n = len(feats)
    targets = np.arange(n) % 4 if targets is None else targets
    keys = [f"img{i}" for i in range(n)] if keys is None else keys
    splits = {"train": SplitFeatures(feats, targets, keys)}
    if test is not None:
        splits["test"] = test
    write_features(path, splits, {"model_id": model_id or path.stem, "dataset": dataset,
                                  "module_name": "head"})
    return path


def patch_dataset(path: Path, name: str, data) -> Path:
    """Replace one dataset of a written features file (layouts write_features cannot make)."""
    with h5py.File(path, "a") as f:
        del f[name]
        f[name] = data
    return path


def metrics_file(path: Path, *entries: dict) -> Path:
    path.write_text(json.dumps(list(entries)))
    return path


# --- probe ------------------------------------------------------------------------------

def probe_file(path: Path, x_train, y_train, y_test=None, x_test=None) -> Path:
    y_test = np.arange(12) % 4 if y_test is None else y_test
    x_test = toy(len(y_test), x_train.shape[1], seed=9) if x_test is None else x_test
    test = SplitFeatures(x_test, y_test, [f"t{i}" for i in range(len(y_test))])
    return write(path, x_train, y_train, test=test)


def test_probe_refuses_constant_features_unseen_and_out_of_range_labels(tmp_path):
    out = tmp_path / "probe.json"
    zeros = probe_file(tmp_path / "zeros.h5", np.zeros((40, 6), np.float32), np.arange(40) % 4)
    assert_refused(cli("probe", "--features", zeros, "--out", out), out,
                   "zeros.h5", "'train' features are constant")
    # constant but not zero: every sample the same vector
    same = probe_file(tmp_path / "same.h5", np.tile(toy(1, 6), (40, 1)), np.arange(40) % 4)
    with pytest.raises(InputError, match="constant"):
        load_probe_data(same)
    # a test class the train split never shows can never be predicted
    unseen = probe_file(tmp_path / "unseen.h5", toy(), np.arange(40) % 3,
                        y_test=np.arange(12) % 4)
    assert_refused(cli("probe", "--features", unseen, "--out", out), out,
                   "unseen.h5", "1 test label(s) never occur in the train split", "e.g. 3")
    # -1 (an unlabelled sample) and 10^12 are not class indices
    for bad in (-1, 10**12):
        labels = np.arange(40) % 4
        labels[5] = bad
        path = probe_file(tmp_path / f"label{bad}.h5", toy(), labels)
        with pytest.raises(InputError, match=f"class indices in 0..1000000, found {bad}"):
            load_probe_data(path)
    # still handled as before: NaN features
    nan = toy()
    nan[3, 2] = np.nan
    with pytest.raises(InputError, match="'train' features contain NaN or inf"):
        load_probe_data(probe_file(tmp_path / "nan.h5", nan, np.arange(40) % 4))


def separable(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    means = rng.standard_normal((4, 8)) * 3
    y, yt = np.arange(60) % 4, np.arange(20) % 4
    x = (means[y] + rng.standard_normal((60, 8))).astype(np.float32)
    xt = (means[yt] + rng.standard_normal((20, 8))).astype(np.float32)
    return probe_file(tmp_path / "sep.h5", x, y, y_test=yt, x_test=xt)


def test_probe_diverged_training_is_refused_and_diverged_candidates_never_chosen(tmp_path,
                                                                                  caplog):
    features, out = separable(tmp_path), tmp_path / "probe.json"
    # lr 1e12: the decoupled decay lr * wd >= 10^6 overflows every candidate to NaN
    args = ["--epochs", "2", "--batch-size", "16", "--seeds", "0"]
    assert_refused(cli("probe", "--features", features, "--out", out, "--lrs", "1e12", *args),
                   out, "probe training diverged (non-finite loss)", "smaller learning rates")
    # lr 1e6: the largest weight decay diverges and is skipped (with a warning), the rest is
    # an ordinary, finite training run
    with caplog.at_level(logging.WARNING):
        record = run_probe(features, out, lrs=[1e6], epochs=5, batch_size=16, seeds=[0],
                           val_proportion=0.2)
    assert "diverged (non-finite loss) and were not chosen" in caplog.text
    assert record["weight_decay"][0] < 10 and 0 <= record["test_acc1"] <= 1


# --- inputs that do not match -----------------------------------------------------------

def test_duplicate_keys_float_targets_and_integer_keys_are_refused(tmp_path):
    out = tmp_path / "sims.h5"
    metrics = metrics_file(tmp_path / "m.json", LINEAR)
    keys = [f"img{i}" for i in range(40)]
    keys[7] = keys[30]
    dup = write(tmp_path / "dup.h5", toy(), keys=keys)
    ok = write(tmp_path / "ok.h5", toy(seed=1), keys=keys)
    assert_refused(cli("similarity", "--features", dup, "--features", ok, "--metrics", metrics,
                       "--out", out), out, "dup.h5", "sample key 'img30' occurs twice")
    with pytest.raises(InputError, match="occurs twice"):  # the probe's and subset's reader
        read_features(dup)
    floats = patch_dataset(write(tmp_path / "floats.h5", toy()), "train/targets",
                           np.arange(40) % 4 + 0.5)
    subset = tmp_path / "subset.json"
    assert_refused(cli("subset", "--features", floats, "--out", subset, "--max-samples", "8"),
                   subset, "floats.h5", "'train' targets must be integers, stored as float64")
    with pytest.raises(InputError, match="targets must be integers"):
        split_digests(floats)
    ints = patch_dataset(write(tmp_path / "ints.h5", toy()), "train/keys", np.arange(40))
    with pytest.raises(InputError, match="keys must be strings"):
        read_features(ints)


def test_subset_of_another_dataset_and_float_indices_are_refused(tmp_path, caplog):
    out = tmp_path / "sims.h5"
    metrics = metrics_file(tmp_path / "m.json", LINEAR)
    cars = write(tmp_path / "cars.h5", toy(), keys=[f"car{i}" for i in range(40)])
    pets = write(tmp_path / "pets.h5", toy(seed=1), keys=[f"pet{i}" for i in range(40)],
                 dataset="wds_pets")
    pets_subset = tmp_path / "pets.json"
    run_subset(pets, pets_subset, max_samples=20)  # same size (40), other samples
    assert_refused(cli("similarity", "--features", cars, "--metrics", metrics, "--out", out,
                       "--subset", pets_subset), out,
                   "pets.json", "subset was drawn from other samples", "keys_sha256 differs")
    # its own subset is accepted
    cars_subset = tmp_path / "cars.json"
    run_subset(cars, cars_subset, max_samples=20)
    sims = run_similarity([cars], metrics, out, cars_subset, progress=False)
    assert sims.matrices["cka_kernel_linear_unbiased"].shape == (1, 1)
    # a subset file of an older pysim (no digest) is read with a warning
    old = json.loads(cars_subset.read_text())
    del old["keys_sha256"]
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps(old))
    with caplog.at_level(logging.WARNING):
        run_similarity([cars], metrics, tmp_path / "legacy.h5", legacy, progress=False)
    assert "records no keys_sha256" in caplog.text
    # indices (and counts) must be integers, not truncated floats (or booleans)
    for field, value, message in (("indices", [0.0, 1.7, 3.0], "indices must be integers"),
                                  ("indices", [0, True], "indices must be integers"),
                                  ("n_total", 40.0, "'n_total' must be an integer")):
        bad = dict(old, **{field: value})
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(InputError, match=message):
            read_subset(path)
    # still handled as before: a subset drawn from a split of another size
    other = tmp_path / "other.json"
    run_subset(write(tmp_path / "small.h5", toy(30)), other, max_samples=20)
    with pytest.raises(InputError, match="drawn from 30 samples but the features have 40"):
        run_similarity([cars], metrics, out, other, progress=False)


# --- similarity -------------------------------------------------------------------------

def test_overflowing_features_and_degenerate_rbf_kernels_are_not_computable(tmp_path, caplog):
    out = tmp_path / "sims.h5"
    metrics = metrics_file(tmp_path / "m.json", LINEAR,
                           {"sim_method": "rsa", "rsa_method": "correlation",
                            "corr_method": "spearman"})
    huge = [write(tmp_path / f"huge{k}.h5", toy(seed=k, scale=1e30)) for k in range(2)]
    assert_refused(cli("similarity", *[a for p in huge for a in ("--features", p)],
                       "--metrics", metrics, "--out", out, "--normalize", "none"), out,
                   "no model has a defined similarity", "too large for float32")
    # one such model among good ones: NaN row and column with a warning, the rest computed
    feats = {"a": toy(seed=1), "huge": toy(seed=2, scale=1e30), "b": toy(seed=3)}
    specs = [MetricSpec("cka"), MetricSpec("rsa", corr_method="spearman")]
    with caplog.at_level(logging.WARNING):
        got = compute_similarities(feats, specs, normalize="none")
    assert "model huge" in caplog.text and "too large for float32" in caplog.text
    for matrix in got.values():
        assert np.isnan(matrix[1]).all() and np.isnan(matrix[:, 1]).all()
        assert np.isfinite(matrix[np.ix_([0, 2], [0, 2])]).all()
        assert matrix[0, 0] == matrix[2, 2] == 1.0
    # the stage records why in the file, and the report lists it as not computable
    paths = [write(tmp_path / f"{k}.h5", x) for k, x in feats.items()]
    sims = run_similarity(paths, metrics, out, normalize="none", progress=False)
    assert np.isnan(sims.matrices["cka_kernel_linear_unbiased"][1, 0])
    attrs = read_similarities(out).metric_attrs["cka_kernel_linear_unbiased"]
    assert list(attrs["not_computable"]) == ["huge"]
    assert "too large for float32" in attrs["not_computable"]["huge"]
    note = not_computable_note([read_similarities(out)], {"wds_toy": "Toy"})
    assert "2 similarity rows are not computable" in note
    assert "<td>Toy</td>" in note and "<td>huge</td>" in note and "float32" in note
    out.unlink()
    # RBF sigma far too large (kernel constant: all NaN before) or too small (every
    # off-diagonal value underflows: NaN unbiased, 1 everywhere biased)
    rbf = {"sim_method": "cka", "sim_kernel": "rbf", "sigma": 1e150}
    two = [write(tmp_path / f"m{k}.h5", toy(seed=k)) for k in range(2)]
    assert_refused(cli("similarity", "--features", two[0], "--features", two[1], "--metrics",
                       metrics_file(tmp_path / "rbf.json", rbf), "--out", out), out,
                   "cka_kernel_rbf_unbiased_sigma_1e+150", "too large for these features")
    feats = {"a": toy(seed=1), "b": toy(seed=2)}
    for sigma, unbiased, mode, message in (
            (1e200, True, "absolute", "too large"),  # sigma**2 overflowed: a traceback
            (1e-30, True, "absolute", "too small for these features"),
            (1e-30, False, "absolute", "too small for these features"),
            (1e-300, True, "absolute", "too small to compute the kernel"),
            (1e20, False, "median", "too large")):
        spec = MetricSpec("cka", "rbf", unbiased, sigma, mode)
        with pytest.raises(InputError, match=message):
            compute_similarities(dict(feats), [spec])
    # a sensible sigma still gives finite similarities
    good = compute_similarities(dict(feats), [MetricSpec("cka", "rbf", True, 0.4, "median")])
    assert np.isfinite(next(iter(good.values()))).all()
    # still handled as before: models with different sample keys
    other = write(tmp_path / "other.h5", toy(seed=5), keys=[f"x{i}" for i in range(40)])
    with pytest.raises(InputError, match="different sample keys"):
        run_similarity([two[0], other], metrics, out, progress=False)


# --- consistency ------------------------------------------------------------------------

def similarity_file(path: Path, dataset: str, matrix: np.ndarray) -> Path:
    ids = [f"m{i}" for i in range(len(matrix))]
    write_similarities(path, Similarities(dataset, ids, {"cka_kernel_linear_unbiased": matrix},
                                          {}))
    return path


def test_consistency_refuses_matrices_that_are_not_similarities(tmp_path):
    good = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])
    hostile = np.array([[0.2, 7.5, -3.0], [7.5, 0.2, 1.0], [2.0, 1.0, 0.2]])
    paths = [similarity_file(tmp_path / "a.h5", "wds/a", good),
             similarity_file(tmp_path / "b.h5", "wds/b", hostile)]
    models = tmp_path / "models.json"
    models.write_text(json.dumps({f"m{i}": {"model_name": f"m{i}", "source": "timm",
                                            "module_name": "head"} for i in range(3)}))
    out_dir = tmp_path / "consistency"
    code, stderr = cli("consistency", *[a for p in paths for a in ("--similarities", p)],
                       "--models", models, "--out-dir", out_dir, "--permutations", "0",
                       "--bootstrap", "0")
    assert_refused((code, stderr), out_dir / "consistency.csv")
    assert "b.h5: metric 'cka_kernel_linear_unbiased' is not a similarity matrix: value 7.5 " \
           "outside [-1, 1]" in stderr
    assert not out_dir.exists()
    # each fault on its own
    asymmetric, diagonal = good.copy(), good.copy()
    asymmetric[0, 1] = 0.9
    np.fill_diagonal(diagonal, 0.2)
    infinite = good.copy()
    infinite[0, 1] = infinite[1, 0] = np.inf
    half_nan = good.copy()
    half_nan[0, 1] = np.nan
    for matrix, message in ((asymmetric, "not symmetric"), (half_nan, "not symmetric"),
                            (diagonal, "diagonal value 0.2, expected 1"),
                            (infinite, "infinite values")):
        assert matrix_problem(matrix) == message
        with pytest.raises(InputError, match=message):
            read_all([similarity_file(tmp_path / "x.h5", "wds/x", matrix)])
    # a model without a defined similarity (NaN row and column) and rounding pass
    nan_row = good.copy()
    nan_row[1, :] = nan_row[:, 1] = np.nan
    rounded = good + 1e-12
    for matrix in (nan_row, rounded):
        assert matrix_problem(matrix) is None
