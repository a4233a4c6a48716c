"""The HTML report: parses, every figure it references exists, copes with missing parts, and
renders in a headless browser (when Chromium is installed)."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SEED, assert_bad_input, run_cli
from pysim.analysis.run import compute_consistency, compute_model_set_pairs, write_outputs
from pysim.analysis.sim_vs_perf import load_probes, sim_vs_perf_table
from pysim.io import Similarities, read_similarities, write_csv, write_similarities
from pysim.report.build import build_report
from pysim.report.paper import app_e, sec4_2
from pysim.report.paper.common import Context
from pysim.stages.consistency import load_model_sets
from pysim.subset_size import write_subset_size

CHROMIUM = Path("/usr/bin/chromium")
METRICS = ("cka_kernel_linear_unbiased", "mutual_knn_k_10")
DATASETS = ("wds/cars", "wds/fer2013", "wds/vtab/cifar10")  # in the seed dataset info
OBJECTIVES = ("Supervised", "Self-Supervised", "Image-Text")
MODEL_SETS = """
sets:
  Sup: [{add: {objective: Supervised}}]
  Sup+SSL: [{add: {objective: [Supervised, Self-Supervised]}}]
  Img-Txt: [{add: {objective: Image-Text}}]
pairs: [[Sup, Sup+SSL], [Sup, Img-Txt]]
"""


class PageParser(HTMLParser):
    """Collects image sources, link targets, section ids and the visible text."""

    def __init__(self):
        super().__init__()
        self.images, self.links, self.ids, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "a":
            self.links.append(attrs.get("href", ""))
        if "id" in attrs:
            self.ids.append(attrs["id"])

    def handle_data(self, data):
        self.text.append(data)


def parse(index: Path) -> PageParser:
    parser = PageParser()
    parser.feed(index.read_text(encoding="utf-8"))
    parser.close()
    return parser


def make_results(root: Path) -> Path:
    """A pipeline output directory: 6 models x 3 datasets x 2 metrics, probes, tables."""
    rng = np.random.default_rng(0)
    ids = [f"model_{i}" for i in range(6)]
    table = {m: {"model_name": m, "source": "timm", "module_name": "head",
                 "objective": OBJECTIVES[k % 3], "architecture_class": "CNN" if k < 3 else "ViT",
                 "dataset_class": "ImageNet1k", "size_class": "small"}
             for k, m in enumerate(ids)}
    models = root / "models.json"
    root.mkdir(parents=True)
    models.write_text(json.dumps(table))
    for dataset in DATASETS:
        key = dataset.replace("/", "_")
        mats = {}
        for metric in METRICS:
            x = rng.uniform(size=(6, 6))
            mats[metric] = (x + x.T) / 2
            np.fill_diagonal(mats[metric], 1.0)
        write_similarities(root / "similarities" / f"{key}.h5",
                           Similarities(dataset, ids, mats, {k: {"n_samples": 64} for k in mats}))
        for m in ids:
            path = root / "probes" / key / f"{m}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"model_id": m, "dataset": dataset,
                                        "test_acc1": float(rng.uniform(0.3, 0.9))}))
    sims = sorted((root / "similarities").glob("*.h5"))
    write_outputs(compute_consistency(sims, models, permutations=19, bootstrap=19,
                                      num_clusters=2), root / "consistency")
    (root / "model_sets.yaml").write_text(MODEL_SETS)
    write_outputs(compute_model_set_pairs(sims, models,
                                          load_model_sets(root / "model_sets.yaml", models)),
                  root / "consistency")
    sizes = []  # Appendix C: three imagenet-subset-<N>k files
    for n in (1, 10, 20):
        mats = {}
        for metric in METRICS:
            x = rng.uniform(size=(6, 6))
            mats[metric] = (x + x.T) / 2
        sizes.append(root / "subset_size" / f"imagenet-subset-{n}k.h5")
        write_similarities(sizes[-1], Similarities(f"imagenet-subset-{n}k", ids, mats, {}))
    write_subset_size(sizes, root / "consistency" / "subset_size.csv")
    probes = sorted((root / "probes").glob("*/*.json"))
    write_csv(root / "performance" / "similarity_vs_gap.csv",
              sim_vs_perf_table([read_similarities(p) for p in sims], load_probes(probes)))
    (root / "pipeline_info").mkdir()
    (root / "pipeline_info" / "execution_report.html").write_text("<html></html>")
    return models


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("run") / "results"
    models = make_results(root)
    run_cli("pysim-report", "--results-dir", root, "--out-dir", root / "report",
            "--models", models, "--dataset-info", SEED / "dataset_info.json", check=True)
    return root, models


def check_references(index: Path, page: PageParser) -> None:
    """Every image and relative link of the page exists; images are non-empty PNGs."""
    for src in page.images:
        path = index.parent / src
        assert not Path(src).is_absolute() and path.is_file(), src
        data = path.read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n", src
    for href in page.links:
        if not href.startswith("#"):
            assert (index.parent / href).is_file(), href


def test_report_parses_and_shows_every_part(full_report):
    root, _ = full_report
    index = root / "report" / "index.html"
    page = parse(index)
    check_references(index, page)
    assert {"summary", "models", "datasets", "similarity", "consistency", "analyses",
            "gap"} <= set(page.ids)
    names = [Path(s).name for s in page.images]
    assert sum(n.startswith("sim__") for n in names) == len(DATASETS) * len(METRICS)
    assert sum(n.startswith("consistency__") for n in names) == len(METRICS)
    assert sum(n.startswith("categories__") for n in names) == len(METRICS)
    assert sum(n.startswith("gap__") for n in names) == len(METRICS)
    # the further analyses: a t-SNE map per metric and category column, mean vs. spread per
    # metric, one metric-vs-metric figure, anchor heatmaps per metric
    for metric in METRICS:
        for column in ("objective", "architecture_class", "dataset_class", "size_class"):
            assert f"embedding__{metric}__{column}.png" in names
    assert sum(n.startswith("embedding__") for n in names) == len(METRICS) * 4
    assert sum(n.startswith("meanstd__") for n in names) == len(METRICS)
    assert sum(n.startswith("meanstd_transformed__") for n in names) == len(METRICS)  # App. D
    assert names.count("metrics__agreement.png") == 1
    assert sum(n.startswith("anchors__") for n in names) == len(METRICS)
    assert {"subset__delta.png", "subset__heatmaps.png"} <= set(names)  # Appendix C
    assert names.count("modelsets__pairs.png") == 1  # model-set pairs (--model_sets)
    static = [Path(s).name for s in page.images if s.startswith("figures/")]
    assert sorted(p.name for p in (root / "report" / "figures").iterdir()) == sorted(static)
    text = " ".join(page.text)
    for shown in ("Stanford Cars", "FER2013", "CIFAR-10", "Natural (single-domain)",
                  "Structured", "Self-Supervised", "model_5", "pysim 0.1.0",
                  "Model maps (t-SNE)", "Mean vs. spread across datasets", "Metric vs. metric",
                  "Anchor models", "transformed before correlating: none",
                  "ImageNet subset size", "samples_per_class_1", "Section 4.2", "Appendix E",
                  "Model-set pairs", "Sup+SSL", "n_dataset_pairs", "tests in the family"):
        assert shown in text, shown
    assert "../pipeline_info/execution_report.html" in page.links
    assert "class=\"missing\"" not in index.read_text()


def test_report_copes_with_missing_parts(full_report, tmp_path):
    root, _ = full_report
    partial = tmp_path / "results"
    shutil.copytree(root / "similarities", partial / "similarities")
    shutil.copytree(root / "report", partial / "report")  # stale figures to be replaced
    index = build_report(partial, partial / "report")
    page = parse(index)
    check_references(index, page)
    text = " ".join(page.text)
    for remark in ("no probe results under probes/", "no consistency/consistency.csv",
                   "no performance/similarity_vs_gap.csv", "no model table given"):
        assert remark in text, remark
    names = {Path(s).name for s in page.images}
    assert {p.name for p in (partial / "report" / "figures").iterdir()} == names
    assert all(n.startswith("sim__") for n in names) and len(names) == 6
    # no model table, no tables: no paper figure is drawn, each says why
    assert not any((partial / "report" / "paper_figures").glob("*"))
    assert "fig1_scatter: not drawn from this run" in text
    assert "sec4_5_boxplot: not drawn from this run - no consistency/consistency.csv" in text

    empty = tmp_path / "empty"
    empty.mkdir()
    page = parse(build_report(empty, empty / "report"))
    assert "no similarity files under similarities/" in " ".join(page.text)
    assert page.images == []
    assert_bad_input(run_cli("pysim-report", "--results-dir", tmp_path / "none", "--out-dir",
                             tmp_path / "r"), "results directory not found")


def test_model_set_pairs_part_only_with_its_table(full_report, tmp_path):
    root, _ = full_report
    only = tmp_path / "results"
    (only / "consistency").mkdir(parents=True)
    for name in ("model_set_pairs.csv", "model_set_pairs_summary.csv"):
        shutil.copy(root / "consistency" / name, only / "consistency" / name)
    index = build_report(only, only / "report")
    page = parse(index)
    check_references(index, page)
    text = " ".join(page.text)
    assert "Model-set pairs" in text and "Sup vs Img-Txt" not in text  # pairs: in the figure
    assert [Path(s).name for s in page.images] == ["modelsets__pairs.png"]
    summary = pd.read_csv(only / "consistency" / "model_set_pairs_summary.csv")
    assert len(summary) == len(METRICS) * 2 * 2  # metric x set pair x correlation
    assert set(summary["n_dataset_pairs"]) == {len(DATASETS) * (len(DATASETS) - 1) // 2}
    for name in ("model_set_pairs.csv", "model_set_pairs_summary.csv"):
        (only / "consistency" / name).unlink()
    page = parse(build_report(only, only / "report"))
    assert "Model-set pairs" not in " ".join(page.text) and page.images == []


def test_report_renders_in_headless_chromium(full_report, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium not installed (apt-get install chromium)")
    from matplotlib.image import imread

    root, _ = full_report
    shot = tmp_path / "shot.png"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", "--window-size=1280,2000",
           (root / "report" / "index.html").resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 0.05
    assert (pixels.min(axis=-1) < 0.9).mean() > 0.02  # more than a blank page with a title


# --- the paper's figures (report/paper_figures/) ------------------------------------------

CKA = METRICS[0]
PAPER_STEMS = (
    ["fig1_dataset_a_heatmap", "fig1_dataset_b_heatmap", "fig1_scatter",
     f"sec4_2_matrices__{CKA}", f"sec4_2_mean_vs_std__{CKA}",
     f"sec4_2_mean__{CKA}__vs__{METRICS[1]}", f"sec4_7_scatter__{CKA}", "appC_delta_box",
     "appC_matrices", f"appD_mean_std_transformed__{CKA}",
     f"appE_consistency__{CKA}__vs__{METRICS[1]}", f"appG_r_per_dataset__{CKA}"]
    + [f"sec4_4_scatter__{m}" for m in METRICS]
    + [f"sec4_5_boxplot__{m}__{c}" for m in METRICS
       for c in ("objective", "architecture_class", "dataset_class", "size_class")]
    + [f"sec4_6_matrix__{m}__{s}" for m in METRICS for s in ("all", "imgtxt_sup")]
    + [f"appF_anchors__{c}" for c in ("objective", "architecture_class", "dataset_class",
                                      "size_class")])
SHORT = {"Image-Text": "Img-Txt", "Self-Supervised": "SSL", "Supervised": "Sup"}


def corr(x, y) -> float:
    """Pearson r in float64 (NaN under 3 values, as the consistency table)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3:
        return np.nan
    dx, dy = x - x.mean(), y - y.mean()
    return float((dx * dy).sum() / np.sqrt((dx * dx).sum() * (dy * dy).sum()))


