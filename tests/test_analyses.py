"""The consistency stage's further analyses (DESIGN §1.7) on real similarity files: t-SNE maps,
metric agreement, anchor models with rank-sum tests and BH correction, transforms, and the
two-pair threshold of category pairs. Expected numbers are re-derived here with numpy/scipy."""

from __future__ import annotations

import itertools
import json
import logging

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm, pearsonr, rankdata, spearmanr

from conftest import assert_bad_input, run_cli
from pysim.analysis.run import compute_consistency
from pysim.io import Similarities, write_similarities

METRICS = ("cka_kernel_linear_unbiased", "mutual_knn_k_10", "rsa_method_correlation_corr_method_"
           "spearman")


def write_files(tmp_path, mats, model_ids, objectives):
    """Similarity files in DESIGN §5 format ({dataset: {metric: m x m}}) and a model table."""
    paths = []
    for k, (dataset, by_metric) in enumerate(mats.items()):
        path = tmp_path / f"sim_{k}.h5"
        write_similarities(path, Similarities(dataset, list(model_ids), by_metric,
                                              {m: {"n_samples": 40} for m in by_metric}))
        paths.append(path)
    table = {m: {"model_name": m, "source": "timm", "module_name": "head",
                 "objective": objectives[k], "architecture_class": "CNN" if k % 2 else "ViT"}
             for k, m in enumerate(model_ids)}
    models = tmp_path / "models.json"
    models.write_text(json.dumps(table))
    return paths, models


def random_similarity(rng, m, base=None, noise=0.3):
    """A symmetric m x m matrix in [-1, 1] with unit diagonal (base + noise, squashed)."""
    x = rng.normal(size=(m, m)) * noise
    x = (x + x.T) / 2 + (0 if base is None else base)
    x = np.tanh(x)
    np.fill_diagonal(x, 1.0)
    return x


def study(rng, m=9, n_datasets=4, metrics=METRICS):
    """Datasets sharing some structure; every metric a noisy version of it."""
    shared = rng.normal(size=(m, m))
    shared = (shared + shared.T) / 2
    mats = {f"wds/d{d}": {metric: random_similarity(rng, m, base=shared, noise=0.8)
                          for metric in metrics} for d in range(n_datasets)}
    ids = [f"model_{i}" for i in range(m)]
    objectives = [("Supervised", "Self-Supervised", "Image-Text")[i % 3] for i in range(m)]
    return mats, ids, objectives


def upper(matrix):
    return matrix[np.triu_indices(matrix.shape[0], 1)]


def test_metric_agreement_equals_scipy(tmp_path):
    mats, ids, objectives = study(np.random.default_rng(0))
    paths, models = write_files(tmp_path, mats, ids, objectives)
    out = compute_consistency(paths, models, permutations=0, bootstrap=0)
    table = out["metric_agreement.csv"]
    assert list(table.columns) == ["dataset", "metric_1", "metric_2", "pearson_r", "spearman_r"]
    assert len(table) == len(mats) * 3
    for row in table.itertuples():
        assert row.metric_1 < row.metric_2
        x, y = upper(mats[row.dataset][row.metric_1]), upper(mats[row.dataset][row.metric_2])
        assert row.pearson_r == pytest.approx(pearsonr(x, y)[0], abs=1e-12)
        assert row.spearman_r == pytest.approx(spearmanr(x, y)[0], abs=1e-12)


def planted_blocks(rng, n_datasets=2, per_group=6):
    """Two groups of models: high similarity within, low between, on every dataset."""
    m = 2 * per_group
    truth = np.repeat([0, 1], per_group)
    mats = {}
    for d in range(n_datasets):
        base = np.where(truth[:, None] == truth[None, :], 0.85, 0.05)
        mat = np.clip(base + 0.05 * rng.normal(size=(m, m)), -1, 1)
        mat = (mat + mat.T) / 2
        np.fill_diagonal(mat, 1.0)
        mats[f"wds/d{d}"] = {METRICS[0]: mat}
    return mats, [f"model_{i:02d}" for i in range(m)], truth


