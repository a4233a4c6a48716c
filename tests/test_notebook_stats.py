"""The study's notebook statistics (issue 21 item 4) against re-derivations that follow the
original notebooks step by step with pandas/scipy/seaborn, on planted data where pysim's
earlier variants give other numbers:

- App. C (app_C_cka_sensitivity_to_nr_samples): |difference| between consecutive subset sizes
  per model pair, and heatmaps ordered by seaborn's clustermap of the 10-per-class CKA linear.
- App. D (app_D_inverse_u_shape): mean and std across datasets of tan(S) and arccos(S).
- §4.2 (4_2_do_similarities_directly_transfer): Pearson r of two metrics' cross-dataset means.
- App. E (app_E_does_local_n_global_sim_differ on aggregate_consistencies_for_model_set_pairs):
  Pearson r of two metrics' consistency coefficients over dataset pairs x model-set pairs.
- App. F (app_F_validating_infl_train_obj_with_anchor_modles on
  aggregate_consistencies_for_anchor_models): rank-sum tests pooled over anchors and the two CKA
  metrics of one category, Bonferroni (the files also hold RSA, which the aggregation notebook
  computes and App. F leaves out of the family).
"""

from __future__ import annotations

import itertools
import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402

from conftest import assert_bad_input, run_cli  # noqa: E402
from pysim.analysis.anchors import anchor_tests as compute_anchor_tests  # noqa: E402
from pysim.analysis.run import compute_consistency  # noqa: E402
from pysim.io import Similarities, write_similarities  # noqa: E402

LINEAR, RBF = "cka_kernel_linear_unbiased", "cka_kernel_rbf_unbiased_sigma_0.4"
RSA = "rsa_method_correlation_corr_method_spearman"
METRICS = (RBF, LINEAR)  # the App. F notebook's sim_metrics
MODELS = [f"m{i}" for i in range(8)]
# objective 3 + 3 + 2 (Image-Text x Image-Text is one model pair: no consistency row, and an
# anchor's own group of 3 leaves 2 others: tested); architecture 5 + 3
OBJECTIVE = ["Supervised", "Self-Supervised", "Supervised", "Image-Text", "Self-Supervised",
             "Supervised", "Self-Supervised", "Image-Text"]
ARCH = ["CNN", "CNN", "Transformer", "CNN", "Transformer", "CNN", "Transformer", "CNN"]
CATEGORIES = {"objective": OBJECTIVE, "architecture_class": ARCH}
DATASETS = ["wds/a", "wds/b", "wds/c", "wds/d", "wds/e"]


def planted(rng, m, shared, noise):
    """A symmetric matrix in (0, 1) with unit diagonal: shared structure plus noise."""
    x = rng.normal(size=(m, m)) * noise
    x = 1 / (1 + np.exp(-(shared + (x + x.T) / 2)))
    np.fill_diagonal(x, 1.0)
    return x


def unit_diagonal(df):
    """The notebooks' np.fill_diagonal(df.values, 1) (pandas' values are read-only here)."""
    values = df.to_numpy(copy=True)
    np.fill_diagonal(values, 1)
    return pd.DataFrame(values, index=df.index, columns=df.columns)


def upper(df):
    return df.values[np.triu_indices(df.shape[0], k=1)]


# --- App. C -------------------------------------------------------------------------------

