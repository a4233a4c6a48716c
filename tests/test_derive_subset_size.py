"""pysim-subset-size: r of each ImageNet subset size's matrices with the 10-per-class ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import assert_bad_input, run_cli
from pysim.io import Similarities, write_similarities

MODELS = ["a", "b", "c", "d", "e"]
METRICS = ["cka_kernel_linear_unbiased", "rsa_method_correlation_corr_method_pearson"]


def random_sims(rng, n_models):
    """A symmetric matrix with unit diagonal."""
    upper = np.triu(rng.uniform(-1, 1, size=(n_models, n_models)), k=1)
    return upper + upper.T + np.eye(n_models)


def write(path, dataset, matrices, model_ids=MODELS):
    write_similarities(path, Similarities(dataset, list(model_ids), matrices, {}))
    return path


@pytest.fixture
def files(tmp_path):
    """Similarity files of 1, 10 and 40 per class; the 40 file lists the models reversed."""
    rng = np.random.default_rng(0)
    mats = {n: {m: random_sims(rng, len(MODELS)) for m in METRICS} for n in (1, 10, 40)}
    paths = [write(tmp_path / f"{n}.h5", f"imagenet-subset-{n}k", mats[n]) for n in (1, 10)]
    reverse = MODELS[::-1]
    flipped = {m: x[::-1, ::-1] for m, x in mats[40].items()}
    paths.append(write(tmp_path / "40.h5", "imagenet-subset-40k", flipped, reverse))
    return paths, mats


def test_table_is_pearson_over_the_upper_triangle(files, tmp_path):
    paths, mats = files
    out = tmp_path / "out" / "subset_size.csv"
    run_cli("pysim-subset-size", *[a for p in paths for a in ("--similarities", p)],
            "--out", out, check=True)
    table = pd.read_csv(out)
    assert list(table.columns) == ["metric", "samples_per_class", "pearson_r"]
    assert len(table) == len(METRICS) * 3
    rows, cols = np.triu_indices(len(MODELS), k=1)
    for metric in METRICS:
        for n in (1, 10, 40):
            want = np.corrcoef(mats[10][metric][rows, cols], mats[n][metric][rows, cols])[0, 1]
            got = table[(table.metric == metric) & (table.samples_per_class == n)].pearson_r
            assert got.tolist() == pytest.approx([want], abs=1e-12)
    assert table[table.samples_per_class == 10].pearson_r.tolist() == pytest.approx([1, 1])


def test_missing_reference_is_one_line(files, tmp_path):
    paths, _ = files
    proc = run_cli("pysim-subset-size", "--similarities", paths[0], "--similarities", paths[2],
                   "--out", tmp_path / "x.csv")
    assert_bad_input(proc, "imagenet-subset-10k", "reference")
    assert not (tmp_path / "x.csv").exists()


def test_other_dataset_or_other_models_are_one_line(files, tmp_path):
    paths, mats = files
    other = write(tmp_path / "cars.h5", "wds/cars", mats[1])
    proc = run_cli("pysim-subset-size", "--similarities", paths[1], "--similarities", other,
                   "--out", tmp_path / "x.csv")
    assert_bad_input(proc, "wds/cars", "imagenet-subset-<N>k")
    fewer = {m: x[:4, :4] for m, x in mats[1].items()}
    fewer_file = write(tmp_path / "fewer.h5", "imagenet-subset-5k", fewer, MODELS[:4])
    proc = run_cli("pysim-subset-size", "--similarities", paths[1], "--similarities",
                   fewer_file, "--out", tmp_path / "x.csv")
    assert_bad_input(proc, "imagenet-subset-5k", "models differ")
    assert not (tmp_path / "x.csv").exists()
