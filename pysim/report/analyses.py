"""The report's section on the further analyses (DESIGN §1.7), read from consistency/: model
maps, mean vs. spread across datasets, metric agreement, anchor models, the ImageNet
subset size (Appendix C) and, when the run has them, the model-set pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pysim.analysis.agreement import pair_values
from pysim.config import CATEGORY_COLUMNS
from pysim.report import analysis_figures as af
from pysim.report import html as h
from pysim.report.figures import UNKNOWN, safe_name

SIGNIFICANCE = 0.05


def read_table(path: Path) -> pd.DataFrame | None:
    """A CSV table, or None when absent or empty (a stub's placeholder)."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    return pd.read_csv(path)


def model_labels(report, column: str) -> dict[str, str]:
    """Each model's label in one category column (unknown without a model table)."""
    models = report.res.models or {}
    return {m: e.categories.get(column) or UNKNOWN for m, e in models.items()}


def categories(report) -> list[str]:
    """The category columns the model table fills (objective alone without a table)."""
    models = report.res.models or {}
    present = [c for c in CATEGORY_COLUMNS if any(c in e.categories for e in models.values())]
    return present or ["objective"]


def metric_tables(cdir: Path, prefix: str):
    """(metric id, table) of every non-empty `<prefix>_<metric>.csv` in the folder, sorted."""
    for path in sorted(cdir.glob(f"{prefix}_*.csv")):
        table = read_table(path)
        if table is not None and not table.empty:
            yield path.stem.removeprefix(f"{prefix}_"), table


def maps_part(report, cdir: Path) -> str:
    """t-SNE maps per metric, one figure per category column."""
    items = []
    for metric, table in metric_tables(cdir, "embedding"):
        for column in categories(report):
            fig = af.embedding_map(table, model_labels(report, column), report.short_names,
                                   f"t-SNE of 1 - S - {metric}", column,
                                   report.fig_dir / safe_name("embedding", metric, column))
            items.append(report.fig(fig, f"model map, {metric}, coloured by {column}"))
    if not items:
        return h.para("No model maps (consistency/embedding_*.csv absent or empty).")
    return (h.para("t-SNE of the models on the distance 1 - S per dataset (perplexity 5, "
                   "clipped to m - 1 with fewer than 6 models; random_state 42).")
            + h.figures(items))


def pair_labels(report, aggregate: pd.DataFrame) -> dict[str, list[str]]:
    """Per category column the label pair ("a x b", sorted) of every row's model pair."""
    out = {}
    for column in categories(report):
        labs = model_labels(report, column)
        out[column] = [" x ".join(sorted((labs.get(a, UNKNOWN), labs.get(b, UNKNOWN))))
                       for a, b in zip(aggregate["model_1"], aggregate["model_2"], strict=True)]
    return out


def spread_part(report, cdir: Path) -> str:
    """Mean vs. standard deviation of each pair's similarity across datasets, per metric."""
    items = []
    for metric, table in metric_tables(cdir, "aggregate"):
        fig = af.mean_std_scatter(table, pair_labels(report, table),
                                  f"mean vs. spread across datasets - {metric}",
                                  report.fig_dir / safe_name("meanstd", metric))
        items.append(report.fig(fig, f"mean vs. std of pair similarity, {metric}"))
        fig = af.transformed_mean_std(table, f"Appendix D: tan / arccos - {metric}",
                                      report.fig_dir / safe_name("meanstd_transformed", metric))
        items.append(report.fig(fig, f"mean vs. std of tan(S) and arccos(S), {metric}"))
    return h.figures(items) if items else h.para("No aggregate_*.csv tables.")


def agreement_panels(report, table: pd.DataFrame) -> list:
    """(metric_1, metric_2, values of every model pair and dataset, mean r) per metric pair."""
    panels = []
    by_dataset = {s.dataset: s for s in report.res.similarities}
    for (m1, m2), sel in table.groupby(["metric_1", "metric_2"], sort=True):
        frames = []
        for dataset in sel["dataset"]:
            sims = by_dataset.get(dataset)
            if sims is not None and m1 in sims.matrices and m2 in sims.matrices:
                frames.append(pd.DataFrame({"dataset": dataset,
                                            "x": pair_values(sims.matrices[m1]),
                                            "y": pair_values(sims.matrices[m2])}))
        if frames:
            panels.append((m1, m2, pd.concat(frames, ignore_index=True),
                           float(np.nanmean(sel["pearson_r"])) if sel["pearson_r"].notna().any()
                           else np.nan))
    return panels


def agreement_part(report, cdir: Path) -> str:
    """Metric vs. metric scatter plots (local vs. global) and the agreement table."""
    table = read_table(cdir / "metric_agreement.csv")
    if table is None or table.empty:
        return h.para("No metric agreement (one metric only, or metric_agreement.csv absent).")
    fig = af.metric_scatter(agreement_panels(report, table), report.short_names,
                            "metric vs. metric per model pair",
                            report.fig_dir / safe_name("metrics", "agreement"))
    summary = (table.groupby(["metric_1", "metric_2"], sort=True)
               .agg(datasets=("dataset", "size"), mean_pearson_r=("pearson_r", "mean"),
                    mean_spearman_r=("spearman_r", "mean")).reset_index())
    return (h.para("Agreement between metrics, e.g. local (mutual k-NN) vs. global (CKA): "
                   "Pearson and Spearman r over the model pairs of each dataset.")
            + h.figures([report.fig(fig, "metric vs. metric, all datasets")]) + h.table(summary)
            + study_agreement(cdir))


def study_agreement(cdir: Path) -> str:
    """The paper's two comparisons: mean similarities (Section 4.2) and consistency
    coefficients (Appendix E) of one metric against another."""
    out = ""
    means = read_table(cdir / "metric_mean_agreement.csv")
    if means is not None and not means.empty:
        out += (h.para("Section 4.2: Pearson r between two metrics' similarities averaged over "
                       "the datasets, over the model pairs.") + h.table(means))
    coeffs = read_table(cdir / "metric_consistency_agreement.csv")
    if coeffs is not None and not coeffs.empty:
        out += (h.para("Appendix E: Pearson r between two metrics' consistency coefficients, "
                       "over every dataset pair and category group pair.") + h.table(coeffs))
    return out


def anchors_part(report, cdir: Path) -> str:
    """Median consistency of each anchor's similarities per group, and the significant tests."""
    rows = read_table(cdir / "anchors.csv")
    if rows is None or rows.empty:
        return h.para("No anchor-model rows (too few models per category group).")
    items = []
    for metric, sel in rows.groupby("metric", sort=True):
        fig = af.anchor_heatmap(sel, f"anchor models - {metric}",
                                report.fig_dir / safe_name("anchors", metric))
        items.append(report.fig(fig, f"anchor consistency per group, {metric}"))
    text = ("Pearson r of an anchor's similarities to the other models of one group between "
            "two datasets (median over dataset pairs). Groups are compared by Wilcoxon rank-sum "
            "tests, Bonferroni corrected over each category's tests of every anchor and every "
            "family metric (as the study's Appendix F, whose family is its two CKA metrics; "
            "default every metric; --consistency_anchor_test_metrics).")
    tests = read_table(cdir / "anchor_tests.csv")
    if tests is not None and not tests.empty:
        hits = tests[tests["p_adjusted"] < SIGNIFICANCE]
        # tables written before --anchor-test-metrics have no family_size: every test counts
        member = (tests["family_size"].notna() if "family_size" in tests
                  else pd.Series(True, index=tests.index))
        outside = sorted(set(tests.loc[~member, "metric"]))
        text += (f" {len(hits)} of {int(member.sum())} tests in the family "
                 f"have adjusted p < {SIGNIFICANCE}.")
        if outside:
            text += f" Tested outside the family (no adjusted p): {', '.join(outside)}."
        body = h.table(hits.sort_values("p_adjusted").head(30)) if len(hits) else ""
    else:
        text += " No tests: no category has two groups with at least 2 other models each."
        body = ""
    return h.para(text) + h.figures(items) + body


def analyses_section(report) -> str:
    """The whole section; each part says when its table is absent."""
    cdir = report.res.root / "consistency"
    if not cdir.is_dir():
        return h.note("no consistency/ folder: the further analyses are not available")
    parts = [("Model maps (t-SNE)", maps_part), ("Mean vs. spread across datasets", spread_part),
             ("Metric vs. metric", agreement_part), ("Anchor models", anchors_part),
             ("ImageNet subset size", subset_size_part)]
    if (cdir / "model_set_pairs.csv").is_file():  # only with --model_sets
        parts.append(("Model-set pairs", model_sets_part))
    return "".join(f"<h3>{h.escape(title)}</h3>" + part(report, cdir) for title, part in parts)



def subset_size_part(report, cdir: Path) -> str:
    """Appendix C: |difference| of each pair's similarity between consecutive subset sizes,
    and every size's matrix in the reference's dendrogram order."""
    delta = read_table(cdir / "subset_size_delta.csv")
    if delta is None or delta.empty:
        return h.para("No subset-size tables (ImageNet not listed, or subset sizes off).")
    summary = (delta.groupby(["metric", "samples_per_class_1", "samples_per_class_2"],
                             sort=True)["abs_diff"]
               .agg(pairs="size", median="median", mean="mean", q90=lambda x: x.quantile(0.9),
                    max="max").reset_index())
    items = [report.fig(af.subset_size_boxes(delta, "abs. difference between subset sizes",
                                             report.fig_dir / safe_name("subset", "delta")),
                        "abs. similarity difference between consecutive subset sizes")]
    matrices = read_table(cdir / "subset_size_matrices.csv")
    if matrices is not None and not matrices.empty:
        order = matrices["order_metric"].iloc[0]
        items.append(report.fig(
            af.subset_size_heatmaps(matrices, f"ordered by the dendrogram of {order}",
                                    report.fig_dir / safe_name("subset", "heatmaps")),
            "similarity matrices per subset size (rows: images per class)"))
    return (h.para("Appendix C: the similarity of each model pair on imagenet-subset-<N>k, "
                   "absolute difference between consecutive N (images per class).")
            + h.figures(items) + h.table(summary))


def model_sets_part(report, cdir: Path) -> str:
    """Consistency over the model pairs between two named model sets (--model_sets): r over
    the dataset pairs per set pair and metric, and the summary table."""
    table = read_table(cdir / "model_set_pairs.csv")
    if table is None or table.empty:
        return h.para("No model-set pair rows (consistency/model_set_pairs.csv is empty).")
    fig = af.model_set_boxes(table, "consistency of model-set pairs",
                             report.fig_dir / safe_name("modelsets", "pairs"))
    summary = read_table(cdir / "model_set_pairs_summary.csv")
    return (h.para("Pearson r of two datasets' similarities over the model pairs between two "
                   "model sets (one in each set; the study's specific model-set pairs), one "
                   "point per dataset pair; the summary gives the distribution of r over "
                   "the dataset pairs per set pair, metric and correlation.")
            + h.figures([report.fig(fig, "consistency per model-set pair and metric")])
            + (h.table(summary) if summary is not None else ""))