def test_app_c_delta_and_dendrogram_order_as_the_notebook(tmp_path):
    rng = np.random.default_rng(11)
    m = 7
    # two planted blocks interleaved in the file's model order, so the dendrogram reorders
    block = np.array([0, 1, 0, 1, 0, 1, 1])
    shared = np.where(block[:, None] == block[None, :], 1.5, -1.0)
    sizes = [1, 5, 10, 20]
    mats = {n: {metric: planted(rng, m, shared, 0.4 + 0.6 / n) for metric in METRICS}
            for n in sizes}
    ids = [f"model_{k}" for k in range(m)]
    paths = []
    for n in (20, 1, 10, 5):  # not in size order
        path = tmp_path / f"{n}.h5"
        write_similarities(path, Similarities(f"imagenet-subset-{n}k", ids, mats[n], {}))
        paths.append(path)
    out = tmp_path / "out" / "subset_size.csv"
    run_cli("pysim-subset-size", *[a for p in paths for a in ("--similarities", p)],
            "--out", out, "--delta-out", tmp_path / "delta.csv", check=True)
    delta = pd.read_csv(tmp_path / "delta.csv")
    assert not (out.parent / "subset_size_delta.csv").exists()
    matrices = pd.read_csv(out.parent / "subset_size_matrices.csv")

    # the notebook: one DataFrame per size and metric, diagonal 1
    sim_mats = {f"imagenet-subset-{n}k": {
        k: unit_diagonal(pd.DataFrame(mats[n][k], index=ids, columns=ids))
        for k in (RBF, LINEAR)} for n in sizes}
    g = sns.clustermap(sim_mats["imagenet-subset-10k"][LINEAR], annot=True, fmt=".2f")
    row_order, col_order = g.dendrogram_row.reordered_ind, g.dendrogram_col.reordered_ind
    plt.close("all")
    assert row_order != list(range(m))  # the planted blocks are reordered
    for ds, by_metric in sim_mats.items():
        n = int(ds.split("-")[-1][:-1])
        for metric, df in by_metric.items():
            want = df.iloc[row_order, col_order]
            sel = matrices[(matrices.metric == metric) & (matrices.samples_per_class == n)]
            got = sel.pivot(index="position_1", columns="position_2", values="value")
            np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), atol=1e-12)
            names = sel.drop_duplicates("position_1").sort_values("position_1")["model_1"]
            assert list(names) == list(want.index)
    assert set(matrices["order_metric"]) == {LINEAR}

    # the notebook's differences: flattened upper triangles, one column per size in the order
    # of its dataset list (ascending), consecutive columns differenced
    for metric in (RBF, LINEAR):
        flat = pd.DataFrame({ds: upper(sim_mats[ds][metric]) for ds in sim_mats})
        diff = flat.diff(axis=1).abs().iloc[:, 1:]
        diff.columns = [f"{a.split('-')[-1]} and {b.split('-')[-1]}"
                        for a, b in zip(flat.columns[:-1], flat.columns[1:], strict=True)]
        melted = pd.melt(diff, var_name="compared", value_name="abs_diff")
        mine = delta[delta.metric == metric]
        assert [f"{a}k and {b}k" for a, b in zip(mine.samples_per_class_1,
                                                 mine.samples_per_class_2, strict=True)] \
            == list(melted["compared"])
        np.testing.assert_allclose(mine["abs_diff"], melted["abs_diff"], atol=1e-12)
    # pysim's r against the reference stays as its own table
    assert list(pd.read_csv(out).columns) == ["metric", "samples_per_class", "pearson_r"]


# --- App. D, §4.2, App. E, App. F on one consistency run -----------------------------------

@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(5)
    m = len(MODELS)
    shared = rng.normal(size=(m, m)) * 1.2
    shared = (shared + shared.T) / 2
    mats = {ds: {metric: planted(rng, m, shared, 0.9) for metric in METRICS} for ds in DATASETS}
    for ds in DATASETS:  # the third metric of the paper's config, drawn after the others
        mats[ds][RSA] = planted(rng, m, shared, 0.9)
    paths = []
    for k, ds in enumerate(DATASETS):
        path = tmp / f"s{k}.h5"
        write_similarities(path, Similarities(ds, MODELS, mats[ds], {}))
        paths.append(path)
    table = {mid: {"model_name": mid, "source": "timm", "module_name": "head",
                   "objective": OBJECTIVE[i], "architecture_class": ARCH[i]}
             for i, mid in enumerate(MODELS)}
    models = tmp / "models.json"
    models.write_text(json.dumps(table))
    anchors = ["m0", "m1", "m4"]
    out = compute_consistency(paths, models, permutations=0, bootstrap=0, anchor_models=anchors,
                              anchor_test_metrics=list(METRICS))
    # the notebooks' loading: DataFrames over the allowed models (sorted by objective, then id)
    configs = pd.DataFrame(table).T.reset_index().sort_values(["objective", "index"])
    configs = configs.set_index("index")
    allowed = configs.index.tolist()
    sim_mats = {metric: {ds: unit_diagonal(pd.DataFrame(mats[ds][metric], index=MODELS,
                                                        columns=MODELS).loc[allowed, allowed])
                         for ds in DATASETS} for metric in (*METRICS, RSA)}
    return {"out": out, "configs": configs, "allowed": allowed, "sim_mats": sim_mats,
            "anchors": anchors, "files": tmp}


