"""Appendix C: how CKA depends on the number of ImageNet images per class. The absolute change
of each model pair's similarity between consecutive subset sizes (boxes per size pair, one
hue per metric), and every size's matrix in the reference size's dendrogram order on one
colour scale (the study's app_C notebook; its CKA metrics only). From consistency/
subset_size_delta.csv and subset_size_matrices.csv."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pysim.report.paper.common import (
    ROCKET,
    Context,
    box_rows,
    draw_boxes,
    figure,
    metric_name,
)

REASON = ("needs the ImageNet subset-size tables (consistency/subset_size_delta.csv): list "
          "wds/imagenet1k or an imagenet-subset-<N>k with subset sizes on")


def cka_only(metrics) -> list[str]:
    """The notebook keeps the CKA metrics; every metric when the run has none."""
    metrics = sorted(set(metrics))
    return [m for m in metrics if m.startswith("cka")] or metrics


def delta_table(delta: pd.DataFrame) -> pd.DataFrame:
    """Box statistics per (size pair, metric): size pairs ascending, metrics sorted."""
    metrics = cka_only(delta["metric"])
    out = []
    pairs = sorted({(int(a), int(b)) for a, b in zip(delta["samples_per_class_1"],
                                                    delta["samples_per_class_2"],
                                                    strict=True)})
    for a, b in pairs:
        for metric in metrics:
            sel = delta[(delta["metric"] == metric) & (delta["samples_per_class_1"] == a)
                        & (delta["samples_per_class_2"] == b)]
            stats = box_rows({f"{a} and {b}": sel["abs_diff"].to_numpy()})
            if not stats.empty:
                out.append(stats.assign(metric=metric, samples_per_class_1=a,
                                        samples_per_class_2=b))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def draw_delta(ctx: Context, delta: pd.DataFrame) -> None:
    stats = delta_table(delta)
    boxes = list(dict.fromkeys(stats["box"]))
    metrics = list(dict.fromkeys(stats["metric"]))
    width = 0.8 / len(metrics)
    fig, ax = figure(max(5.0, 1.4 * len(boxes) + 2.5), 3.6)
    cmap = plt.get_cmap("tab10")
    for k, metric in enumerate(metrics):
        sel = stats[stats["metric"] == metric]
        positions = [boxes.index(b) - 0.4 + width * (k + 0.5) for b in sel["box"]]
        draw_boxes(ax, sel, positions, width=width * 0.9, facecolors=[cmap(k)] * len(sel))
        ax.plot([], [], marker="s", ls="", color=cmap(k), label=metric_name(metric))
    ax.set_xticks(range(len(boxes)), boxes)
    ax.set_xlim(-0.6, len(boxes) - 0.4)
    ax.set_ylabel("Abs. Similarity Difference")
    ax.legend(frameon=True)
    fig.tight_layout()
    ctx.write(fig, stats.rename(columns={"box": "compared_subsets"}), "appC_delta_box",
              "App. C: |similarity difference| of each model pair between consecutive "
              "ImageNet subset sizes (images per class)")


def draw_matrices(ctx: Context, matrices: pd.DataFrame) -> None:
    metrics = cka_only(matrices["metric"])
    sizes = sorted(int(s) for s in matrices["samples_per_class"].unique())
    sel = matrices[matrices["metric"].isin(metrics)]
    vmin, vmax = float(sel["value"].min()), float(sel["value"].max())
    fig, axes = figure(1.9 * len(metrics) + 0.8, 1.9 * len(sizes), nrows=len(sizes),
                       ncols=len(metrics), squeeze=False)
    for i, size in enumerate(sizes):
        for j, metric in enumerate(metrics):
            cells = sel[(sel["samples_per_class"] == size) & (sel["metric"] == metric)]
            n = int(max(cells["position_1"].max(), cells["position_2"].max())) + 1
            grid = np.full((n, n), np.nan)
            grid[cells["position_1"], cells["position_2"]] = cells["value"]
            ax = axes[i, j]
            ax.imshow(grid, cmap=ROCKET, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(metric_name(metric), fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{size} samples per class", fontsize=8)
    fig.tight_layout()
    ctx.write(fig, sel.reset_index(drop=True), "appC_matrices",
              f"App. C: similarity matrices per subset size, ordered by the dendrogram of "
              f"{metric_name(sel['order_metric'].iloc[0])} at 10 samples per class")


def draw(ctx: Context) -> None:
    delta = ctx.table("subset_size_delta.csv")
    if delta is None:
        ctx.skip("appC_delta_box", "App. C", REASON)
    else:
        draw_delta(ctx, delta)
    matrices = ctx.table("subset_size_matrices.csv")
    if matrices is None:
        ctx.skip("appC_matrices", "App. C", REASON)
    else:
        draw_matrices(ctx, matrices)
