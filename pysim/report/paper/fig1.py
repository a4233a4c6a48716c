"""Fig. 1: the similarities between self-supervised (rows) and supervised models (columns) on
two datasets, as two heatmaps on one colour scale, and the scatter of one against the other
with its regression line (the study's figure_1_subplots notebook; CKA linear)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pysim.report.paper.common import Context, figure, metric_name

DATASETS = ("imagenet-subset-10k", "wds_vtab_flowers")


def block(ctx: Context, dataset: str, metric: str, rows: list[str], cols: list[str]):
    ids = ctx.model_ids[dataset]
    matrix = ctx.matrices[dataset][metric]
    return matrix[np.ix_([ids.index(m) for m in rows], [ids.index(m) for m in cols])]


def draw(ctx: Context) -> None:
    metric = ctx.reference_metric
    objective = ctx.labels.get("objective") or {}
    datasets = ctx.pick_datasets(DATASETS, 2)
    stems = ("fig1_dataset_a_heatmap", "fig1_dataset_b_heatmap", "fig1_scatter")
    common = set.intersection(*(set(ctx.model_ids[d]) for d in datasets)) if datasets else set()
    ssl = sorted(m for m in common if objective.get(m) == "Self-Supervised")
    sup = sorted(m for m in common if objective.get(m) == "Supervised")
    if metric is None or len(datasets) < 2 or not ssl or not sup:
        for stem in stems:
            ctx.skip(stem, "Fig. 1", "needs two datasets and at least one self-supervised and "
                     "one supervised model (objectives from the model table)")
        return
    a, b = (block(ctx, d, metric, ssl, sup) for d in datasets)
    vmin, vmax = float(np.nanmin([a.min(), b.min()])), float(np.nanmax([a.max(), b.max()]))
    for stem, values, cmap, dataset in ((stems[0], a, "Purples", datasets[0]),
                                        (stems[1], b, "OrRd", datasets[1])):
        # the notebook draws the transposed block: supervised models as rows
        fig, ax = figure(max(1.5, 0.4 * len(ssl) + 0.6), max(1.5, 0.4 * len(sup) + 0.6))
        ax.imshow(values.T, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(ctx.names.get(dataset, dataset), fontsize=8)
        fig.tight_layout()
        data = pd.DataFrame([(s, t, values[i, j]) for i, s in enumerate(ssl)
                             for j, t in enumerate(sup)],
                            columns=["model_ssl", "model_sup", "value"])
        ctx.write(fig, data, stem, f"Fig. 1: {metric_name(metric)} between self-supervised "
                  f"(x) and supervised models (y), {ctx.names.get(dataset, dataset)}")
    x, y = b.ravel(), a.ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    r = float(np.corrcoef(x[keep], y[keep])[0, 1]) if keep.sum() > 2 else float("nan")
    fig, ax = figure(4.0, 2.8)
    ax.scatter(x, y, s=40, color="darkgrey")
    if keep.sum() > 1 and np.ptp(x[keep]) > 0:
        slope, intercept = np.polyfit(x[keep], y[keep], 1)
        grid = np.linspace(x[keep].min(), x[keep].max(), 2)
        ax.plot(grid, slope * grid + intercept, ls="--", lw=3, color="darkgrey")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params("both", bottom=False, left=False, labelbottom=False, labelleft=False)
    ax.set_xlabel(ctx.names.get(datasets[1], datasets[1]))
    ax.set_ylabel(ctx.names.get(datasets[0], datasets[0]))
    ax.set_title(f"r = {r:.2f}", fontsize=8)
    fig.tight_layout()
    data = pd.DataFrame({"model_ssl": np.repeat(ssl, len(sup)), "model_sup": sup * len(ssl),
                         "x_dataset_b": x, "y_dataset_a": y})
    ctx.write(fig, data, stems[2], f"Fig. 1: the two blocks against each other, Pearson r "
              f"= {r:.2f}")