def by_pair(table, *columns):
    return {frozenset((a, b)): tuple(row) for a, b, *row in
            table[["model_1", "model_2", *columns]].itertuples(index=False)}


def test_app_d_mean_and_std_of_transformed_similarities(study):
    allowed = study["allowed"]
    for metric in METRICS:
        result = np.stack(list(study["sim_mats"][metric].values()), axis=0)
        agg = by_pair(study["out"][f"aggregate_{metric}.csv"], "mean_tan", "std_tan",
                      "mean_arccos", "std_arccos", "mean", "std")
        for name, func in (("tan", np.tan), ("arccos", np.arccos)):
            moved = func(result)
            mean = pd.DataFrame(moved.mean(axis=0), index=allowed, columns=allowed)
            std = pd.DataFrame(moved.std(axis=0), index=allowed, columns=allowed)
            rows, cols = np.triu_indices(len(allowed), k=1)
            for i, j in zip(rows, cols, strict=True):
                got = agg[frozenset((allowed[i], allowed[j]))]
                k = 0 if name == "tan" else 2
                assert got[k] == pytest.approx(mean.values[i, j], abs=1e-12)
                assert got[k + 1] == pytest.approx(std.values[i, j], abs=1e-12)
                # the transformed aggregate is not the transform of the raw one
                assert abs(got[k] - func(got[4])) > 1e-6


def test_sec_4_2_pearson_of_cross_dataset_means(study):
    table = study["out"]["metric_mean_agreement.csv"]
    means = {}
    for metric in METRICS:
        result = np.stack(list(study["sim_mats"][metric].values()), axis=0)
        means[metric] = pd.DataFrame(result.mean(axis=0), index=study["allowed"],
                                     columns=study["allowed"])
    want, _ = stats.pearsonr(upper(means[LINEAR]), upper(means[RBF]))
    row = table.set_index(["metric_1", "metric_2"]).loc[(LINEAR, RBF)]
    assert row["pearson_r"] == pytest.approx(want, abs=1e-12)
    assert row["n_pairs"] == len(MODELS) * (len(MODELS) - 1) // 2
    # pysim's per-dataset agreement is another number
    per_dataset = study["out"]["metric_agreement.csv"]["pearson_r"].mean()
    assert abs(per_dataset - want) > 1e-3


def notebook_set_pair_coefficients(configs, sim_mats, category, corr):
    """aggregate_consistencies_for_model_set_pairs for one category and metric: r of every
    dataset pair over the model pairs with one model in the anchor set and one in the other."""
    groups = configs.reset_index(names=["mid"]).groupby(category)["mid"].unique()
    flat = []
    for ds, df in sim_mats.items():
        i, j = np.triu_indices(n=len(df), k=1)
        part = pd.DataFrame({"value": df.values[i, j], "model_1": df.index.values[i],
                             "model_2": df.columns.values[j]})
        part["c1"] = part["model_1"].map(lambda x: configs.loc[x, category])
        part["c2"] = part["model_2"].map(lambda x: configs.loc[x, category])
        part["ds"] = ds
        flat.append(part)
    flat = pd.concat(flat)
    out = []
    for ds1, ds2 in itertools.combinations(list(flat["ds"].unique()), 2):
        both = flat[flat["ds"].isin([ds1, ds2])]
        for cat in groups.index.tolist():
            sub = both[(both["c1"] == cat) | (both["c2"] == cat)].copy()
            sub["other"] = sub[["c1", "c2"]].apply(
                lambda r, cat=cat: r["c2"] if r["c1"] == cat else r["c1"], axis=1)
            for other, data in sub.groupby("other"):
                if len(data) <= 2:  # rows of both datasets: one model pair only
                    continue
                x = data[data["ds"] == ds1]["value"]
                y = data[data["ds"] == ds2]["value"]
                r = (stats.pearsonr(x, y) if corr == "pearsonr" else stats.spearmanr(x, y))[0]
                out.append({"ds1": ds1, "ds2": ds2, "anchor_cat": cat, "other_cat": other,
                            "r coeff": r, "cat_pair": tuple(sorted([cat, other]))})
    return pd.DataFrame(out)


