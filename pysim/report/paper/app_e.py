"""Appendix E: one metric's consistency coefficients against another's, over every dataset
pair and category group pair of consistency.csv (category `all` left out), overall Pearson r
in the corner (the study's app_E notebook: CKA linear vs. CKA RBF 0.4 and RSA spearman)."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr

from pysim.report.paper.common import Context, figure, metric_name, safe

KEYS = ["dataset_1", "dataset_2", "category", "group_1", "group_2"]


def draw(ctx: Context) -> None:
    table = ctx.consistency
    metric = ctx.reference_metric
    if table is None or table.empty or table["metric"].nunique() < 2:
        ctx.skip("appE_consistency", "App. E", "needs consistency.csv with at least two "
                 "metrics (the paper compares CKA linear with CKA RBF 0.4 and RSA spearman)")
        return
    rows = table[table["category"] != "all"]
    for other in sorted(m for m in rows["metric"].unique() if m != metric):
        both = rows[rows["metric"] == metric][KEYS + ["pearson_r"]].merge(
            rows[rows["metric"] == other][KEYS + ["pearson_r"]], on=KEYS,
            suffixes=("_x", "_y"))
        both = both[np.isfinite(both["pearson_r_x"]) & np.isfinite(both["pearson_r_y"])]
        stem = f"appE_consistency__{safe(metric)}__vs__{safe(other)}"
        if len(both) < 3:
            ctx.skip(stem, "App. E", "fewer than 3 matched consistency rows")
            continue
        r = float(pearsonr(both["pearson_r_x"], both["pearson_r_y"])[0])
        fig, ax = figure(4.2, 3.4)
        ax.scatter(both["pearson_r_x"], both["pearson_r_y"], alpha=0.5, s=10)
        ax.set_xlabel(f"r coeff. ({metric_name(metric)})")
        ax.set_ylabel(f"r coeff. ({metric_name(other)})")
        ax.text(0.05, 0.95, f"Overall r = {r:.2f}", transform=ax.transAxes, va="top")
        fig.tight_layout()
        ctx.write(fig, both, stem, f"App. E: consistency under {metric_name(metric)} vs. "
                  f"{metric_name(other)} (r = {r:.2f})")