def box(values) -> dict:
    """What a seaborn/matplotlib box shows: linear quartiles, whiskers at the furthest points
    within 1.5 IQR of the box."""
    v = np.sort(np.asarray(values, np.float64))
    q1, med, q3 = (float(np.percentile(v, q)) for q in (25, 50, 75))
    iqr = q3 - q1
    return {"q1": q1, "median": med, "q3": q3, "whisker_low": v[v >= q1 - 1.5 * iqr].min(),
            "whisker_high": v[v <= q3 + 1.5 * iqr].max(), "n": len(v)}


def pair_r(root: Path, models: Path, metric: str, keep) -> dict[tuple[str, str], float]:
    """Per dataset pair: r of the two datasets' similarities over the model pairs (i < j) that
    `keep(objective_i, objective_j)` accepts, recomputed from the similarity files."""
    objective = {m: e["objective"] for m, e in json.loads(models.read_text()).items()}
    sims = {s.dataset: s for s in (read_similarities(p)
                                   for p in sorted((root / "similarities").glob("*.h5")))}
    out = {}
    for d1, d2 in itertools.combinations(sorted(sims), 2):
        ids = list(sims[d1].model_ids)
        assert ids == list(sims[d2].model_ids)
        pairs = [(i, j) for i, j in itertools.combinations(range(len(ids)), 2)
                 if keep(objective[ids[i]], objective[ids[j]])]
        x = [sims[d1].matrices[metric][i, j] for i, j in pairs]
        y = [sims[d2].matrices[metric][i, j] for i, j in pairs]
        out[(d1, d2)] = corr(x, y)
    return out


