"""The report's interactive parts: Plotly shipped once in the folder, no remote scripts, the
data behind every heatmap cell, model orders, layer-wise blocks, software versions, the run's
--outdir in the summary, and the folder replaced whole."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import make_results

from conftest import SEED, assert_bad_input, run_cli
from pysim.analysis.consistency import consistency_matrix
from pysim.io import Similarities, read_similarities, write_similarities

LAYERS = {"model_0": ["stem", "blocks.0", "blocks.1", "head"], "model_1": ["conv1", "fc"]}


class Tags(HTMLParser):
    """Every tag's attributes, the inline data element's text and the section ids."""

    def __init__(self):
        super().__init__()
        self.tags, self.ids, self.data, self._in_data = [], [], None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        self.ids += [attrs["id"]] if "id" in attrs else []
        self._in_data = attrs.get("id") == "pysim-data"

    def handle_endtag(self, tag):
        self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data = (self.data or "") + data


def parse(index: Path) -> Tags:
    tags = Tags()
    tags.feed(index.read_text(encoding="utf-8"))
    tags.close()
    return tags


def report(root: Path, models: Path, *extra) -> Path:
    """Run bin/pysim-report on a results folder; returns index.html."""
    run_cli("pysim-report", "--results-dir", root, "--out-dir", root / "report", "--models",
            models, "--dataset-info", SEED / "dataset_info.json", *extra, check=True)
    return root / "report" / "index.html"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("run") / "results"
    models = make_results(root)
    return root, models, report(root, models)


def test_plotly_is_shipped_once_and_nothing_is_remote(built):
    root, _, index = built
    folder = index.parent
    scripts = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.js"))
    assert scripts == ["assets/plotly.min.js", "assets/report.js"]
    bundle = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    assert (folder / "assets" / "plotly.min.js").read_bytes() == bundle.read_bytes()
    text = index.read_text(encoding="utf-8")
    assert len(text) < bundle.stat().st_size / 2  # referenced, not inlined as well
    tags = parse(index)
    sources = [a["src"] for t, a in tags.tags if t == "script" and "src" in a]
    assert sources == ["assets/plotly.min.js", "assets/report.js"]
    for tag, attrs in tags.tags:
        for key in ("src", "href"):
            ref = attrs.get(key) or ""
            assert not ref.lower().startswith(("http:", "https:", "//")), (tag, ref)
            if ref and not ref.startswith("#"):
                assert (folder / ref).is_file(), ref
    assert "layers" not in tags.ids and "software" not in tags.ids


def page_data(index: Path) -> dict:
    return json.loads(parse(index).data)


def test_every_heatmap_cell_has_both_ids_categories_and_value(built):
    root, models, index = built
    data = page_data(index)
    sim = data["similarity"]
    table = json.loads(models.read_text())
    assert sim["models"] == list(table)
    assert sim["columns"] == ["objective", "architecture_class", "dataset_class", "size_class"]
    for m, entry in table.items():
        assert sim["labels"][m] == {c: entry[c] for c in sim["columns"]}
    files = [read_similarities(p) for p in sorted((root / "similarities").glob("*.h5"))]
    count = 0
    for sims in files:
        for metric, matrix in sims.matrices.items():
            cell = sim["matrices"][metric][sims.dataset]
            assert cell["ids"] == sims.model_ids
            z = np.array(cell["z"], dtype=float)
            assert z.shape == (len(sims.model_ids),) * 2
            np.testing.assert_allclose(z, matrix, atol=5e-5)
            count += 1
    assert count == 6
    assert [d["key"] for d in sim["datasets"]] == sorted(s.dataset for s in files)
    assert sim["datasets"][0]["name"] == "Stanford Cars"


def test_orders_apply_to_all_datasets(built):
    _, models, index = built
    sim = page_data(index)["similarity"]
    table = json.loads(models.read_text())
    assert sim["orders"]["table"] == list(table)
    objective = sim["orders"]["objective"]
    assert sorted(objective) == sorted(table)
    labels = [table[m]["objective"] for m in objective]
    assert labels == sorted(labels)
    for metric, order in sim["clusterOrders"].items():
        assert sorted(order) == sorted(table), metric
    assert set(sim["clusterOrders"]) == set(sim["matrices"])


def test_consistency_data_matches_the_table(built):
    root, _, index = built
    data = page_data(index)["consistency"]
    table = pd.read_csv(root / "consistency" / "consistency.csv")
    tags = parse(index)
    for metric in sorted(table["metric"].unique()):
        entry = data[metric]
        wide = consistency_matrix(table, metric, entry["datasets"])
        np.testing.assert_allclose(np.array(entry["z"], dtype=float),
                                   wide.set_index("dataset").to_numpy(), atol=5e-5)
        linked = [a for t, a in tags.tags if a.get("data-metric") == metric]
        assert {a["class"] for a in linked} == {"plot consistency-plot", "plots pair-plots"}


def test_summary_shows_the_run_outdir_and_software_versions(built, tmp_path):
    root, models, index = built
    text = index.read_text(encoding="utf-8")
    assert f"<td>{root.resolve()}</td>" in text
    run = tmp_path / "results"
    shutil.copytree(root, run, ignore=shutil.ignore_patterns("report"))
    (run / "pipeline_info" / "software_versions.yml").write_text(
        "SIMILARITY:\n  pysim: 0.1.0\n  torch: 2.15.0\nREPORT:\n  plotly: 7.1.0\n")
    page = report(run, models, "--run-outdir", "/data/runs/paper-1")
    text = page.read_text(encoding="utf-8")
    assert "<td>/data/runs/paper-1</td>" in text and str(run.resolve()) not in text
    assert "software" in parse(page).ids
    for row in (("SIMILARITY", "torch", "2.15.0"), ("REPORT", "plotly", "7.1.0")):
        assert "<td>" + "</td>\n      <td>".join(row) + "</td>" in text, row


def test_bad_software_versions_fail_and_keep_the_old_report(built, tmp_path):
    root, models, _ = built
    run = tmp_path / "results"
    shutil.copytree(root, run)
    before = sorted(p.relative_to(run) for p in (run / "report").rglob("*"))
    (run / "pipeline_info" / "software_versions.yml").write_text("- just\n- a list\n")
    proc = run_cli("pysim-report", "--results-dir", run, "--out-dir", run / "report",
                   "--models", models)
    assert_bad_input(proc, "software_versions.yml", "expected a mapping")
    assert sorted(p.relative_to(run) for p in (run / "report").rglob("*")) == before
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def write_layers(root: Path) -> None:
    """Replace one dataset's similarity file with one that adds layer rows for two models."""
    path = root / "similarities" / "wds_cars.h5"
    sims = read_similarities(path)
    ids = list(sims.model_ids) + [f"{m}@{mod}" for m, mods in LAYERS.items() for mod in mods]
    rng = np.random.default_rng(1)
    mats = {}
    for metric, matrix in sims.matrices.items():
        x = rng.uniform(size=(len(ids), len(ids)))
        full = (x + x.T) / 2
        np.fill_diagonal(full, 1.0)  # a similarity matrix (DESIGN §5)
        full[: len(sims.model_ids), : len(sims.model_ids)] = matrix
        mats[metric] = full
    # model_1's extracted module recorded by the similarity stage; model_0's left to the table
    write_similarities(path, Similarities(sims.dataset, ids, mats, sims.metric_attrs,
                                          {"model_1": "pool"}))


