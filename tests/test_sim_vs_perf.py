"""Similarity vs. probe-accuracy gap: planted relation, equality with a plain loop, CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from conftest import assert_bad_input, run_cli
from pysim.analysis.sim_vs_perf import COLUMNS, load_probes, sim_vs_perf_table
from pysim.io import Similarities, write_similarities

METRICS = ("cka_kernel_linear_unbiased", "mutual_knn_k_10")


def write_probe(path, model_id, dataset, acc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model_id": model_id, "dataset": dataset, "test_acc1": acc,
                                "test_acc5": 1.0, "val_acc1": acc, "lr": 0.1,
                                "weight_decay": 0.0, "epochs": 5, "seeds": [0],
                                "n_train": 100, "n_test": 50}))
    return path


def planted_files(tmp_path, rng, datasets=("wds/a", "wds/b"), m=7):
    """Similarity falls with the accuracy gap (cka) or is unrelated to it (mutual_knn)."""
    ids = [f"m{i}" for i in range(m)]
    sims, probes, accs = [], [], {}
    for k, dataset in enumerate(datasets):
        acc = rng.uniform(0.2, 0.9, size=m)
        accs[dataset] = dict(zip(ids, acc, strict=True))
        gap = np.abs(acc[:, None] - acc[None, :])
        noise = rng.normal(size=(m, m)) * 0.01
        cka = 1 - gap + (noise + noise.T)
        rand = rng.uniform(size=(m, m))
        rand = (rand + rand.T) / 2
        for mat in (cka, rand):
            np.fill_diagonal(mat, 1.0)
        path = tmp_path / f"sim_{k}.h5"
        write_similarities(path, Similarities(dataset, ids, dict(zip(METRICS, (cka, rand),
                                                                     strict=True)), {}))
        sims.append(path)
        key = dataset.replace("/", "_")
        probes += [write_probe(tmp_path / "probes" / key / f"{mid}.json", mid, dataset, a)
                   for mid, a in zip(ids, acc, strict=True)]
    return sims, probes, ids, accs


def test_planted_relation_and_plain_loop(tmp_path):
    rng = np.random.default_rng(0)
    sims, probes, ids, accs = planted_files(tmp_path, rng)
    from pysim.io import read_similarities

    files = [read_similarities(p) for p in sims]
    table = sim_vs_perf_table(files, load_probes(probes))
    assert list(table.columns) == COLUMNS and len(table) == 4
    for sim in files:
        for metric in METRICS:
            xs, gaps = [], []
            for i, j in itertools.combinations(range(len(ids)), 2):
                xs.append(sim.matrices[metric][i, j])
                gaps.append(abs(accs[sim.dataset][ids[i]] - accs[sim.dataset][ids[j]]))
            row = table[(table["metric"] == metric) & (table["dataset"] == sim.dataset)].iloc[0]
            assert row["n_pairs"] == 21
            assert row["pearson_r"] == pytest.approx(pearsonr(xs, gaps)[0], abs=1e-12)
            assert row["spearman_r"] == pytest.approx(spearmanr(xs, gaps)[0], abs=1e-12)
    cka = table[table["metric"] == METRICS[0]]
    assert (cka["pearson_r"] < -0.95).all()
    assert (table[table["metric"] == METRICS[1]]["pearson_r"].abs() < 0.7).all()


def test_cli_warns_on_missing_probes_and_rejects_bad_ones(tmp_path):
    rng = np.random.default_rng(1)
    sims, probes, ids, _ = planted_files(tmp_path, rng)
    kept = [p for p in probes if not (p.parent.name == "wds_b" and p.stem == "m0")]
    out = tmp_path / "performance" / "similarity_vs_gap.csv"
    args = [a for p in sims for a in ("--similarities", p)]
    proc = run_cli("pysim-sim-vs-perf", *args, *[a for p in kept for a in ("--probes", p)],
                   "--out", out, check=True)
    assert "models without a probe result left out: m0" in proc.stderr
    table = pd.read_csv(out)
    assert dict(zip(table["dataset"], table["n_pairs"], strict=True)) == {"wds/a": 21,
                                                                          "wds/b": 15}
    bad = write_probe(tmp_path / "bad.json", "m1", "wds/a", 1.5)
    proc = run_cli("pysim-sim-vs-perf", *args, "--probes", bad, "--out", tmp_path / "x.csv")
    assert_bad_input(proc, "bad.json", "test_acc1")
    twice = run_cli("pysim-sim-vs-perf", *args, "--probes", probes[0], "--probes", probes[0],
                    "--out", tmp_path / "y.csv")
    assert_bad_input(twice, "second probe", "m0")
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()