def test_paper_figures_are_written_and_listed(full_report):
    root, _ = full_report
    folder = root / "report" / "paper_figures"
    page = parse(root / "report" / "index.html")
    assert "paper" in page.ids and "The paper's figures" in " ".join(page.text)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{s}.{ext}" for s in PAPER_STEMS for ext in ("png", "pdf", "csv"))
    for stem in PAPER_STEMS:
        png, pdf = (folder / f"{stem}.png").read_bytes(), (folder / f"{stem}.pdf").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[-8:-4] == b"IEND", stem
        assert pdf[:5] == b"%PDF-" and pdf.rstrip().endswith(b"%%EOF"), stem
        assert len(pd.read_csv(folder / f"{stem}.csv")) > 0, stem
        assert f"paper_figures/{stem}.png" in page.images, stem
        assert {f"paper_figures/{stem}.pdf", f"paper_figures/{stem}.csv"} <= set(page.links)
    # 2 self-supervised models make one SSL x SSL pair: no r, said on the page
    assert (f"sec4_6_matrix__{CKA}__ssl_ssl: not drawn from this run"
            in " ".join(page.text))


def test_paper_boxplot_4_5_equals_the_rederivation(full_report):
    """§4.5, objective: per objective pair the r of every dataset pair, boxes sorted by median
    (descending), the all-pairs quartiles behind them."""
    root, models = full_report
    got = pd.read_csv(root / "report" / "paper_figures" /
                      f"sec4_5_boxplot__{CKA}__objective.csv")
    boxes = {}
    for a, b in itertools.combinations_with_replacement(sorted(OBJECTIVES), 2):
        rs = [r for r in pair_r(root, models, CKA,
                                lambda p, q, a=a, b=b: sorted((p, q)) == [a, b]).values()
              if np.isfinite(r)]
        if rs:
            boxes[f"{SHORT[a]}, {SHORT[b]}"] = box(rs)
    order = sorted(boxes, key=lambda k: -boxes[k]["median"])
    assert list(got["group_pair"]) == order
    for column in ("q1", "median", "q3", "whisker_low", "whisker_high", "n"):
        np.testing.assert_allclose(got[column], [boxes[k][column] for k in order],
                                   rtol=0, atol=1e-12)
    everything = list(pair_r(root, models, CKA, lambda p, q: True).values())
    for column, q in (("all_q25", 25), ("all_median", 50), ("all_q75", 75)):
        np.testing.assert_allclose(got[column], np.percentile(everything, q), atol=1e-12)


