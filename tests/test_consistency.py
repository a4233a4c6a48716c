"""Consistency across datasets: planted structure, Mantel calibration, equality with plain loops."""

from __future__ import annotations

import itertools
import json
import logging

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kstest, spearmanr

from conftest import assert_bad_input, run_cli
from pysim.analysis import consistency as cons
from pysim.analysis.run import compute_consistency
from pysim.io import Similarities, write_similarities

METRIC = "cka_kernel_linear_unbiased"


def write_study(tmp_path, matrices_by_dataset, model_ids, categories, metric=METRIC):
    """Similarity files (one per dataset) and a model table with the given category columns."""
    paths = []
    for k, (dataset, matrix) in enumerate(matrices_by_dataset.items()):
        path = tmp_path / f"sim_{k}.h5"
        write_similarities(path, Similarities(dataset, list(model_ids), {metric: matrix},
                                              {metric: {"n_samples": 50}}))
        paths.append(path)
    table = {m: {"model_name": m, "source": "timm", "module_name": "head", **categories[m]}
             for m in model_ids}
    models = tmp_path / "models.json"
    models.write_text(json.dumps(table))
    return paths, models


def symmetric(rng, m, base=None, noise=1.0):
    """A symmetric matrix with unit diagonal: base + noise * random, squashed into [-1, 1]."""
    x = rng.normal(size=(m, m)) * noise
    x = (x + x.T) / 2
    if base is not None:
        x = x + base
    x = np.tanh(x)
    np.fill_diagonal(x, 1.0)
    return x


def planted(rng, n_datasets=6, n_per_group=8):
    """Supervised models keep one pair structure on every dataset; SSL models get a new one."""
    m = 2 * n_per_group
    sup = np.arange(n_per_group)
    base = symmetric(rng, m)
    out = {}
    for d in range(n_datasets):
        mat = symmetric(rng, m)
        mat[np.ix_(sup, sup)] = np.tanh(base[np.ix_(sup, sup)]
                                        + 0.05 * symmetric(rng, n_per_group))
        np.fill_diagonal(mat, 1.0)
        out[f"wds/set{d}"] = mat
    ids = [f"model{i:02d}" for i in range(m)]
    cats = {mid: {"objective": "Supervised" if i < n_per_group else "Self-Supervised",
                  "architecture_class": "CNN" if i % 2 else "Transformer"}
            for i, mid in enumerate(ids)}
    return out, ids, cats


def test_planted_groups_keep_or_lose_their_structure(tmp_path):
    rng = np.random.default_rng(1)
    mats, ids, cats = planted(rng)
    paths, models = write_study(tmp_path, mats, ids, cats)
    out = compute_consistency(paths, models, permutations=199, bootstrap=200, seed=0)
    table = out["consistency.csv"]
    obj = table[table["category"] == "objective"].set_index(["group_1", "group_2"])
    kept = obj.loc[("Supervised", "Supervised")]
    lost = obj.loc[("Self-Supervised", "Self-Supervised")]
    assert len(kept) == len(lost) == 15 and (kept["n_pairs"] == 28).all()
    assert kept["pearson_r"].min() > 0.95 and kept["spearman_r"].min() > 0.9
    assert (kept["mantel_p"] == 1 / 200).all()
    assert ((kept["ci_low"] <= kept["pearson_r"]) & (kept["pearson_r"] <= kept["ci_high"])).all()
    assert abs(lost["pearson_r"].mean()) < 0.15 and lost["pearson_r"].abs().max() < 0.7
    assert lost["mantel_p"].mean() > 0.25
    assert (lost["ci_low"] < 0.3).all()
    # the mixed pair has no planted structure either
    mixed = obj.loc[("Self-Supervised", "Supervised")]
    assert abs(mixed["pearson_r"].mean()) < 0.15
    # all-pairs consistency lies between the two and the wide table mirrors it
    everything = table[table["category"] == "all"]
    assert (everything[["group_1", "group_2"]] == "all").all().all()
    wide = out[f"matrix_{METRIC}.csv"].set_index("dataset")
    assert np.allclose(np.diag(wide.values), 1.0)
    for row in everything.itertuples():
        assert wide.loc[row.dataset_1, row.dataset_2] == row.pearson_r
        assert wide.loc[row.dataset_2, row.dataset_1] == row.pearson_r
    assert (table["group_1"] <= table["group_2"]).all()


def null_and_related_pvalues(related: bool, replicates: int, m: int = 8, perms: int = 199):
    rng = np.random.default_rng(7 if related else 8)
    labels = {"all": ["all"] * m}
    pvalues = []
    for rep in range(replicates):
        a = symmetric(rng, m)
        b = symmetric(rng, m, base=a, noise=0.3) if related else symmetric(rng, m)
        plan = cons.resampling_plan(labels, perms, 0, seed=rep)
        table = cons.consistency_rows(METRIC, ["a", "b"], np.stack([a, b]), labels, plan)
        pvalues.append(float(table["mantel_p"].iloc[0]))
    return np.array(pvalues)