def test_tsne_separates_planted_groups_and_is_deterministic(tmp_path):
    mats, ids, truth = planted_blocks(np.random.default_rng(1))
    paths, models = write_files(tmp_path, mats, ids, ["Supervised"] * len(ids))
    out = compute_consistency(paths, models, permutations=0, bootstrap=0)
    table = out[f"embedding_{METRICS[0]}.csv"]
    assert list(table.columns) == ["dataset", "model_id", "x", "y"]
    assert len(table) == len(ids) * len(mats)
    for dataset, sel in table.groupby("dataset"):
        assert list(sel["model_id"]) == ids
        xy = sel[["x", "y"]].to_numpy()
        dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
        same = truth[:, None] == truth[None, :]
        off = ~np.eye(len(ids), dtype=bool)
        assert dist[same & off].max() < dist[~same].min(), dataset
    again = compute_consistency(paths, models, permutations=0, bootstrap=0)
    pd.testing.assert_frame_equal(table, again[f"embedding_{METRICS[0]}.csv"])


def test_tsne_perplexity_is_clipped_for_few_models(tmp_path, caplog):
    mats, ids, objectives = study(np.random.default_rng(2), m=4, n_datasets=2,
                                  metrics=METRICS[:1])
    paths, models = write_files(tmp_path, mats, ids, objectives)
    with caplog.at_level(logging.WARNING):
        out = compute_consistency(paths, models, permutations=0, bootstrap=0)
    assert "perplexity clipped from 5 to 3" in caplog.text
    table = out[f"embedding_{METRICS[0]}.csv"]
    assert len(table) == 8 and np.isfinite(table[["x", "y"]].to_numpy()).all()


def plain_ranksums(x, y):
    """Wilcoxon rank-sum z and two-sided normal p, from the rank sum of x."""
    n1, n2 = len(x), len(y)
    ranks = rankdata(np.concatenate([x, y]))
    expected = n1 * (n1 + n2 + 1) / 2
    z = (ranks[:n1].sum() - expected) / np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    return z, 2 * norm.sf(abs(z))