def test_paper_matrix_4_6_equals_the_rederivation(full_report):
    """§4.6, Img-Txt x Sup pairs: datasets by (domain, name), r per dataset pair, diagonal 1."""
    root, models = full_report
    got = pd.read_csv(root / "report" / "paper_figures" /
                      f"sec4_6_matrix__{CKA}__imgtxt_sup.csv")
    info = json.loads((SEED / "dataset_info.json").read_text())
    order = sorted(DATASETS, key=lambda d: (info[d]["domain"], info[d]["name"]))
    rs = pair_r(root, models, CKA, lambda p, q: {p, q} == {"Image-Text", "Supervised"})
    want = np.eye(len(order))
    for (d1, d2), r in rs.items():
        i, j = order.index(d1), order.index(d2)
        want[i, j] = want[j, i] = r
    assert list(got[got["position_2"] == 0]["dataset_1"]) == order
    assert list(got[got["position_2"] == 0]["name_1"]) == [info[d]["name"] for d in order]
    values = np.full_like(want, np.nan)
    values[got["position_1"], got["position_2"]] = got["pearson_r"]
    np.testing.assert_allclose(values, want, rtol=0, atol=1e-12)


def test_paper_appendix_c_boxes_equal_the_rederivation(full_report):
    """App. C: |S_a - S_b| of each model pair (upper triangle) between consecutive subset
    sizes, CKA metrics only, recomputed from the subset-size similarity files."""
    root, _ = full_report
    got = pd.read_csv(root / "report" / "paper_figures" / "appC_delta_box.csv")
    sizes = (1, 10, 20)
    mats = {n: read_similarities(root / "subset_size" / f"imagenet-subset-{n}k.h5")
            for n in sizes}
    rows = []
    for a, b in itertools.pairwise(sizes):
        x, y = (np.array(mats[n].matrices[CKA], np.float64) for n in (a, b))
        np.fill_diagonal(x, 1)
        np.fill_diagonal(y, 1)
        upper = np.triu_indices(len(x), 1)
        rows.append({"compared_subsets": f"{a} and {b}", "metric": CKA,
                     **box(np.abs(x[upper] - y[upper]))})
    want = pd.DataFrame(rows)
    assert list(got["compared_subsets"]) == list(want["compared_subsets"])
    assert set(got["metric"]) == {CKA}  # the notebook's CKA metrics only
    for column in ("q1", "median", "q3", "whisker_low", "whisker_high", "n"):
        np.testing.assert_allclose(got[column], want[column], rtol=0, atol=1e-12)


def test_paper_figures_say_when_the_run_has_one_metric(full_report, tmp_path):
    """With one metric the metric-vs-metric panels (§4.2, App. E) are not drawn but explained."""
    root, _ = full_report
    sims = [read_similarities(p) for p in sorted((root / "similarities").glob("*.h5"))]
    table = pd.read_csv(root / "consistency" / "consistency.csv")
    ctx = Context(out_dir=tmp_path, matrices={s.dataset: {CKA: s.matrices[CKA]} for s in sims},
                  model_ids={s.dataset: list(s.model_ids) for s in sims}, names={},
                  domains={}, labels={}, probes={}, consistency=table[table["metric"] == CKA],
                  cdir=root / "consistency")
    sec4_2.draw(ctx)
    app_e.draw(ctx)
    reasons = {p.stem: p.reason for p in ctx.panels if p.reason}
    assert "one metric" in reasons["sec4_2_mean_metric_vs_metric"]
    assert "at least two metrics" in reasons["appE_consistency"]
    assert {p.stem for p in ctx.panels if not p.reason} == {
        f"sec4_2_matrices__{CKA}", f"sec4_2_mean_vs_std__{CKA}"}