def test_mantel_p_small_when_related_and_uniform_when_not():
    related = null_and_related_pvalues(True, 12)
    assert related.max() <= 0.01
    null = null_and_related_pvalues(False, 60)
    assert 0.38 < null.mean() < 0.62
    assert kstest(null, "uniform").pvalue > 0.01
    assert (null < 0.05).mean() < 0.15


def plain_group_pairs(labels):
    """{(g1, g2): [(i, j), ...]} over i < j with both labels known, >= 2 pairs."""
    groups = {}
    for i, j in itertools.combinations(range(len(labels)), 2):
        if labels[i] is None or labels[j] is None:
            continue
        groups.setdefault(tuple(sorted((labels[i], labels[j]))), []).append((i, j))
    return {k: v for k, v in groups.items() if len(v) >= 2}


def corr(x, y):
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:  # constant: undefined, not rounding
        return np.nan
    return float(np.corrcoef(x, y)[0, 1])


def plain_row(a, b, labels, pairs, perms, draws):
    """Pearson, Spearman, Mantel p and bootstrap interval by explicit loops."""
    key = tuple(sorted((labels[pairs[0][0]], labels[pairs[0][1]])))
    x = np.array([a[i, j] for i, j in pairs])
    y = np.array([b[i, j] for i, j in pairs])
    r = corr(x, y)
    hits = 0
    for perm in perms:
        bp = b[np.ix_(perm, perm)]
        hits += abs(corr(x, np.array([bp[i, j] for i, j in pairs]))) >= abs(r) - 1e-12
    boots = []
    for draw in draws:
        xs, ys = [], []
        for s, t in itertools.combinations(range(len(draw)), 2):
            i, j = draw[s], draw[t]
            if i == j or labels[i] is None or labels[j] is None:
                continue
            if tuple(sorted((labels[i], labels[j]))) == key:
                xs.append(a[i, j])
                ys.append(b[i, j])
        boots.append(corr(np.array(xs), np.array(ys)))
    boots = np.array(boots)
    low, high = np.nanpercentile(boots, [2.5, 97.5]) if np.isfinite(boots).any() else (np.nan,) * 2
    return r, spearmanr(x, y)[0], (1 + hits) / (len(perms) + 1), low, high


def test_vectorised_results_equal_plain_loops():
    rng = np.random.default_rng(3)
    m, datasets = 9, ["d0", "d1", "d2"]
    stack = np.stack([symmetric(rng, m, base=symmetric(rng, m), noise=0.5) for _ in datasets])
    labels = {"all": ["all"] * m,
              "objective": ["A", "A", "A", "B", "B", "B", "B", "C", "C"],
              "size_class": ["s", "s", None, "l", "l", "s", "s", "s", "x"]}
    plan = cons.resampling_plan(labels, 40, 30, seed=5)
    table = cons.consistency_rows(METRIC, datasets, stack, labels, plan)
    expected = []
    for category, labs in labels.items():
        perms, draws = plan[category]
        for (g1, g2), pairs in sorted(plain_group_pairs(labs).items()):
            for (da, a), (db, b) in itertools.combinations(zip(datasets, stack, strict=True), 2):
                r, rho, p, low, high = plain_row(a, b, labs, pairs, perms, draws)
                expected.append({"metric": METRIC, "dataset_1": da, "dataset_2": db,
                                 "category": category, "group_1": g1, "group_2": g2,
                                 "n_pairs": len(pairs), "pearson_r": r, "spearman_r": rho,
                                 "mantel_p": p, "ci_low": low, "ci_high": high})
    expected = pd.DataFrame(expected)
    key = ["category", "group_1", "group_2", "dataset_1", "dataset_2"]
    got = table.sort_values(key).reset_index(drop=True)
    expected = expected.sort_values(key).reset_index(drop=True)
    # ("C", "C") and ("l", "l") have 1 pair: skipped; ("l", "x") has exactly 2: kept
    found = set(zip(got["group_1"], got["group_2"], strict=True))
    assert {("C", "C"), ("l", "l")}.isdisjoint(found)
    assert {("A", "C"), ("s", "x"), ("l", "s"), ("l", "x")} <= found
    assert set(got[got["group_1"] == "l"].query("group_2 == 'x'")["n_pairs"]) == {2}
    pd.testing.assert_frame_equal(got[key + ["metric", "n_pairs"]],
                                  expected[key + ["metric", "n_pairs"]], check_dtype=False)
    for column in ["pearson_r", "spearman_r", "mantel_p", "ci_low", "ci_high"]:
        np.testing.assert_allclose(got[column].astype(float), expected[column].astype(float),
                                   rtol=0, atol=1e-9, err_msg=column)


