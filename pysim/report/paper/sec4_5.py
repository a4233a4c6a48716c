"""§4.5: per category column, the consistency r (Pearson, consistency.csv) of every dataset
pair for each group pair, one box per group pair sorted by median (descending), each box
shaded from one group's colour to the other's; the median (dotted) and interquartile band
(grey) of the r over all model pairs behind them; y from -0.6 to 1.05 (the study's 4_5
notebook, its four-category figure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap

from pysim.report.paper.common import (
    CATEGORY_TITLES,
    Context,
    box_rows,
    colour,
    draw_boxes,
    figure,
    metric_name,
    safe,
    short,
)


def box_table(table: pd.DataFrame, metric: str, category: str) -> pd.DataFrame:
    """The drawn statistics per group pair (sorted by median, descending) and the all-pairs
    quartiles (columns all_q25, all_median, all_q75)."""
    sel = table[(table["metric"] == metric) & (table["category"] == category)]
    groups = {}
    for (g1, g2), rows in sel.groupby(["group_1", "group_2"], sort=True):
        groups[f"{short(g1)}, {short(g2)}"] = rows["pearson_r"].to_numpy(dtype=np.float64)
    medians = {k: np.nanmedian(v) for k, v in groups.items() if np.isfinite(v).any()}
    order = sorted(medians, key=lambda k: -medians[k])  # stable: ties keep the sorted order
    stats = box_rows({k: groups[k] for k in order})
    everything = table[(table["metric"] == metric) & (table["category"] == "all")]["pearson_r"]
    q25, q50, q75 = everything.dropna().quantile([0.25, 0.5, 0.75]).to_numpy()
    return stats.assign(all_q25=q25, all_median=q50, all_q75=q75)


def draw_category(ctx: Context, metric: str, category: str) -> None:
    stats = box_table(ctx.consistency, metric, category)
    stem = f"sec4_5_boxplot__{safe(metric)}__{category}"
    if stats.empty:
        ctx.skip(stem, "§4.5", f"no finite consistency for {category} group pairs")
        return
    fig, ax = figure(0.9 * len(stats) + 2.0, 3.2)
    ax.axhline(stats["all_median"].iloc[0], color="grey", ls=":", lw=3, alpha=0.75, zorder=0)
    ax.axhspan(stats["all_q25"].iloc[0], stats["all_q75"].iloc[0], fc="lightgrey", alpha=0.75,
               zorder=0)
    positions = np.arange(len(stats))
    draw_boxes(ax, stats, positions, width=0.6, facecolors=["none"] * len(stats))
    for k, (pos, row) in enumerate(zip(positions, stats.itertuples(), strict=True)):
        first, second = row.box.split(", ")
        cmap = LinearSegmentedColormap.from_list("pair", [colour(first, 2 * k),
                                                          colour(second, 2 * k + 1)])
        ax.imshow(np.linspace(0, 1, 64).reshape(1, -1), aspect="auto", cmap=cmap, zorder=1,
                  extent=(pos - 0.3, pos + 0.3, row.q1, row.q3))
        for i, (label, y) in enumerate(((first, -0.06), (second, -0.15))):
            ax.text(pos, y, label, color=colour(label, 2 * k + i), ha="center", va="top",
                    transform=ax.get_xaxis_transform())
    ax.set_xticks(positions, [""] * len(stats))
    ax.set_xlim(-0.75, len(stats) - 0.25)
    ax.set_ylim(-0.6, 1.05)
    ax.set_ylabel("Correlation coeff.")
    ax.set_title(f"{CATEGORY_TITLES.get(category, category)} - {metric_name(metric)}")
    fig.subplots_adjust(left=0.9 / fig.get_figwidth(), right=0.98, bottom=0.2, top=0.9)
    ctx.write(fig, stats.rename(columns={"box": "group_pair"}), stem,
              f"§4.5: consistency per {CATEGORY_TITLES.get(category, category).lower()} group "
              f"pair, {metric_name(metric)}; grey: all model pairs' median and IQR")


def draw(ctx: Context) -> None:
    table = ctx.consistency
    if table is None or table.empty:
        ctx.skip("sec4_5_boxplot", "§4.5", "no consistency/consistency.csv")
        return
    for metric in sorted(table["metric"].unique()):
        for category in CATEGORY_TITLES:
            if (table["category"] == category).any():
                draw_category(ctx, metric, category)
