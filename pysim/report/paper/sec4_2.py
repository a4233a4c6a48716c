"""§4.2: the similarity matrices of three datasets beside the mean and standard deviation over
all datasets, every matrix in the order of the mean's average-linkage dendrogram (distance
1 - mean); the mean vs. the std of each model pair; one metric's mean against another's
(the study's 4_2 notebook). Means and stds are the run's consistency/aggregate_<metric>.csv
(population std, as numpy's default in the notebook)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import dendrogram, linkage
from scipy.stats import pearsonr

from pysim.report.paper.common import MAKO, ROCKET, Context, figure, metric_name, safe

DATASETS = ("imagenet-subset-10k", "wds_vtab_flowers", "wds_vtab_pcam")


def square(aggregate: pd.DataFrame, column: str, models: list[str], diagonal: float):
    """The symmetric matrix of one aggregate column in the given model order."""
    pos = {m: k for k, m in enumerate(models)}
    out = np.full((len(models), len(models)), np.nan)
    np.fill_diagonal(out, diagonal)
    i = aggregate["model_1"].map(pos).to_numpy()
    j = aggregate["model_2"].map(pos).to_numpy()
    out[i, j] = out[j, i] = aggregate[column].to_numpy(dtype=np.float64)
    return out


def leaf_order(mean: np.ndarray) -> np.ndarray:
    """Leaves of average linkage on the condensed distances 1 - mean."""
    rows, cols = np.triu_indices(len(mean), 1)
    return np.asarray(dendrogram(linkage(1 - mean[rows, cols], method="average"),
                                 no_plot=True)["leaves"])


def model_order(ctx: Context, aggregate: pd.DataFrame) -> list[str]:
    """The notebook's model list: sorted by objective, then id."""
    objective = ctx.labels.get("objective") or {}
    models = set(aggregate["model_1"]) | set(aggregate["model_2"])
    return sorted(models, key=lambda m: (objective.get(m, ""), m))


def matrices(ctx: Context, metric: str, aggregate: pd.DataFrame) -> None:
    stem = f"sec4_2_matrices__{safe(metric)}"
    models = model_order(ctx, aggregate)
    mean, std = square(aggregate, "mean", models, 1.0), square(aggregate, "std", models, 0.0)
    if len(models) < 3 or not np.isfinite(mean).all():
        ctx.skip(stem, "§4.2 matrices", "needs at least 3 models with finite mean similarity")
        return
    order = leaf_order(mean)
    ordered = [models[k] for k in order]
    panels = []
    for dataset in ctx.pick_datasets(DATASETS, 3):
        ids = ctx.model_ids[dataset]
        if metric in ctx.matrices[dataset] and set(ordered) <= set(ids):
            idx = [ids.index(m) for m in ordered]
            values = ctx.matrices[dataset][metric][np.ix_(idx, idx)].copy()
            np.fill_diagonal(values, 1.0)
            title = ctx.names.get(dataset, dataset)
            if ctx.domains.get(dataset):
                title += f"\n({ctx.domains[dataset]})"
            panels.append((title, values, ROCKET, 0.0, 1.0))
    panels.append(("Mean over datasets", mean[np.ix_(order, order)], ROCKET, 0.0, 1.0))
    std = std[np.ix_(order, order)]
    panels.append(("Std over datasets", std, MAKO, float(np.nanmin(std)), float(np.nanmax(std))))
    fig, axes = figure(2.4 * len(panels) + 0.8, 2.6, ncols=len(panels), squeeze=False)
    rows = []
    for ax, (title, values, cmap, vmin, vmax) in zip(axes[0], panels, strict=True):
        image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
        for i, j in np.ndindex(values.shape):
            rows.append((title, i, j, ordered[i], ordered[j], values[i, j]))
        if ax is axes[0][0]:
            first = image
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.04, top=0.78, wspace=0.1)
    fig.colorbar(first, cax=fig.add_axes([0.045, 0.1, 0.012, 0.65]), location="left")
    fig.colorbar(image, cax=fig.add_axes([0.945, 0.1, 0.012, 0.65]))
    fig.suptitle(f"{metric_name(metric)}, ordered by the mean's dendrogram", fontsize=9)
    ctx.write(fig, pd.DataFrame(rows, columns=["panel", "position_1", "position_2", "model_1",
                                               "model_2", "value"]), stem,
              f"§4.2: {metric_name(metric)} per dataset, mean and std over all datasets")


def mean_vs_std(ctx: Context, metric: str, aggregate: pd.DataFrame) -> None:
    fig, ax = figure(3.6, 2.8)
    ax.scatter(aggregate["mean"], aggregate["std"], alpha=0.6, s=14,
               color=plt.get_cmap("viridis")(0.0))
    ax.set_xlabel(f"Mean {metric_name(metric)}")
    ax.set_ylabel(f"Std {metric_name(metric)}")
    fig.tight_layout()
    ctx.write(fig, aggregate[["model_1", "model_2", "mean", "std"]],
              f"sec4_2_mean_vs_std__{safe(metric)}",
              f"§4.2: mean vs. std across datasets per model pair, {metric_name(metric)}")


def metric_vs_metric(ctx: Context, x: str, y: str, agg_x: pd.DataFrame, agg_y: pd.DataFrame,
                     colour: int) -> None:
    both = agg_x[["model_1", "model_2", "mean"]].merge(
        agg_y[["model_1", "model_2", "mean"]], on=["model_1", "model_2"],
        suffixes=("_x", "_y"))
    both = both[np.isfinite(both["mean_x"]) & np.isfinite(both["mean_y"])]
    stem = f"sec4_2_mean__{safe(x)}__vs__{safe(y)}"
    if len(both) < 3:
        ctx.skip(stem, "§4.2 metric vs. metric", "fewer than 3 model pairs")
        return
    r = float(pearsonr(both["mean_x"], both["mean_y"])[0])
    fig, ax = figure(3.6, 2.8)
    ax.scatter(both["mean_x"], both["mean_y"], alpha=0.6, s=14,
               color=plt.get_cmap("viridis")(colour / 2))
    ax.set_xlabel(f"Mean {metric_name(x)}")
    ax.set_ylabel(f"Mean {metric_name(y)}")
    ax.text(0.05, 0.95, f"r coeff.: {r:.2f}", transform=ax.transAxes, va="top")
    fig.tight_layout()
    ctx.write(fig, both.rename(columns={"mean_x": "x_mean", "mean_y": "y_mean"}), stem,
              f"§4.2: mean {metric_name(x)} vs. mean {metric_name(y)} per model pair "
              f"(r = {r:.2f})")


def draw(ctx: Context) -> None:
    aggregates = {m: ctx.table(f"aggregate_{m}.csv") for m in ctx.metrics}
    aggregates = {m: a for m, a in aggregates.items() if a is not None}
    metric = ctx.reference_metric
    if metric not in aggregates:
        ctx.skip("sec4_2_matrices", "§4.2", "no consistency/aggregate_<metric>.csv")
        return
    matrices(ctx, metric, aggregates[metric])
    mean_vs_std(ctx, metric, aggregates[metric])
    others = [m for m in aggregates if m != metric]
    if not others:
        ctx.skip("sec4_2_mean_metric_vs_metric", "§4.2 metric vs. metric",
                 "the run computed one metric: the paper compares CKA linear with CKA RBF 0.4 "
                 "and RSA spearman")
    for k, other in enumerate(others):
        metric_vs_metric(ctx, metric, other, aggregates[metric], aggregates[other], 1 + k % 2)