def test_models_missing_from_a_dataset_are_dropped_with_a_warning(tmp_path, caplog):
    rng = np.random.default_rng(4)
    ids = [f"m{i}" for i in range(6)]
    cats = {m: {"objective": "Supervised"} for m in ids}
    paths, models = write_study(tmp_path, {f"d{k}": symmetric(rng, 6) for k in range(3)},
                                ids, cats)
    extra = tmp_path / "sim_extra.h5"
    write_similarities(extra, Similarities("d3", ids[1:], {METRIC: symmetric(rng, 5)}, {}))
    with caplog.at_level(logging.WARNING):
        out = compute_consistency([*paths, extra], models, permutations=9, bootstrap=9)
    assert "dropped: m0" in caplog.text
    assert set(out["consistency.csv"]["n_pairs"]) == {10}
    assert set(out["clusters.csv"]["model_id"]) == set(ids[1:])
    # file order does not change anything (datasets sorted, models in table order)
    again = compute_consistency([extra, *reversed(paths)], models, permutations=9, bootstrap=9)
    for name, frame in out.items():
        pd.testing.assert_frame_equal(frame, again[name], obj=name)


def test_cli_writes_every_table_and_rejects_bad_input(tmp_path):
    rng = np.random.default_rng(5)
    mats, ids, cats = planted(rng, n_datasets=3, n_per_group=4)
    paths, models = write_study(tmp_path, mats, ids, cats)
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"wds/set0": {"name": "Set 0", "domain": "Natural"},
                                "wds/set1": {"name": "Set 1", "domain": "Natural"},
                                "wds/set2": {"name": "Set 2", "domain": "Structured"}}))
    out = tmp_path / "consistency"
    args = [a for p in paths for a in ("--similarities", p)]
    run_cli("pysim-consistency", *args, "--models", models, "--out-dir", out,
            "--dataset-info", info, "--permutations", "19", "--bootstrap", "19",
            "--num-clusters", "2", check=True)
    table = pd.read_csv(out / "consistency.csv")
    assert list(table.columns) == [*cons.COLUMNS, "transform"]
    assert set(table["transform"]) == {"none"}
    assert len(table[table["category"] == "all"]) == 3
    for name in [f"matrix_{METRIC}.csv", f"aggregate_{METRIC}.csv", "clusters.csv",
                 "clusters_ari.csv", "domains.csv", f"embedding_{METRIC}.csv",
                 "metric_agreement.csv", "anchors.csv", "anchor_tests.csv"]:
        assert (out / name).stat().st_size > 0, name
    domains = pd.read_csv(out / "domains.csv")
    alls = domains[domains["category"] == "all"].set_index(["domain_1", "domain_2"])
    assert alls.loc[("Natural", "Natural"), "n_dataset_pairs"] == 1
    assert alls.loc[("Natural", "Structured"), "n_dataset_pairs"] == 2
    aggregate = pd.read_csv(out / f"aggregate_{METRIC}.csv")
    stack = np.stack([mats[d] for d in sorted(mats)])
    first = aggregate.iloc[0]
    i, j = ids.index(first["model_1"]), ids.index(first["model_2"])
    assert first["mean"] == pytest.approx(stack[:, i, j].mean())
    assert first["std"] == pytest.approx(stack[:, i, j].std())
    assert not list(out.glob(".*tmp"))

    missing = run_cli("pysim-consistency", *args, "--models", models, "--out-dir",
                      tmp_path / "o2", "--similarities", tmp_path / "nope.h5")
    assert_bad_input(missing, "nope.h5")
    short_table = tmp_path / "short.json"
    short_table.write_text(json.dumps({ids[0]: json.loads(models.read_text())[ids[0]]}))
    unknown = run_cli("pysim-consistency", *args, "--models", short_table, "--out-dir",
                      tmp_path / "o3")
    assert_bad_input(unknown, "not in the model table", ids[1])
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_clusters_recover_planted_blocks_and_agree_across_datasets():
    from sklearn.metrics import adjusted_rand_score

    from pysim.analysis.clusters import cluster_agreement, cluster_table

    rng = np.random.default_rng(6)
    truth = np.repeat([0, 1, 2], 4)
    ids = [f"m{i}" for i in range(12)]
    layers = []
    for _ in range(2):
        mat = np.where(truth[:, None] == truth[None, :], 0.9, 0.1)
        layers.append(np.clip(mat + 0.05 * symmetric(rng, 12), 0, 1))
        np.fill_diagonal(layers[-1], 1.0)
    layers.append(symmetric(rng, 12))  # no block structure at all
    table = cluster_table(METRIC, ["a", "b", "c"], np.stack(layers), ids, 3, seed=0)
    assert list(table.columns) == ["dataset", "metric", "model_id", "cluster"]
    for dataset in ("a", "b"):
        labels = table[table["dataset"] == dataset]["cluster"].to_numpy()
        assert adjusted_rand_score(truth, labels) == 1.0
    ari = cluster_agreement(table).set_index(["dataset_1", "dataset_2"])["ari"]
    assert ari[("a", "b")] == 1.0 and ari[("a", "c")] < 0.5
    again = cluster_table(METRIC, ["a", "b", "c"], np.stack(layers), ids, 3, seed=0)
    assert table.equals(again)