@pytest.mark.parametrize("corr, column", [("pearsonr", "pearson_r"), ("spearmanr", "spearman_r")])
def test_app_e_consistency_of_one_metric_against_another(study, corr, column):
    frames = []
    for category, metric in itertools.product(sorted(CATEGORIES), METRICS):
        df = notebook_set_pair_coefficients(study["configs"], study["sim_mats"][metric],
                                            category, corr)
        df["Comparison category"] = category
        df["Similarity metric"] = metric
        frames.append(df)
    r_df = pd.concat(frames, axis=0)
    r_df = r_df[~r_df[["ds1", "ds2", "r coeff", "cat_pair", "Comparison category",
                       "Similarity metric"]].duplicated()].reset_index(drop=True)
    key = ["ds1", "ds2", "anchor_cat", "other_cat"]
    d1 = r_df[r_df["Similarity metric"] == LINEAR].set_index(key)
    d2 = r_df[r_df["Similarity metric"] == RBF].set_index(key)
    d1.columns = [c + " sm1" for c in d1.columns]
    d2.columns = [c + " sm2" for c in d2.columns]
    joined = pd.concat([d1, d2], axis=1)
    want, _ = stats.pearsonr(joined["r coeff sm1"], joined["r coeff sm2"])
    table = study["out"]["metric_consistency_agreement.csv"]
    row = table.set_index(["metric_1", "metric_2", "coefficient"]).loc[(LINEAR, RBF, column)]
    assert row["n_rows"] == len(joined)
    assert row["pearson_r"] == pytest.approx(want, abs=1e-10)
    # the consistency table's `all` rows are not part of it
    cons = study["out"]["consistency.csv"]
    wide = cons.pivot_table(index=["dataset_1", "dataset_2", "category", "group_1", "group_2"],
                            columns="metric", values=column)
    with_all, _ = stats.pearsonr(wide[LINEAR], wide[RBF])
    assert abs(with_all - want) > 1e-6


def notebook_anchor_coefficients(configs, allowed, sim_mats, anchors):
    """aggregate_consistencies_for_anchor_models (Pearson): per metric, anchor and group of a
    category (and `All`), r of the anchor's similarities to that group between two datasets."""
    categories = list(CATEGORIES)
    melted = []
    for anchor in anchors:
        for metric, by_ds in sim_mats.items():
            cols = sorted(set(allowed) - {anchor})
            wide = pd.concat([by_ds[ds].loc[anchor, cols].rename(ds) for ds in by_ds], axis=1)
            wide = wide.reset_index(names=["other"])
            for c in categories:
                wide[c] = wide["other"].map(lambda x, c=c: configs.loc[x, c])
            wide["metric"], wide["anchor"] = metric, anchor
            melted.append(pd.melt(wide, id_vars=["anchor", "other", "metric", *categories],
                                  var_name="ds", value_name="value"))
    sims = pd.concat(melted, axis=0).reset_index(drop=True)
    pairs = list(itertools.combinations(sims["ds"].unique(), 2))
    out = []
    for c in categories:
        for keys, data in sims.groupby(["metric", "anchor", c]):
            for ds1, ds2 in pairs:
                x = data[data["ds"] == ds1]["value"]
                y = data[data["ds"] == ds2]["value"]
                r = stats.pearsonr(x, y)[0] if len(x) >= 2 else np.nan
                out.append({"metric": keys[0], "anchor": keys[1], "category": c,
                            "group": keys[2], "ds1": ds1, "ds2": ds2, "r": r})
    return pd.DataFrame(out)


