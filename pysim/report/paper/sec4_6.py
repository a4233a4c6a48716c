"""§4.6: dataset x dataset consistency (Pearson r of the model pairs' similarities, from
consistency.csv) for all model pairs, for pairs of two self-supervised models and for
image-text x supervised pairs; datasets ordered by (domain, name), dotted lines between
domains, colour scale -0.44 .. 1 (the study's 4_6 notebook)."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from pysim.report.paper.common import MAKO, Context, figure, metric_name, safe

SUBSETS = (("all", "all", "all", "all model pairs"),
           ("ssl_ssl", "objective", ("Self-Supervised", "Self-Supervised"), "SSL x SSL pairs"),
           ("imgtxt_sup", "objective", ("Image-Text", "Supervised"), "Img-Txt x Sup pairs"))
VMIN, VMAX = -0.44, 1.0


def matrix(table: pd.DataFrame, metric: str, category: str, groups, datasets: list[str]):
    """The symmetric r matrix (diagonal 1) of one group pair over the ordered datasets."""
    sel = table[(table["metric"] == metric) & (table["category"] == category)]
    if category != "all":
        sel = sel[(sel["group_1"] == groups[0]) & (sel["group_2"] == groups[1])]
    pos = {d: k for k, d in enumerate(datasets)}
    out = np.full((len(datasets), len(datasets)), np.nan)
    np.fill_diagonal(out, 1.0)
    for row in sel.itertuples():
        if row.dataset_1 in pos and row.dataset_2 in pos:
            out[pos[row.dataset_1], pos[row.dataset_2]] = row.pearson_r
            out[pos[row.dataset_2], pos[row.dataset_1]] = row.pearson_r
    return out, len(sel)


def draw_one(ctx: Context, metric: str, datasets: list[str], subset) -> None:
    key, category, groups, title = subset
    stem = f"sec4_6_matrix__{safe(metric)}__{key}"
    values, n_rows = matrix(ctx.consistency, metric, category, groups, datasets)
    off_diagonal = values[~np.eye(len(datasets), dtype=bool)]
    if n_rows == 0 or not np.isfinite(off_diagonal).any():
        ctx.skip(stem, f"§4.6 {title}", f"no finite consistency for {title} (too few model "
                 "pairs of these objectives, or no model table)")
        return
    names = [ctx.names.get(d, d) for d in datasets]
    size = 0.32 * len(datasets) + 2.2
    fig, ax = figure(size + 0.6, size)
    image = ax.imshow(values, cmap=MAKO, vmin=VMIN, vmax=VMAX, interpolation="nearest")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    domains = [ctx.domains.get(d, "") for d in datasets]
    starts = [0] + [k for k in range(1, len(domains)) if domains[k] != domains[k - 1]]
    for k in starts[1:]:
        ax.axhline(k - 0.5, color="black", ls=":", lw=2)
        ax.axvline(k - 0.5, color="black", ls=":", lw=2)
    ends = starts[1:] + [len(domains)]
    for start, end in zip(starts, ends, strict=True):
        label = "\n".join(textwrap.wrap(domains[start], 9, break_long_words=False))
        ax.text((start + end - 1) / 2, -0.7, label, ha="center", va="bottom", fontsize=6)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(f"{title} - {metric_name(metric)}", pad=40)
    fig.tight_layout()
    rows = [(i, j, datasets[i], datasets[j], names[i], names[j], values[i, j])
            for i in range(len(datasets)) for j in range(len(datasets))]
    ctx.write(fig, pd.DataFrame(rows, columns=["position_1", "position_2", "dataset_1",
                                               "dataset_2", "name_1", "name_2", "pearson_r"]),
              stem, f"§4.6: dataset x dataset consistency, {title}, {metric_name(metric)}")


def draw(ctx: Context) -> None:
    table = ctx.consistency
    if table is None or table.empty:
        ctx.skip("sec4_6_matrix", "§4.6", "no consistency/consistency.csv")
        return
    datasets = ctx.ordered_datasets()
    for metric in sorted(table["metric"].unique()):
        for subset in SUBSETS:
            draw_one(ctx, metric, datasets, subset)
