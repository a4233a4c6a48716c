"""Model-set pairs (--model-sets): the study's sets and consistency values, re-derived here the
way the original notebooks compute them (aggregate_consistencies_for_specific_model_set_pairs:
+/- rules applied in order, pairs {a, b} with a in A, b in B, a != b, scipy pearsonr /
spearmanr over each dataset pair, pandas describe; aggregate_consistencies_for_model_set_pairs
with MAE excluded for the `_wo_mae` objective pairs), and the one-line refusals of bad rules."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import pearsonr, spearmanr

from conftest import assert_bad_input, run_cli
from pysim.analysis.model_sets import model_pairs, parse_model_sets
from pysim.analysis.run import compute_model_set_pairs
from pysim.errors import InputError
from pysim.io import Similarities, write_similarities
from pysim.stages.consistency import load_model_sets

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "assets" / "paper"
TABLE = PAPER / "models_config_wo_alignment.json"
MAE = ["mae-vit-base-p16", "mae-vit-huge-p14", "mae-vit-large-p16"]
METRICS = ("cka_kernel_linear_unbiased", "rsa_method_correlation_corr_method_spearman")

# The notebook's set pairs as its (+/-, column, value) rules, keyed by our set names.
NOTEBOOK_PAIRS = {
    ("Img-Txt", "Img-Txt+MAE"): (
        [("+", "objective", "Image-Text")],
        [("+", "objective", "Image-Text")] + [("+", "index", m) for m in MAE]),
    ("Img-Txt", "Img-Txt+Sup"): (
        [("+", "objective", "Image-Text")],
        [("+", "objective", "Image-Text"), ("+", "objective", "Supervised")]),
    ("SSL-wo-MAE", "SSL-wo-MAE"): (
        [("+", "objective", "Self-Supervised")] + [("-", "index", m) for m in MAE],
        [("+", "objective", "Self-Supervised")] + [("-", "index", m) for m in MAE]),
}
# `_wo_mae` objective pairs of the category notebook: (anchor objective, other objective)
WO_MAE_PAIRS = {("Img-Txt", "SSL-wo-MAE"): ("Image-Text", "Self-Supervised"),
                ("SSL-wo-MAE", "Sup"): ("Self-Supervised", "Supervised")}


def notebook_configs() -> pd.DataFrame:
    """The model table as the notebooks hold it: one row per id, sorted by objective, id."""
    configs = pd.DataFrame(json.loads(TABLE.read_text())).T
    configs = configs[configs["alignment"].isna()]
    return configs.rename_axis("index").reset_index().sort_values(
        ["objective", "index"]).set_index("index")


def notebook_set(configs: pd.DataFrame, rules) -> set[str]:
    members: set[str] = set()
    for op, column, value in rules:
        if column == "index":
            assert value in configs.index
            hit = {value}
        else:
            hit = set(configs.index[configs[column] == value])
        members = members | hit if op == "+" else members - hit
    assert members
    return members


def notebook_combinations(set_a, set_b) -> set[tuple[str, str]]:
    return {tuple(sorted((a, b))) for a in set_a for b in set_b if a != b}


def wo_mae_combinations(configs: pd.DataFrame, anchor: str, other: str) -> set[tuple[str, str]]:
    """Category notebook with MAE excluded: pairs whose objectives are {anchor, other}."""
    kept = configs.drop(index=MAE)
    i, j = np.triu_indices(len(kept), 1)
    labels = kept["objective"].to_numpy()
    ids = kept.index.to_numpy()
    return {tuple(sorted((ids[a], ids[b]))) for a, b in zip(i, j, strict=True)
            if sorted((labels[a], labels[b])) == sorted((anchor, other))}


def expected_combinations(configs: pd.DataFrame) -> dict[tuple[str, str], set]:
    out = {pair: notebook_combinations(notebook_set(configs, rules_a),
                                       notebook_set(configs, rules_b))
           for pair, (rules_a, rules_b) in NOTEBOOK_PAIRS.items()}
    out.update({pair: wo_mae_combinations(configs, *objectives)
                for pair, objectives in WO_MAE_PAIRS.items()})
    return out


@pytest.fixture(scope="module")
def paper_sets():
    return load_model_sets(PAPER / "model_sets.yaml", TABLE)


def test_paper_sets_have_the_notebooks_members_and_pairs(paper_sets):
    configs = notebook_configs()
    assert len(configs) == 64
    for (a, b), (rules_a, rules_b) in NOTEBOOK_PAIRS.items():
        assert set(paper_sets.sets[a]) == notebook_set(configs, rules_a), a
        assert set(paper_sets.sets[b]) == notebook_set(configs, rules_b), b
    assert [len(paper_sets.sets[s]) for s in ("Img-Txt", "Img-Txt+MAE", "Img-Txt+Sup",
                                               "SSL-wo-MAE", "Sup")] == [14, 17, 44, 17, 30]
    expected = expected_combinations(configs)
    assert list(paper_sets.pairs) == list(expected)
    for (a, b), combos in expected.items():
        ours = {tuple(sorted(p)) for p in model_pairs(paper_sets.sets[a], paper_sets.sets[b])}
        assert ours == combos, (a, b)
    assert [len(c) for c in expected.values()] == [133, 511, 136, 238, 510]


def planted_matrices(rng, ids: list[str], configs: pd.DataFrame, n_datasets: int = 4):
    """Per metric and dataset a symmetric matrix: a shared structure plus noise that is small
    among image-text models, larger for the rest, large for pairs with one MAE model and huge
    between MAE models, so that every reading of a set pair (all pairs within B, only the
    cross pairs, ...) gives different r."""
    m = len(ids)
    img_txt = configs.loc[ids, "objective"].to_numpy() == "Image-Text"
    mae = np.isin(ids, MAE)
    scale = np.full((m, m), 0.4)
    scale[np.outer(img_txt, img_txt)] = 0.02
    scale[np.logical_xor.outer(mae, mae)] = 1.0
    scale[np.outer(mae, mae)] = 10.0
    out = {}
    for metric in METRICS:
        base = rng.uniform(0.2, 0.9, size=(m, m))
        per_dataset = {}
        for d in range(n_datasets):
            mat = base + scale * rng.normal(size=(m, m))
            mat = (mat + mat.T) / 2
            mat /= max(1.0, np.abs(mat).max())  # a similarity lies in [-1, 1]
            if metric.startswith("rsa"):
                mat = np.round(mat, 1)  # ties: Spearman on average ranks
            np.fill_diagonal(mat, 1.0)
            per_dataset[f"wds/planted{d}"] = mat
        out[metric] = per_dataset
    return out


def notebook_r_coeffs(mats_by_ds: dict[str, np.ndarray], ids: list[str],
                      configs: pd.DataFrame, combos: set, corr: str) -> pd.Series:
    """r over every dataset pair, the notebook's way: matrices indexed in the notebook's model
    order, upper triangles flattened, pairs kept when their sorted ids are a combination."""
    order = list(configs.index)
    i, j = np.triu_indices(len(order), 1)
    keep = np.array([tuple(sorted((order[a], order[b]))) in combos
                     for a, b in zip(i, j, strict=True)])
    flat = {}
    for ds, mat in mats_by_ds.items():
        frame = pd.DataFrame(mat, index=ids, columns=ids).loc[order, order]
        values = frame.to_numpy().copy()
        np.fill_diagonal(values, 1)
        flat[ds] = values[i, j][keep]
    fn = pearsonr if corr == "pearson" else spearmanr
    return pd.Series({(d1, d2): float(fn(flat[d1], flat[d2])[0])
                      for d1, d2 in itertools.combinations(sorted(flat), 2)})


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory, paper_sets):
    tmp = tmp_path_factory.mktemp("model_sets")
    configs = notebook_configs()
    rng = np.random.default_rng(21)
    ids = list(rng.permutation(list(configs.index)))  # file row order: neither table's nor
    mats = planted_matrices(rng, ids, configs)
    paths = []
    for d, ds in enumerate(mats[METRICS[0]]):
        path = tmp / f"sim_{d}.h5"
        write_similarities(path, Similarities(ds, ids, {k: mats[k][ds] for k in METRICS},
                                              {k: {"n_samples": 100} for k in METRICS}))
        paths.append(path)
    out = compute_model_set_pairs(paths, TABLE, paper_sets)
    return {"out": out, "mats": mats, "ids": ids, "configs": configs}


def test_planted_consistency_equals_the_notebooks(planted_run):
    table = planted_run["out"]["model_set_pairs.csv"]
    configs, ids, mats = planted_run["configs"], planted_run["ids"], planted_run["mats"]
    expected = expected_combinations(configs)
    assert len(table) == len(METRICS) * len(expected) * 6 and (table["transform"] == "none").all()
    for metric, (a, b) in itertools.product(METRICS, expected):
        rows = table[(table["metric"] == metric) & (table["set_1"] == a) & (table["set_2"] == b)]
        assert (rows["n_pairs"] == len(expected[(a, b)])).all()
        got = rows.set_index(["dataset_1", "dataset_2"])
        for corr in ("pearson", "spearman"):
            want = notebook_r_coeffs(mats[metric], ids, configs, expected[(a, b)], corr)
            np.testing.assert_allclose(got.loc[want.index, f"{corr}_r"], want.to_numpy(),
                                       rtol=0, atol=1e-10, err_msg=f"{metric} {a} {b} {corr}")


def test_planted_data_tells_the_readings_of_a_set_pair_apart(planted_run):
    """Img-Txt vs Img-Txt+MAE: within Img-Txt plus Img-Txt x MAE; neither all pairs within
    Img-Txt+MAE nor the Img-Txt x MAE cross pairs alone give its r (so a wrong reading fails)."""
    configs, ids, mats = planted_run["configs"], planted_run["ids"], planted_run["mats"]
    table = planted_run["out"]["model_set_pairs.csv"]
    img_txt = notebook_set(configs, [("+", "objective", "Image-Text")])
    union = img_txt | set(MAE)
    got = table[(table["metric"] == METRICS[0]) & (table["set_2"] == "Img-Txt+MAE")]
    for wrong in (notebook_combinations(union, union), notebook_combinations(img_txt, MAE)):
        other = notebook_r_coeffs(mats[METRICS[0]], ids, configs, wrong, "pearson")
        assert np.abs(got["pearson_r"].to_numpy() - other.to_numpy()).min() > 0.05


def test_summary_is_the_notebooks_describe(planted_run):
    summary = planted_run["out"]["model_set_pairs_summary.csv"]
    configs, ids, mats = planted_run["configs"], planted_run["ids"], planted_run["mats"]
    expected = expected_combinations(configs)
    assert len(summary) == len(METRICS) * len(expected) * 2
    for metric, pair, corr in itertools.product(METRICS, expected, ("pearson", "spearman")):
        row = summary[(summary["metric"] == metric) & (summary["set_1"] == pair[0])
                      & (summary["set_2"] == pair[1]) & (summary["correlation"] == corr)]
        desc = notebook_r_coeffs(mats[metric], ids, configs, expected[pair], corr).describe()
        assert len(row) == 1 and int(row["n_dataset_pairs"].iloc[0]) == desc["count"] == 6
        for ours, theirs in (("mean", "mean"), ("std", "std"), ("min", "min"), ("q25", "25%"),
                             ("median", "50%"), ("q75", "75%"), ("max", "max")):
            assert row[ours].iloc[0] == pytest.approx(desc[theirs], abs=1e-10), (pair, ours)


# --- bad rules ---------------------------------------------------------------------------

CATS = {"a": {"objective": "Supervised"}, "b": {"objective": "Supervised"},
        "c": {"objective": "Image-Text"}, "d": {"objective": "Image-Text"}}
GOOD_SETS = {"sup": [{"add": {"objective": "Supervised"}}]}
BAD_SPECS = {
    "unknown category": ({"sets": {"x": [{"add": {"training": "Supervised"}}]},
                          "pairs": [["x", "x"]]}, "unknown category 'training'"),
    "unknown category value": ({"sets": {"x": [{"add": {"objective": "Img-Txt"}}]},
                                "pairs": [["x", "x"]]}, "no model has objective 'Img-Txt'"),
    "unknown model id": ({"sets": {"x": [{"add": {"model": ["a", "zz"]}}]},
                          "pairs": [["x", "x"]]}, "unknown model id 'zz'"),
    "empty set": ({"sets": {**GOOD_SETS, "x": [{"add": {"model": "a"}},
                                                {"remove": {"objective": "Supervised"}}]},
                   "pairs": [["sup", "x"]]}, "set 'x': is empty"),
    "unknown rule kind": ({"sets": {"x": [{"plus": {"model": "a"}}]}, "pairs": [["x", "x"]]},
                          "rule 1: must be {add:"),
    "unknown set in a pair": ({"sets": GOOD_SETS, "pairs": [["sup", "ssl"]]},
                              "unknown set 'ssl'"),
    "pair listed twice": ({"sets": {**GOOD_SETS, "all": [{"add": {"model": ["a", "b", "c"]}}]},
                           "pairs": [["sup", "all"], ["all", "sup"]]}, "listed twice"),
    "too few model pairs": ({"sets": GOOD_SETS, "pairs": [["sup", "sup"]]},
                            "fewer than 2 model pairs"),
    "no pairs": ({"sets": GOOD_SETS}, "exactly the keys 'sets' and 'pairs'"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_rules_are_refused_naming_the_problem(case):
    spec, fragment = BAD_SPECS[case]
    with pytest.raises(InputError, match=None) as err:
        parse_model_sets(spec, CATS, "sets.yaml")
    assert fragment in str(err.value) and str(err.value).startswith("sets.yaml")


def test_rules_apply_in_order():
    spec = {"sets": {"x": [{"add": {"objective": "Supervised"}}, {"remove": {"model": "a"}},
                           {"add": {"model": ["a", "c"]}}, {"remove": {"model": "b"}}],
                     "y": [{"remove": {"model": "d"}}, {"add": {"objective": "Image-Text"}}]},
            "pairs": [["x", "y"]]}
    sets = parse_model_sets(spec, CATS)
    assert sets.sets == {"x": ("a", "c"), "y": ("c", "d")}
    assert model_pairs(*sets.sets.values()) == {frozenset(p) for p in
                                                 [("a", "c"), ("a", "d"), ("c", "d")]}


def small_study(tmp_path):
    """A 4-model table and 3 datasets' similarity files."""
    table = {m: {"model_name": m, "source": "timm", "module_name": "head", **c}
             for m, c in CATS.items()}
    models = tmp_path / "models.json"
    models.write_text(json.dumps(table))
    rng = np.random.default_rng(0)
    paths = []
    for d in range(3):
        mat = rng.uniform(size=(4, 4))
        mat = (mat + mat.T) / 2
        np.fill_diagonal(mat, 1.0)
        path = tmp_path / f"sim_{d}.h5"
        write_similarities(path, Similarities(f"wds/s{d}", list(CATS), {METRICS[0]: mat},
                                              {METRICS[0]: {"n_samples": 20}}))
        paths.append(path)
    return models, paths


