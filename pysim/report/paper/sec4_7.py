"""§4.7: per dataset, each model pair's similarity against its performance gap (|difference of
the two probes' test top-1|), points coloured by the better model's accuracy (viridis, one
scale per panel), Pearson r in the corner; four panels a row (the study's 4_7 notebook, CKA
linear; it leaves out cifar100-coarse and entity13)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from pysim.analysis.sim_vs_perf import correlate, gap_pairs
from pysim.config import dataset_key
from pysim.report.paper.common import Context, figure, metric_name, safe

LEFT_OUT = ("cifar100-coarse", "entity13")
COLUMNS = 4


def panels(ctx: Context, metric: str) -> list[tuple[str, pd.DataFrame, float]]:
    out = []
    for dataset in ctx.ordered_datasets():
        accs = ctx.probes.get(dataset_key(dataset))
        if dataset in LEFT_OUT or not accs or metric not in ctx.matrices[dataset]:
            continue
        pairs = gap_pairs(ctx.matrices[dataset][metric], ctx.model_ids[dataset], accs)
        pairs["max_model_perf"] = [max(accs[a], accs[b])
                                   for a, b in zip(pairs["model_1"], pairs["model_2"],
                                                   strict=True)]
        if len(pairs):
            out.append((dataset, pairs, correlate(pairs)[0]))
    return out


def draw(ctx: Context) -> None:
    metric = ctx.reference_metric
    found = panels(ctx, metric) if metric else []
    stem = f"sec4_7_scatter__{safe(metric or 'none')}"
    if not found:
        ctx.skip(stem, "§4.7", "needs probe accuracies (probes/) for the datasets")
        return
    ncols = min(COLUMNS, len(found))
    nrows = -(-len(found) // ncols)
    fig, axes = figure(3.5 * ncols, 2.8 * nrows, nrows=nrows, ncols=ncols, squeeze=False,
                       sharex=True)
    rows = []
    for k, ax in enumerate(axes.flat):
        if k >= len(found):
            ax.set_visible(False)
            continue
        dataset, pairs, r = found[k]
        pairs = pairs.sort_values("max_model_perf", kind="stable")
        hue = pairs["max_model_perf"]
        norm = plt.Normalize(hue.min(), hue.max() if hue.max() > hue.min() else hue.min() + 1e-9)
        ax.scatter(pairs["similarity"], pairs["gap"], c=hue, cmap="viridis", norm=norm,
                   alpha=0.5, s=15)
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, pad=0.02,
                     fraction=0.05)
        name = ctx.names.get(dataset, dataset)
        ax.set_title(f"{ctx.domains.get(dataset, '')}\n{name}" if k < ncols else name,
                     fontsize=8)
        ax.text(0.95, 0.9, f"r coeff.: {r:.2f}", transform=ax.transAxes, ha="right",
                bbox={"facecolor": "white", "alpha": 0.5, "edgecolor": "white"})
        if k % ncols == 0:
            ax.set_ylabel("Performance Gap")
        if k // ncols == nrows - 1:
            ax.set_xlabel("Similarity value")
        rows.append(pairs.assign(dataset=dataset, pearson_r=r))
    fig.tight_layout()
    ctx.write(fig, pd.concat(rows, ignore_index=True)[
        ["dataset", "model_1", "model_2", "similarity", "gap", "max_model_perf", "pearson_r"]],
        stem, f"§4.7: similarity vs. performance gap per dataset, coloured by the better "
        f"model's accuracy, {metric_name(metric)}")
