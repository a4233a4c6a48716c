"""--performance_datasets: probed datasets matched to the similarity datasets by display name.

The original study (notebooks 4_7 / app_G) replaces the dataset id of both its similarity table
(`webdatasets_w_insub10k.txt`) and its probe table (`webdatasets_w_in1k.txt`) by the `name`
of `dataset_info.json` and joins the two on (model, name): `imagenet-subset-10k` and
`wds/imagenet1k` are both "ImageNet-1k", so the subset's similarities meet the accuracies of
the probe on full ImageNet. The expected matches are re-derived here from the JSON table.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from conftest import SEED, assert_bad_input, run_cli
from pysim.config import load_dataset_list
from pysim.errors import InputError
from pysim.io import Similarities, write_similarities
from pysim.validate import dataset_table, match_performance

INFO = json.loads((SEED / "dataset_info.json").read_text())
SIM_LIST = load_dataset_list(SEED / "webdatasets_w_insub10k.txt")
PERF_LIST = load_dataset_list(SEED / "webdatasets_w_in1k.txt")
MODEL = {"model_name": "resnet18", "source": "torchvision", "module_name": "avgpool",
         "model_parameters": {}, "objective": "Supervised"}


def notebook_pairs(sim_ids, perf_ids, info):
    """(similarity id, performance id) pairs joined on the display name, as the notebooks do
    (an id absent from the table keeps itself as its name)."""
    def name(i):
        return info.get(i, {}).get("name", i)

    return {(s, p) for s in sim_ids for p in perf_ids if name(s) == name(p)}


def test_the_studys_lists_pair_the_subset_with_full_imagenet():
    matches = match_performance(SIM_LIST, PERF_LIST, INFO)
    assert set(matches.items()) == notebook_pairs(SIM_LIST, PERF_LIST, INFO)
    assert matches["imagenet-subset-10k"] == "wds/imagenet1k"
    assert len(matches) == 23 and all(matches[i] == i for i in SIM_LIST if i.startswith("wds/"))


def test_unmatched_similarity_dataset_is_left_out_and_names_beat_ids():
    info = {**INFO, "wds/renamed": {"name": "Stanford Cars", "domain": "x"}}
    sims = ["imagenet-subset-10k", "wds/cars", "wds/vtab/pets"]
    perf = ["wds/imagenet1k", "wds/renamed"]  # Cars under another id; no Pets
    matches = match_performance(sims, perf, info)
    assert set(matches.items()) == notebook_pairs(sims, perf, info)
    assert matches == {"imagenet-subset-10k": "wds/imagenet1k", "wds/cars": "wds/renamed"}


def test_refused_matches():
    # without the dataset table ImageNet's name is its id: it matches no similarity dataset
    with pytest.raises(InputError, match=r"'wds/imagenet1k' .*matches no dataset"):
        match_performance(["imagenet-subset-10k"], ["wds/imagenet1k"], None)
    # two performance datasets of one name: whose accuracy would the subset take?
    with pytest.raises(InputError, match="same display name 'ImageNet-1k'"):
        match_performance(["imagenet-subset-10k"], ["wds/imagenet1k", "imagenet-subset-10k"],
                          INFO)


def test_rows_of_the_studys_lists():
    matches = match_performance(SIM_LIST, PERF_LIST, INFO)
    rows = dataset_table(SIM_LIST, [5], performance=PERF_LIST, matches=matches)
    by_role = {(r["id"], r["role"]): r for r in rows}
    sub = by_role["imagenet-subset-10k", "analysed"]
    assert (sub["probe"], sub["performance"]) == (False, "wds/imagenet1k")
    full = by_role["wds/imagenet1k", "performance"]
    assert (full["probe"], full["derived_from"], full["folder"]) == (True, "", "wds_imagenet1k")
    assert not any(r["role"] == "extracted" for r in rows)  # extracted as a probed dataset
    assert [r["id"] for r in rows if r["probe"]] == [*SIM_LIST[:-1], "wds/imagenet1k"]
    assert {r["id"] for r in rows if r["role"] == "subset_size"} == {
        "imagenet-subset-5k", "imagenet-subset-10k"}


def cli_inputs(tmp_path, sims, perf):
    models, slist, plist = (tmp_path / n for n in ("models.json", "sims.txt", "perf.txt"))
    models.write_text(json.dumps({"a": MODEL}))
    slist.write_text("".join(f"{i}\n" for i in sims))
    plist.write_text("".join(f"{i}\n" for i in perf))
    return ["--models", models, "--datasets", slist, "--performance-datasets", plist,
            "--metrics", SEED / "similarity_metric_config_local_global.json"]


def test_cli_writes_the_match_and_warns_or_refuses(tmp_path):
    args = cli_inputs(tmp_path, ["imagenet-subset-10k", "wds/vtab/pets"], ["wds/imagenet1k"])
    out = tmp_path / "datasets.json"
    proc = run_cli("pysim-validate", *args, "--dataset-info", SEED / "dataset_info.json",
                   "--write-datasets", out, check=True)
    assert "imagenet-subset-10k <- wds/imagenet1k" in proc.stdout
    assert "WARNING" in proc.stdout and "wds/vtab/pets" in proc.stdout.split("WARNING")[1]
    rows = json.loads(out.read_text())
    assert [(r["id"], r["role"], r["probe"], r["performance"]) for r in rows] == [
        ("imagenet-subset-10k", "analysed", False, "wds/imagenet1k"),
        ("wds/vtab/pets", "analysed", False, ""),
        ("wds/imagenet1k", "performance", True, "")]
    bad = run_cli("pysim-validate", *args, "--write-datasets", tmp_path / "x.json")
    assert_bad_input(bad, "--performance_datasets: 'wds/imagenet1k'", "--dataset_info")
    assert not (tmp_path / "x.json").exists()


def test_sim_vs_perf_takes_the_matched_probes(tmp_path):
    """The subset's rows use full ImageNet's accuracies, planted unrelated to its own."""
    rng = np.random.default_rng(3)
    ids = [f"m{i}" for i in range(6)]
    full, own = rng.uniform(0.3, 0.9, 6), rng.uniform(0.3, 0.9, 6)
    noise = rng.normal(size=(6, 6)) * 0.01
    sim = 1 - np.abs(full[:, None] - full[None, :]) + noise + noise.T
    np.fill_diagonal(sim, 1.0)
    sims = tmp_path / "sub.h5"
    write_similarities(sims, Similarities("imagenet-subset-10k", ids,
                                          {"cka_kernel_linear_unbiased": sim}, {}))
    probes = []
    for dataset, accs in (("wds/imagenet1k", full), ("imagenet-subset-10k", own)):
        for m, acc in zip(ids, accs, strict=True):
            path = tmp_path / "probes" / dataset.replace("/", "_") / f"{m}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"model_id": m, "dataset": dataset, "test_acc1": acc}))
            probes += ["--probes", path]
    table = tmp_path / "datasets.json"
    table.write_text(json.dumps([
        {"id": "imagenet-subset-10k", "key": "imagenet-subset-10k", "folder": "",
         "derived_from": "wds/imagenet1k", "role": "analysed", "probe": False,
         "performance": "wds/imagenet1k"},
        {"id": "wds/imagenet1k", "key": "wds_imagenet1k", "folder": "wds_imagenet1k",
         "derived_from": "", "role": "performance", "probe": True, "performance": ""}]))
    out = tmp_path / "gap.csv"
    run_cli("pysim-sim-vs-perf", "--similarities", sims, *probes, "--datasets-table", table,
            "--out", out, check=True)
    row = pd.read_csv(out).iloc[0]
    xs, gaps = [], []
    for i, j in itertools.combinations(range(6), 2):
        xs.append(sim[i, j])
        gaps.append(abs(full[i] - full[j]))
    assert (row["dataset"], row["performance_dataset"], row["n_pairs"]) == (
        "imagenet-subset-10k", "wds/imagenet1k", 15)
    assert row["pearson_r"] == pytest.approx(pearsonr(xs, gaps)[0], abs=1e-12)
    assert row["spearman_r"] == pytest.approx(spearmanr(xs, gaps)[0], abs=1e-12)
    # without the table the subset uses its own (planted unrelated) probes: a different r
    run_cli("pysim-sim-vs-perf", "--similarities", sims, *probes, "--out", out, check=True)
    own_row = pd.read_csv(out).iloc[0]
    assert own_row["performance_dataset"] == "imagenet-subset-10k"
    assert abs(own_row["pearson_r"] - row["pearson_r"]) > 0.3


def test_report_takes_the_gap_accuracies_from_the_tables_match(tmp_path):
    from pysim.report.results import collect

    root = tmp_path / "results"
    ids = ["m0", "m1", "m2"]
    write_similarities(root / "similarities" / "imagenet-subset-10k.h5",
                       Similarities("imagenet-subset-10k", ids,
                                    {"cka_kernel_linear_unbiased": np.eye(3)}, {}))
    for dataset, base in (("wds/imagenet1k", 0.5), ("imagenet-subset-10k", 0.1)):
        for k, m in enumerate(ids):
            path = root / "probes" / dataset.replace("/", "_") / f"{m}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"model_id": m, "dataset": dataset,
                                        "test_acc1": base + k / 10}))
    gap = root / "performance" / "similarity_vs_gap.csv"
    gap.parent.mkdir()
    pd.DataFrame([{"metric": "cka_kernel_linear_unbiased", "dataset": "imagenet-subset-10k",
                   "performance_dataset": "wds/imagenet1k", "n_pairs": 3,
                   "pearson_r": 0.0, "spearman_r": 0.0}]).to_csv(gap, index=False)
    res = collect(root)
    assert res.performance_source("imagenet-subset-10k") == "wds/imagenet1k"
    assert res.accuracies("imagenet-subset-10k") == pytest.approx(
        {"m0": 0.5, "m1": 0.6, "m2": 0.7})
    gap.write_text(gap.read_text().replace("imagenet-subset-10k", "wds/other"))
    assert collect(root).accuracies("imagenet-subset-10k") == {}  # left out by the table
    gap.unlink()  # no table: a dataset's own probes (earlier results folders)
    assert collect(root).accuracies("imagenet-subset-10k") == pytest.approx(
        {"m0": 0.1, "m1": 0.2, "m2": 0.3})