def consistency_args(models, paths, out, sets_file):
    args = [a for p in paths for a in ("--similarities", p)]
    return [*args, "--models", models, "--out-dir", out, "--permutations", "0",
            "--bootstrap", "0", "--model-sets", sets_file]


def test_cli_writes_the_tables_and_refuses_bad_rules_in_one_line(tmp_path):
    models, paths = small_study(tmp_path)
    good = tmp_path / "sets.json"
    good.write_text(json.dumps({"sets": {"sup": GOOD_SETS["sup"],
                                         "all": [{"add": {"model": list(CATS)}}]},
                                "pairs": [["sup", "all"]]}))
    run_cli("pysim-consistency", *consistency_args(models, paths, tmp_path / "out", good),
            check=True)
    table = pd.read_csv(tmp_path / "out" / "model_set_pairs.csv")
    assert list(table[["set_1", "set_2", "n_models_1", "n_models_2", "n_pairs"]].iloc[0]) == \
        ["sup", "all", 2, 4, 5] and len(table) == 3
    summary = pd.read_csv(tmp_path / "out" / "model_set_pairs_summary.csv")
    assert list(summary["correlation"]) == ["pearson", "spearman"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("sets:\n  x:\n    - add: {objective: Self-Supervised}\npairs: [[x, x]]\n")
    proc = run_cli("pysim-consistency", *consistency_args(models, paths, tmp_path / "o2", bad))
    assert_bad_input(proc, str(bad), "no model has objective 'Self-Supervised'")
    assert not (tmp_path / "o2").exists()  # refused before any computation


def test_paper_params_use_the_shipped_sets():
    params = yaml.safe_load((PAPER / "params.yaml").read_text())
    assert params["model_sets"] == "${projectDir}/assets/paper/model_sets.yaml"
    assert re.search(r"^\s+model_sets\s+= null", (ROOT / "nextflow.config").read_text(), re.M)


def test_a_set_defined_twice_or_broken_yaml_is_refused(tmp_path):
    models, _ = small_study(tmp_path)
    path = tmp_path / "twice.yaml"
    path.write_text("sets:\n  x: [{add: {model: [a, b, c]}}]\n  x: [{add: {model: [a, b]}}]\n"
                    "pairs: [[x, x]]\n")
    with pytest.raises(InputError, match="key 'x' given twice"):
        load_model_sets(path, models)
    path.write_text("sets: [unclosed\n")
    with pytest.raises(InputError, match="twice.yaml: not valid YAML/JSON"):
        load_model_sets(path, models)
