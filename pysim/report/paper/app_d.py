"""Appendix D: mean vs. standard deviation across datasets of arccos(S) and of tan(S) per
model pair (the study's app_D notebook, CKA linear), from aggregate_<metric>.csv."""

from __future__ import annotations

import matplotlib.pyplot as plt

from pysim.report.paper.common import Context, figure, metric_name, safe


def draw(ctx: Context) -> None:
    metric = ctx.reference_metric
    aggregate = ctx.table(f"aggregate_{metric}.csv") if metric else None
    stem = f"appD_mean_std_transformed__{safe(metric or 'none')}"
    if aggregate is None or "mean_tan" not in aggregate:
        ctx.skip(stem, "App. D", "no aggregate table with mean_tan / mean_arccos")
        return
    fig, axes = figure(8.2, 2.9, ncols=2)
    colours = plt.get_cmap("viridis")
    for k, (ax, transform) in enumerate(zip(axes, ("arccos", "tan"), strict=True)):
        ax.scatter(aggregate[f"mean_{transform}"], aggregate[f"std_{transform}"], alpha=0.6,
                   s=14, color=colours(k / 3))
        ax.set_xlabel(f"Mean {transform}({metric_name(metric)})")
        ax.set_ylabel(f"Std {transform}({metric_name(metric)})")
    fig.tight_layout()
    ctx.write(fig, aggregate[["model_1", "model_2", "mean_arccos", "std_arccos", "mean_tan",
                              "std_tan"]], stem,
              f"App. D: mean vs. std of arccos and tan of {metric_name(metric)} across datasets")
