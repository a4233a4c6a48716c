"""§4.4: each model pair's similarity on one dataset against another, for every pair of three
datasets: all pairs with one regression line and r (top row), pairs within one training
objective coloured by it, each with its own line and r (bottom row); Pearson r, axes [0, 1]
(the study's 4_4 notebook)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from scipy.stats import pearsonr

from pysim.report.paper.common import Context, colour, figure, metric_name, pair_frame, safe
from pysim.report.paper.common import short as short_label

DATASETS = ("imagenet-subset-10k", "wds_vtab_flowers", "wds_vtab_pcam")
MARKERS = ("o", "s", "^", "D", "v")


def r_of(x, y) -> float:
    return float(pearsonr(x, y)[0]) if len(x) > 2 and np.ptp(x) > 0 and np.ptp(y) > 0 \
        else float("nan")


def regression(ax, x, y, line: str, points: str, marker: str = "o", size: float = 7) -> None:
    ax.scatter(x, y, s=size, color=points, alpha=0.8, marker=marker)
    if len(x) > 1 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.array([x.min(), x.max()])
        ax.plot(grid, slope * grid + intercept, ls="--", lw=2, color=line)


def pairs(ctx: Context, metric: str, datasets: list[str]) -> pd.DataFrame:
    """Per model pair and dataset (long): the pair's similarity and objective pair."""
    objective = ctx.labels.get("objective") or {}
    frames = []
    for dataset in datasets:
        frame = pair_frame(ctx.matrices[dataset][metric], ctx.model_ids[dataset])
        frame["dataset"] = dataset
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    a = frame["model_1"].map(lambda m: short_label(objective.get(m, "unknown")))
    b = frame["model_2"].map(lambda m: short_label(objective.get(m, "unknown")))
    frame["objective_1"] = [min(p, q) for p, q in zip(a, b, strict=True)]
    frame["objective_2"] = [max(p, q) for p, q in zip(a, b, strict=True)]
    return frame


def draw_metric(ctx: Context, metric: str, datasets: list[str]) -> None:
    long = pairs(ctx, metric, datasets)
    combos = list(combinations(datasets, 2))
    fig, axes = figure(3.0 * len(combos) + 0.6, 5.2, nrows=2, ncols=len(combos), squeeze=False,
                       sharex=True, sharey=True)
    rows = []
    for j, (d1, d2) in enumerate(combos):
        wide = long[long["dataset"] == d1].merge(
            long[long["dataset"] == d2][["model_1", "model_2", "value"]],
            on=["model_1", "model_2"], suffixes=("_x", "_y")).dropna(subset=["value_x",
                                                                               "value_y"])
        x, y = wide["value_x"].to_numpy(), wide["value_y"].to_numpy()
        top, bottom = axes[0, j], axes[1, j]
        regression(top, x, y, "dimgray", "darkgrey")
        top.legend([Line2D([], [], color="darkgrey", marker="o", ls="")],
                   [f"r coeff.: {r_of(x, y):.2f}"], loc="lower right", frameon=False)
        within = wide["objective_1"] == wide["objective_2"]
        bottom.scatter(x[~within], y[~within], s=5, color="darkgrey", alpha=0.4)
        handles, labels = [], []
        for k, group in enumerate(sorted(wide.loc[within, "objective_1"].unique())):
            sel = (wide["objective_1"] == group) & within
            c = colour(group, k)
            marker = MARKERS[k % len(MARKERS)]
            regression(bottom, x[sel], y[sel], c, c, marker)
            handles.append(Line2D([], [], color=c, marker=marker, ls=""))
            labels.append(f"r {group}: {r_of(x[sel], y[sel]):.2f}")
        if handles:
            bottom.legend(handles, labels, loc="lower right", frameon=False)
        for ax in (top, bottom):
            ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xticks=[0, 0.5, 1],
                   yticks=[0, 0.5, 1])
            ax.set_ylabel(ctx.names.get(d2, d2))
        bottom.set_xlabel(ctx.names.get(d1, d1))
        rows.append(wide.assign(dataset_1=d1, dataset_2=d2, within_objective=within)
                    [["dataset_1", "dataset_2", "model_1", "model_2", "objective_1",
                      "objective_2", "within_objective", "value_x", "value_y"]])
    axes[0, 0].text(-0.3, 0.5, "All model pairs", transform=axes[0, 0].transAxes,
                    rotation=90, va="center", ha="right")
    axes[1, 0].text(-0.3, 0.5, "Within training objective", transform=axes[1, 0].transAxes,
                    rotation=90, va="center", ha="right")
    fig.subplots_adjust(left=0.6 / fig.get_figwidth() + 0.08, right=0.98, bottom=0.1,
                        top=0.97, hspace=0.1, wspace=0.15)
    ctx.write(fig, pd.concat(rows, ignore_index=True), f"sec4_4_scatter__{safe(metric)}",
              f"§4.4: pair similarities of two datasets against each other, "
              f"{metric_name(metric)} (Pearson r)")


def draw(ctx: Context) -> None:
    datasets = ctx.pick_datasets(DATASETS, 3)
    if len(datasets) < 2:
        ctx.skip("sec4_4_scatter", "§4.4", "needs at least two datasets")
        return
    if not ctx.labels.get("objective"):
        ctx.skip("sec4_4_scatter", "§4.4", "needs the models' training objectives "
                 "(model table)")
        return
    for metric in ctx.metrics:
        if all(metric in ctx.matrices[d] for d in datasets):
            draw_metric(ctx, metric, datasets)