def plain_bh(p):
    """Benjamini-Hochberg by the textbook loop: q_(i) = min_{j >= i} p_(j) n / j, capped at 1."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p)
    n = len(p)
    q = np.empty(n)
    running = 1.0
    for rank in range(n, 0, -1):
        k = order[rank - 1]
        running = min(running, p[k] * n / rank)
        q[k] = running
    return q


def test_plain_bh_matches_a_hand_worked_example():
    # p sorted: .01 .02 .03 .2 -> .04 .04 .04 .2 (n = 4)
    np.testing.assert_allclose(plain_bh([0.03, 0.2, 0.01, 0.02]), [0.04, 0.2, 0.04, 0.04])


def test_anchors_and_their_tests_equal_plain_recomputation(tmp_path):
    mats, ids, objectives = study(np.random.default_rng(3), m=10, n_datasets=5,
                                  metrics=METRICS[:1])
    paths, models = write_files(tmp_path, mats, ids, objectives)
    anchors = ["model_0", "model_4"]
    out = compute_consistency(paths, models, permutations=0, bootstrap=0,
                              anchor_models=anchors)
    rows, tests = out["anchors.csv"], out["anchor_tests.csv"]
    datasets = sorted(mats)
    labels = {"all": ["all"] * len(ids), "objective": objectives,
              "architecture_class": ["CNN" if k % 2 else "ViT" for k in range(len(ids))]}
    expected = []
    for anchor in anchors:
        a = ids.index(anchor)
        for category, labs in labels.items():
            for group in sorted(set(labs)):
                others = [j for j in range(len(ids)) if labs[j] == group and j != a]
                if len(others) < 2:
                    continue
                for d1, d2 in itertools.combinations(datasets, 2):
                    x = mats[d1][METRICS[0]][a, others]
                    y = mats[d2][METRICS[0]][a, others]
                    expected.append((anchor, category, group, d1, d2, len(others),
                                     pearsonr(x, y)[0], spearmanr(x, y)[0]))
    assert set(rows["anchor_model"]) == set(anchors) and set(rows["transform"]) == {"none"}
    got = rows.set_index(["anchor_model", "category", "group", "dataset_1", "dataset_2"])
    assert len(got) == len(expected)
    for anchor, category, group, d1, d2, n, r, rho in expected:
        row = got.loc[(anchor, category, group, d1, d2)]
        assert row["n_models"] == n
        assert row["pearson_r"] == pytest.approx(r, abs=1e-10)
        assert row["spearman_r"] == pytest.approx(rho, abs=1e-10)
    # rank-sum tests between the groups of each category; pysim's BH per anchor
    for anchor in anchors:
        sel = tests[tests["anchor_model"] == anchor]
        zs, ps = [], []
        for row in sel.itertuples():
            cat = rows[(rows["anchor_model"] == anchor) & (rows["category"] == row.category)]
            x = cat[cat["group"] == row.group_1]["pearson_r"].to_numpy()
            y = cat[cat["group"] == row.group_2]["pearson_r"].to_numpy()
            z, p = plain_ranksums(x, y)
            assert row.n_dataset_pairs == len(x) == len(y) == 10
            zs.append(z)
            ps.append(p)
        # every two groups with >= 2 other models (model_4's own group has exactly 2)
        mine = rows[(rows["anchor_model"] == anchor) & (rows["category"] != "all")]
        n_groups = mine.groupby("category")["group"].nunique()
        assert len(sel) == sum(k * (k - 1) // 2 for k in n_groups) == 4
        np.testing.assert_allclose(sel["statistic"], zs, atol=1e-10)
        np.testing.assert_allclose(sel["p_value"], ps, atol=1e-12)
        np.testing.assert_allclose(sel["p_bh_pysim"], plain_bh(ps), atol=1e-12)


@pytest.mark.parametrize("transform, func", [("tan", np.tan), ("arccos", np.arccos)])
def test_transforms_recompute_consistency_on_transformed_values(tmp_path, transform, func,
                                                                caplog):
    mats, ids, objectives = study(np.random.default_rng(4), m=7, n_datasets=3,
                                  metrics=METRICS[:1])
    mats["wds/d0"][METRICS[0]][0, 1] = mats["wds/d0"][METRICS[0]][1, 0] = 1 + 5e-7  # rounding
    paths, models = write_files(tmp_path, mats, ids, objectives)
    with caplog.at_level(logging.WARNING):
        out = compute_consistency(paths, models, permutations=0, bootstrap=0,
                                  transform=transform)
    assert "outside [-1, 1]" not in caplog.text  # within rounding: clipped silently
    table = out["consistency.csv"]
    assert set(table["transform"]) == {transform}
    assert set(out["anchors.csv"]["transform"]) == {transform}
    alls = table[table["category"] == "all"]
    assert len(alls) == 3
    for row in alls.itertuples():
        x = func(np.clip(upper(mats[row.dataset_1][METRICS[0]]), -1, 1))
        y = func(np.clip(upper(mats[row.dataset_2][METRICS[0]]), -1, 1))
        assert np.isfinite(x).all() and np.isfinite(y).all()
        assert row.pearson_r == pytest.approx(pearsonr(x, y)[0], abs=1e-10)
        assert row.spearman_r == pytest.approx(spearmanr(x, y)[0], abs=1e-10)
    raw = compute_consistency(paths, models, permutations=0, bootstrap=0)["consistency.csv"]
    assert set(raw["transform"]) == {"none"}
    assert not np.allclose(raw["pearson_r"], table["pearson_r"])
    # the maps use the raw similarities whatever the transform
    pd.testing.assert_frame_equal(out[f"embedding_{METRICS[0]}.csv"],
                                  compute_consistency(paths, models, permutations=0, bootstrap=0)
                                  [f"embedding_{METRICS[0]}.csv"])


def test_category_pair_with_two_model_pairs_is_kept_and_with_one_dropped(tmp_path):
    # objective: A A A B C -> (B, C) 1 pair (dropped), (A, B) 3 pairs; architecture: CNN/ViT
    mats, ids, _ = study(np.random.default_rng(5), m=5, n_datasets=3, metrics=METRICS[:1])
    paths, models = write_files(tmp_path, mats, ids, ["A", "A", "A", "B", "C"])
    # architecture_class: ViT CNN ViT CNN ViT -> (CNN, CNN) 1 pair, (ViT, ViT) 3 pairs
    table = compute_consistency(paths, models, permutations=0, bootstrap=0)["consistency.csv"]
    pairs = table.groupby(["category", "group_1", "group_2"])["n_pairs"].first().to_dict()
    assert ("objective", "B", "C") not in pairs
    assert ("architecture_class", "CNN", "CNN") not in pairs
    assert pairs[("objective", "A", "A")] == 3 and pairs[("objective", "A", "B")] == 3

    two = tmp_path / "two"
    two.mkdir()
    paths, models = write_files(two, mats, ids, ["A", "A", "B", "B", "C"])
    table = compute_consistency(paths, models, permutations=0, bootstrap=0)["consistency.csv"]
    pairs = table.groupby(["category", "group_1", "group_2"])["n_pairs"].first().to_dict()
    assert pairs[("objective", "A", "C")] == 2 and pairs[("objective", "B", "C")] == 2
    assert ("objective", "A", "A") not in pairs  # one pair
    row = table[(table["group_1"] == "A") & (table["group_2"] == "C")].iloc[0]
    x = np.array([mats[row.dataset_1][METRICS[0]][i, 4] for i in (0, 1)])
    y = np.array([mats[row.dataset_2][METRICS[0]][i, 4] for i in (0, 1)])
    assert row.pearson_r == pytest.approx(np.sign((x[1] - x[0]) * (y[1] - y[0])))


def test_cli_options_and_bad_input(tmp_path):
    mats, ids, objectives = study(np.random.default_rng(6), m=6, n_datasets=2,
                                  metrics=METRICS[:2])
    paths, models = write_files(tmp_path, mats, ids, objectives)
    args = [a for p in paths for a in ("--similarities", p)]
    out = tmp_path / "out"
    run_cli("pysim-consistency", *args, "--models", models, "--out-dir", out,
            "--permutations", "9", "--bootstrap", "9", "--transform", "arccos",
            "--anchors", "model_1", "--anchors", "model_2",
            "--anchor-test-metrics", METRICS[0], check=True)
    anchors = pd.read_csv(out / "anchors.csv")
    assert set(anchors["anchor_model"]) == {"model_1", "model_2"}
    assert set(pd.read_csv(out / "consistency.csv")["transform"]) == {"arccos"}
    for metric in METRICS[:2]:
        assert len(pd.read_csv(out / f"embedding_{metric}.csv")) == 12
    assert len(pd.read_csv(out / "metric_agreement.csv")) == 2
    tests = pd.read_csv(out / "anchor_tests.csv")
    assert {"statistic", "p_value", "p_adjusted", "transform"} <= set(tests.columns)
    # the Bonferroni family: the first metric's tests only; the other's have no p_adjusted
    family = tests["metric"] == METRICS[0]
    assert family.any() and (~family).any()
    sizes = tests[family].groupby("category")["family_size"]
    assert (sizes.nunique() == 1).all() and (sizes.first() == sizes.size()).all()
    assert tests.loc[~family, ["family_size", "p_adjusted"]].isna().all().all()

    bad = run_cli("pysim-consistency", *args, "--models", models, "--out-dir", tmp_path / "o2",
                  "--transform", "log")
    assert_bad_input(bad, "--transform")
    unknown = run_cli("pysim-consistency", *args, "--models", models, "--out-dir",
                      tmp_path / "o3", "--anchors", "nope")
    assert_bad_input(unknown, "anchor models", "nope")
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()