def notebook_app_f(r_df, anchors):
    """app_F_validating_infl_train_obj_with_anchor_modles: the rows of its two CKA metrics;
    per category and anchor, rank-sum tests between two groups under one metric; every
    anchor's p-values pooled, Bonferroni (statsmodels' multipletests: min(1, p x n))."""
    r_df = r_df[r_df["metric"].isin(METRICS)]
    out = {}
    for category, df in r_df.groupby("category"):
        keys, pvals = [], []
        for anchor in anchors:
            data = df[df["anchor"] == anchor]
            configs = sorted(set(zip(data["group"], data["metric"], strict=True)))
            pairs = [(a, b) for i, a in enumerate(configs) for j, b in enumerate(configs)
                     if i < j and a[1] == b[1]]
            for a, b in pairs:
                x = data[(data["group"] == a[0]) & (data["metric"] == a[1])]["r"]
                y = data[(data["group"] == b[0]) & (data["metric"] == b[1])]["r"]
                x, y = x.reset_index(drop=True), y.reset_index(drop=True)
                drop = list(np.where(x.isna())[0]) + list(np.where(y.isna())[0])
                x, y = x.drop(labels=drop), y.drop(labels=drop)
                pvals.append(stats.ranksums(x, y)[1])
                keys.append((a[1], anchor, category, a[0], b[0]))
        corrected = np.array(pvals) * len(pvals)  # Bonferroni over the pooled family
        corrected[corrected > 1] = 1
        out[category] = (keys, np.array(pvals), corrected)
    return out


TEST_KEY = ["metric", "anchor_model", "category", "group_1", "group_2"]


def test_app_f_rank_sums_pooled_over_anchors_with_bonferroni(study):
    # the paper setting: --anchor-test-metrics names the notebook's two CKA metrics
    anchors = study["anchors"]
    r_df = notebook_anchor_coefficients(study["configs"], study["allowed"], study["sim_mats"],
                                        anchors)
    tests = study["out"]["anchor_tests.csv"]
    for category, (keys, pvals, corrected) in notebook_app_f(r_df, anchors).items():
        got = tests[(tests["category"] == category) & tests["metric"].isin(METRICS)]
        got = got.set_index(TEST_KEY)
        assert len(got) == len(keys)
        for key, p, q in zip(keys, pvals, corrected, strict=True):
            assert got.loc[key, "p_value"] == pytest.approx(p, rel=1e-10, abs=1e-14)
            assert got.loc[key, "p_adjusted"] == pytest.approx(q, rel=1e-10, abs=1e-14)
            assert got.loc[key, "family_size"] == len(pvals)
        # pysim's BH per (metric, anchor) is another number for some test
        assert (np.abs(got["p_bh_pysim"] - got["p_adjusted"]) > 1e-6).any()
    # RSA is tested too, outside the family: p-value, no family size, no adjusted p-value
    rsa = tests[tests["metric"] == RSA]
    assert len(rsa) == len(tests) / 3 and rsa["p_value"].notna().all()
    assert rsa["family_size"].isna().all() and rsa["p_adjusted"].isna().all()
    # m4 (Self-Supervised) has exactly 2 other Self-Supervised models: its group is tested
    mine = tests[(tests["anchor_model"] == "m4") & (tests["category"] == "objective")]
    assert "Self-Supervised" in set(mine["group_1"]) | set(mine["group_2"])


def test_app_f_default_family_is_every_metric(study):
    # pysim's default (no --anchor-test-metrics): the family holds the RSA tests too, 1.5 times
    # the notebook's; some adjusted p-value is then not the notebook's
    anchors = study["anchors"]
    r_df = notebook_anchor_coefficients(study["configs"], study["allowed"], study["sim_mats"],
                                        anchors)
    every = compute_anchor_tests(study["out"]["anchors.csv"]).set_index(TEST_KEY)
    differs = False
    for category, (keys, pvals, corrected) in notebook_app_f(r_df, anchors).items():
        n = len(pvals) * 3 // 2
        assert (every.xs(category, level="category")["family_size"] == n).all()
        for key, p, q in zip(keys, pvals, corrected, strict=True):
            assert every.loc[key, "p_adjusted"] == pytest.approx(min(1.0, p * n), rel=1e-10,
                                                                 abs=1e-14)
            differs |= abs(every.loc[key, "p_adjusted"] - q) > 1e-6
    assert differs


def test_app_f_unknown_family_metric_is_one_line(study, tmp_path):
    paths = sorted(study["files"].glob("s*.h5"))
    proc = run_cli("pysim-consistency", *[a for p in paths for a in ("--similarities", p)],
                   "--models", study["files"] / "models.json", "--out-dir", tmp_path / "o",
                   "--anchor-test-metrics", LINEAR, "--anchor-test-metrics", "cka_linear")
    assert_bad_input(proc, "anchor-test metrics", "cka_linear", RSA)
    assert not (tmp_path / "o").exists()