def test_layer_wise_heatmaps_when_layer_ids_exist(built, tmp_path):
    root, models, _ = built
    run = tmp_path / "results"
    shutil.copytree(root, run, ignore=shutil.ignore_patterns("report"))
    write_layers(run)
    index = report(run, models)
    assert "layers" in parse(index).ids
    data = page_data(index)
    assert all("@" not in m for m in data["similarity"]["models"])
    assert data["similarity"]["matrices"]["mutual_knn_k_10"]["wds/cars"]["ids"] == [
        f"model_{i}" for i in range(6)]
    layers = data["layers"]
    assert list(layers) == ["wds/cars"]
    entry = layers["wds/cars"]
    # each model's primary row first, labelled with its recorded module, else the table's
    assert entry["modules"] == {"model_0": ["head", *LAYERS["model_0"]],
                                "model_1": ["pool", *LAYERS["model_1"]]}
    assert entry["rows"] == {"model_0": [0, 1, 2, 3, 4], "model_1": [5, 6, 7]}
    # the matrices: a script of their own, loaded by the page when the dataset is shown
    assert entry["script"] == "assets/layers_0.js"
    prefix = 'window.pysimLayers["wds/cars"] = '
    line = (index.parent / entry["script"]).read_text().splitlines()[1]
    assert line.startswith(prefix) and line.endswith(";")
    matrices = json.loads(line[len(prefix):-1])
    sims = read_similarities(run / "similarities" / "wds_cars.h5")
    assert entry["metrics"] == sorted(sims.matrices) == sorted(matrices)
    rows = [sims.model_ids.index(f"model_{i}") for i in (0, 1)]
    rows = [rows[0], *range(6, 10), rows[1], 10, 11]
    assert [sims.model_ids[k].split("@")[0] for k in rows] == ["model_0"] * 5 + ["model_1"] * 3
    for metric, matrix in sims.matrices.items():
        np.testing.assert_allclose(np.array(matrices[metric], dtype=float),
                                   matrix[np.ix_(rows, rows)], atol=5e-5)
