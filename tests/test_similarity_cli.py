"""pysim-similarity on real HDF5 features files: output layout, subset, checks, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from importlib.machinery import SourceFileLoader
from pathlib import Path

import numpy as np
import pytest
from sim_reference import reference_matrices

from conftest import run_cli
from pysim.analysis.stack import matrix_problem, read_all
from pysim.cli import run
from pysim.config import load_metrics
from pysim.io import SplitFeatures, read_similarities, write_features
from pysim.similarity import compute_similarities

ROOT = Path(__file__).resolve().parents[1]
SEED_METRICS = ROOT / "tests" / "fixtures" / "seed" / "similarity_metric_config_local_global.json"
N = 150


def write_model(path: Path, feats: np.ndarray, keys=None, targets=None, model_id=None) -> Path:
    keys = np.array([f"img{i:04d}" for i in range(len(feats))]) if keys is None else keys
    targets = np.arange(len(feats)) % 3 if targets is None else targets
    attrs = {"dataset": "wds_toy", "module_name": "head"}
    if model_id:
        attrs["model_id"] = model_id
    write_features(path, {"train": SplitFeatures(feats, targets, keys),
                          "test": SplitFeatures(feats[:10], targets[:10], keys[:10])}, attrs)
    return path


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    """Three models of one dataset, as features files (the second one without a model_id)."""
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((N, 4))
    base = tmp_path_factory.mktemp("features")
    arrays, paths = {}, []
    for i, (name, d) in enumerate([("vit_a", 24), ("resnet_b", 200), ("clip_c", 48)]):
        feats = (np.tanh(latent @ rng.standard_normal((4, d)))
                 + 0.4 * rng.standard_normal((N, d))).astype(np.float32)
        arrays[name] = feats
        paths.append(write_model(base / f"{name}.h5", feats, model_id=None if i == 1 else name))
    return arrays, paths


def run_similarity(*args: str) -> subprocess.CompletedProcess:
    """The entry point as a user runs it (a fresh process)."""
    return run_cli("pysim-similarity", *args, env={**os.environ, "OMP_NUM_THREADS": "1"})


def run_in_process(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """The same entry point loaded from bin/ and run in this process (no torch start-up cost)."""
    loader = SourceFileLoader("pysim_similarity_bin", str(ROOT / "bin" / "pysim-similarity"))
    module = types.ModuleType(loader.name)
    loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", ["pysim-similarity", *args])
    with pytest.raises(SystemExit) as exc:
        run(module.main)
    return exc.value.code, capsys.readouterr().err


def assert_one_error_line(stderr: str, *needles: str) -> None:
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    for needle in needles:
        assert needle in errors[0], stderr


def feature_args(paths) -> list[str]:
    return [x for p in paths for x in ("--features", str(p))]


def test_cli_writes_all_matrices_on_the_subset(tmp_path, features):
    arrays, paths = features
    indices = list(range(0, N, 2))[:70]
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps({"dataset": "wds_toy", "split": "train", "seed": 0,
                                  "max_samples": 70, "n_total": N, "indices": indices}))
    out = tmp_path / "sims" / "wds_toy.h5"
    proc = run_similarity(*feature_args(paths), "--metrics", str(SEED_METRICS), "--out", str(out),
                          "--subset", str(subset), "--device", "cpu", "--max-memory", "1GB")
    assert proc.returncode == 0, proc.stderr
    sims = read_similarities(out)
    assert sims.dataset == "wds_toy"
    assert sims.model_ids == ["vit_a", "resnet_b", "clip_c"]  # resnet_b from the file stem
    specs = load_metrics(SEED_METRICS)
    assert list(sims.matrices) == sorted(s.id for s in specs)
    sub = {k: v[indices] for k, v in arrays.items()}
    ref = reference_matrices(sub, specs)
    for spec in specs:
        assert sims.metric_attrs[spec.id]["n_samples"] == 70
        assert sims.metric_attrs[spec.id]["sim_method"] == spec.method
        np.testing.assert_allclose(sims.matrices[spec.id], ref[spec.id], atol=1e-4, rtol=0)
        assert np.array_equal(np.diag(sims.matrices[spec.id]), np.ones(3))
    assert sims.metric_attrs["cka_kernel_rbf_unbiased_sigma_0.4"]["sigma"] == 0.4


def test_mismatched_keys_exit_2_naming_the_model(tmp_path, features, monkeypatch, capsys):
    arrays, paths = features
    keys = np.array([f"img{i:04d}" for i in range(N)])
    keys[[3, 4]] = keys[[4, 3]]
    odd = write_model(tmp_path / "odd.h5", arrays["vit_a"], keys=keys, model_id="odd_model")
    out = tmp_path / "out.h5"
    code, err = run_in_process([*feature_args([paths[0], odd, paths[2]]), "--metrics",
                                str(SEED_METRICS), "--out", str(out)], monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "odd_model", "keys")
    assert not out.exists()


def test_mismatched_targets_and_bad_options_exit_2(tmp_path, features, monkeypatch, capsys):
    arrays, paths = features
    odd = write_model(tmp_path / "odd.h5", arrays["vit_a"], targets=np.zeros(N, np.int64),
                      model_id="odd_targets")
    out = tmp_path / "out.h5"
    common = [*feature_args([paths[0], odd]), "--metrics", str(SEED_METRICS), "--out", str(out)]
    code, err = run_in_process(common, monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "odd_targets", "targets")
    code, err = run_in_process([*feature_args(paths), "--metrics", str(SEED_METRICS), "--out",
                                str(out), "--max-memory", "lots"], monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "max-memory")
    code, err = run_in_process([*feature_args(paths), "--metrics", str(SEED_METRICS), "--out",
                                str(out), "--normalize", "l1"], monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "normalize")
    assert not out.exists()


def test_nan_model_gets_nan_row_and_a_warning(tmp_path, features, monkeypatch, capsys, caplog):
    arrays, paths = features
    bad = arrays["clip_c"].copy()
    bad[10, 0] = np.nan
    nan_file = write_model(tmp_path / "broken.h5", bad, model_id="broken")
    shutil.copy(paths[0], tmp_path / "a.h5")
    out = tmp_path / "out.h5"
    code, err = run_in_process([*feature_args([tmp_path / "a.h5", nan_file, paths[1]]),
                                "--metrics", str(SEED_METRICS), "--out", str(out),
                                "--normalize", "none"], monkeypatch, capsys)
    assert code == 0, err
    assert "model broken" in caplog.text and "NaN" in caplog.text
    sims = read_similarities(out)
    expected = compute_similarities({"a": arrays["vit_a"], "b": arrays["resnet_b"]},
                                    load_metrics(SEED_METRICS), normalize="none")
    for key, mat in sims.matrices.items():
        assert np.isnan(mat[1]).all() and np.isnan(mat[:, 1]).all()
        np.testing.assert_allclose(mat[np.ix_([0, 2], [0, 2])], expected[key], atol=1e-12)


FAMILY_METRICS = [  # one entry of every family added by issue 23
    {"sim_method": "cca", "cca_method": "pwcca"},
    {"sim_method": "cca", "cca_method": "svcca", "variance": 0.9},
    {"sim_method": "shape", "alpha": 0.5, "score": "angular"},
    {"sim_method": "linear_regression"},
    {"sim_method": "distance_correlation"},
    {"sim_method": "neighbourhood", "measure": "cycle_knn", "k": 5},
    {"sim_method": "rsa", "rsa_method": "cosine", "corr_method": "cosine"},
    {"sim_method": "shape", "alpha": 1.0, "score": "procrustes"},
    {"sim_method": "cknna", "k": 5},
]


@pytest.mark.usefixtures("one_thread")
def test_cli_writes_every_family_with_its_attributes(tmp_path, features, monkeypatch, capsys):
    arrays, paths = features
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(FAMILY_METRICS))
    out = tmp_path / "out.h5"
    code, err = run_in_process([*feature_args(paths), "--metrics", str(metrics), "--out",
                                str(out)], monkeypatch, capsys)
    assert code == 0, err
    sims = read_similarities(out)
    specs = load_metrics(metrics)
    assert sorted(sims.matrices) == sorted(s.id for s in specs)
    expected = compute_similarities({k: arrays[k] for k in sims.model_ids}, specs)
    for spec in specs:
        np.testing.assert_allclose(sims.matrices[spec.id], expected[spec.id], atol=1e-12)
        attrs = sims.metric_attrs[spec.id]
        assert attrs["sim_method"] == spec.method
        asymmetric = spec.id in ("cca_method_pwcca", "linear_regression_r2",
                                 "neighbourhood_cycle_knn_k_5", "cknna_k_5")
        assert (attrs.get("symmetric", True) is False) == asymmetric, spec.id
        assert np.allclose(sims.matrices[spec.id], sims.matrices[spec.id].T) != asymmetric
    # the analyses take every family's matrix as written (asymmetric ones, distances with 0
    # on the diagonal), and still refuse one that breaks its metric's declared range
    assert [sims.dataset for _, sims in read_all([out])] == ["wds_toy"]
    angular = next(s.id for s in specs if s.params().get("score") == "angular")
    assert matrix_problem(sims.matrices[angular], sims.metric_attrs[angular]) is None
    assert "outside" in matrix_problem(sims.matrices[angular] + 2.0, sims.metric_attrs[angular])
    metrics.write_text(json.dumps([{"sim_method": "shape", "alpha": 2}]))
    code, err = run_in_process([*feature_args(paths), "--metrics", str(metrics), "--out",
                                str(tmp_path / "x.h5")], monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "metric #1", "alpha")


@pytest.mark.usefixtures("one_thread")
def test_cli_calibration_file(tmp_path, features, monkeypatch, capsys):
    arrays, paths = features
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps([{"sim_method": "cka", "unbiased": False},
                                   {"sim_method": "linear_regression"}]))
    out, cal = tmp_path / "out.h5", tmp_path / "cal.h5"
    args = [*feature_args(paths), "--metrics", str(metrics), "--out", str(out)]
    code, err = run_in_process([*args, "--permutations", "9", "--bootstrap", "3", "--seed", "4",
                                "--calibration-out", str(cal)], monkeypatch, capsys)
    assert code == 0, err
    sims, calib = read_similarities(out), read_similarities(cal)
    whats = ("null_mean", "null_sd", "p_value", "calibrated", "ci_low", "ci_high")
    assert sorted(calib.matrices) == sorted(f"{k}__{w}" for k in sims.matrices for w in whats)
    assert calib.metric_attrs["linear_regression_r2__p_value"]["symmetric"] is False
    feats = {k: arrays[k] for k in sims.model_ids}
    specs = load_metrics(metrics)
    from pysim.similarity.calibrate import permutation_null
    want = permutation_null(feats, specs, permutations=9, seed=4)
    # CKA's p-values as the library gives them (the 200-wide model predicts any row order
    # perfectly at n = 150, so R^2's null ties its observed value: compared by range only)
    np.testing.assert_allclose(calib.matrices["cka_kernel_linear_biased__p_value"],
                               want.p_value["cka_kernel_linear_biased"])
    for key in sims.matrices:
        p = calib.matrices[f"{key}__p_value"]
        off = ~np.eye(3, dtype=bool)
        assert ((p[off] >= 0.1) & (p[off] <= 1)).all()
        low, high = calib.matrices[f"{key}__ci_low"], calib.matrices[f"{key}__ci_high"]
        assert (low[off] <= high[off]).all()
    code, err = run_in_process([*args, "--permutations", "5"], monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "--calibration-out")
