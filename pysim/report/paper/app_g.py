"""Appendix G: per dataset the correlation (Pearson) between the model pairs' similarity and
their performance gap, datasets grouped by domain and sorted by the Spearman r within it,
coloured by domain, dotted lines at -0.3, -0.5 and -0.7 (the study's app_G notebook, CKA
linear), from performance/similarity_vs_gap.csv."""

from __future__ import annotations

import numpy as np

from pysim.report.paper.common import DOMAIN_COLOURS, Context, colour, figure, metric_name, safe


def draw(ctx: Context) -> None:
    table = ctx.sim_vs_gap
    metric = ctx.reference_metric
    stem = f"appG_r_per_dataset__{safe(metric or 'none')}"
    if table is None or table.empty or metric not in set(table["metric"]):
        ctx.skip(stem, "App. G", "needs performance/similarity_vs_gap.csv (probes)")
        return
    sel = table[(table["metric"] == metric) & np.isfinite(table["pearson_r"])].copy()
    if sel.empty:
        ctx.skip(stem, "App. G", "no finite similarity-vs-gap correlation")
        return
    sel["name"] = [ctx.names.get(d, d) for d in sel["dataset"]]
    sel["domain"] = [ctx.domains.get(d, "") for d in sel["dataset"]]
    sel = sel.sort_values(["domain", "spearman_r", "name"], kind="stable").reset_index(drop=True)
    colours = [DOMAIN_COLOURS.get(d) or colour(d, k) for k, d in enumerate(sel["domain"])]
    fig, ax = figure(max(4.0, 0.45 * len(sel) + 2.5), 4.2)
    x = np.arange(len(sel))
    ax.scatter(x, sel["pearson_r"], c=colours, s=60)
    ax.set_xticks(x, sel["name"], rotation=45, ha="right")
    ax.set_ylabel("Correlation Coefficient")
    for level in (-0.3, -0.5, -0.7):
        ax.axhline(level, alpha=0.5, ls=":", color="grey", zorder=0)
    for domain in dict.fromkeys(sel["domain"]):
        ax.scatter([], [], color=colours[list(sel["domain"]).index(domain)], label=domain)
    ax.set_xlim(-0.5, len(sel) - 0.5)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False, fontsize=7)
    fig.tight_layout()
    ctx.write(fig, sel[["dataset", "name", "domain", "pearson_r", "spearman_r"]], stem,
              f"App. G: r of similarity vs. performance gap per dataset, {metric_name(metric)}")
