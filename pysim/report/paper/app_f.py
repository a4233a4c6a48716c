"""Appendix F: for each anchor model (the paper's six where the run has them, else up to six
of the run's anchors), the consistency of its similarities to each group's models over the
dataset pairs (anchors.csv, Pearson r): boxes per metric, one hue per group in the study's
colours; one figure per category column (the study's app_F notebook, without significance
bars as in its published figures)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pysim.report.paper.common import (
    CATEGORY_TITLES,
    SIZE_ORDER,
    Context,
    box_rows,
    colour,
    draw_boxes,
    figure,
    metric_name,
    short,
)

ANCHORS = ("OpenCLIP_RN50_openai", "simclr-rn50", "resnet50", "OpenCLIP_ViT-L-14_openai",
           "dinov2-vit-large-p14", "vit_large_patch16_224")
NAMES = {"OpenCLIP_RN50_openai": "OpenCLIP RN50", "OpenCLIP_ViT-L-14_openai": "OpenCLIP ViT-L",
         "resnet50": "ResNet-50", "vit_large_patch16_224": "ViT-L", "simclr-rn50": "SimCLR RN50",
         "dino-vit-base-p16": "DINO ViT-B", "dinov2-vit-large-p14": "DINOv2 ViT-L",
         "mae-vit-large-p16": "MAE ViT-L"}  # the study's display names of its anchors
COLUMNS = 3


def anchors_of(rows: pd.DataFrame) -> list[str]:
    have = list(dict.fromkeys(sorted(rows["anchor_model"])))
    paper = [a for a in ANCHORS if a in have]
    return paper or have[:6]


def draw_category(ctx: Context, rows: pd.DataFrame, category: str) -> None:
    sel = rows[rows["category"] == category]
    anchors = anchors_of(sel)
    groups = sorted(sel["group"].unique(), key=lambda g: (
        SIZE_ORDER.index(g) if g in SIZE_ORDER else len(SIZE_ORDER), short(g)))
    metrics = sorted(sel["metric"].unique())
    ncols = min(COLUMNS, len(anchors))
    nrows = -(-len(anchors) // ncols)
    fig, axes = figure(3.6 * ncols, 2.7 * nrows + 0.5, nrows=nrows, ncols=ncols,
                       squeeze=False)
    width = 0.8 / len(groups)
    out = []
    labels = ctx.labels.get(category) or {}
    for k, ax in enumerate(axes.flat):
        if k >= len(anchors):
            ax.set_visible(False)
            continue
        anchor = anchors[k]
        mine = sel[sel["anchor_model"] == anchor]
        boxes, positions, colours = [], [], []
        for (metric, group), rows in mine.groupby(["metric", "group"], sort=True):
            stats = box_rows({short(group): rows["pearson_r"].to_numpy()})
            g = groups.index(group)
            boxes.append(stats.assign(anchor_model=anchor, metric=metric, group=group))
            positions.append(metrics.index(metric) - 0.4 + width * (g + 0.5))
            colours.append(colour(group, g))
        if boxes:
            stats = pd.concat(boxes, ignore_index=True)
            draw_boxes(ax, stats, positions, width=width * 0.9, facecolors=colours)
            out.append(stats)
        ax.set_xticks(range(len(metrics)), [metric_name(m) for m in metrics])
        ax.set_xlim(-0.5, len(metrics) - 0.5)
        for mid in range(len(metrics) - 1):
            ax.axvline(mid + 0.5, ls=":", color="black", alpha=0.5, lw=1.5)
        own = short(labels.get(anchor, ""))
        name = NAMES.get(anchor, anchor)
        ax.set_title(f"{name} ({own})" if own else name, color=colour(own, 0) if own
                     else "black", fontsize=8)
        if k % ncols == 0:
            ax.set_ylabel("Correlation coefficient")
    for g, group in enumerate(groups):
        fig.axes[0].plot([], [], marker="s", ls="", color=colour(group, g), label=short(group))
    fig.legend(loc="lower center", ncols=len(groups), frameon=False)
    width, height = fig.get_size_inches()  # fixed margins: tight layout would draw twice
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.15 / width, bottom=0.9 / height,
                        top=1 - 0.3 / height, hspace=0.45, wspace=0.25)
    title = CATEGORY_TITLES.get(category, category)
    data = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    ctx.write(fig, data, f"appF_anchors__{category}",
              f"App. F: consistency of anchor models' similarities per {title.lower()} group")


def draw(ctx: Context) -> None:
    rows = ctx.table("anchors.csv")
    if rows is None:
        ctx.skip("appF_anchors", "App. F", "no anchor rows (consistency/anchors.csv empty: a "
                 "group needs at least 2 other models besides the anchor)")
        return
    rows = rows[(rows["category"] != "all") & np.isfinite(rows["pearson_r"])]
    for category in CATEGORY_TITLES:
        if (rows["category"] == category).any():
            draw_category(ctx, rows, category)
