"""The report's figures (matplotlib, Agg backend, headless): clustered similarity heatmaps,
dataset x dataset consistency, consistency per category pair, similarity vs. accuracy gap."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from scipy.cluster.hierarchy import leaves_list, linkage  # noqa: E402
from scipy.spatial.distance import squareform  # noqa: E402

from pysim.io import atomic_path  # noqa: E402

DPI = 80
UNKNOWN = "unknown"


def safe_name(*parts: str) -> str:
    """A file name from free text (dataset ids, metric ids)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(parts)).strip("_") + ".png"


def save(fig, path: str | os.PathLike) -> Path:
    """Write a figure as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)  # fixed layouts: "tight" would draw twice
    plt.close(fig)
    return Path(path)


MAX_LABEL = 32  # characters of a name on a figure; longer ones end in an ellipsis


def short(text: object, limit: int = MAX_LABEL) -> str:
    """A name as drawn on a figure: at most `limit` characters (the full name stays in the
    hover text and the tables)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def set_margins(fig, left: float, bottom: float, right: float, top: float, **space) -> None:
    """Fixed subplot margins in inches (cheaper than tight layout, which draws the figure);
    margins that would leave no room for the axes are scaled down to leave 20% of each side."""
    width, height = fig.get_size_inches()
    if left + right > 0.8 * width:
        left, right = (0.8 * width * v / (left + right) for v in (left, right))
    if bottom + top > 0.8 * height:
        bottom, top = (0.8 * height * v / (bottom + top) for v in (bottom, top))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, **space)


def text_width(labels: Sequence[str], fontsize: float = 7) -> float:
    """Rough width in inches of the longest label."""
    return 0.6 * fontsize / 72 * max((len(short(t)) for t in labels), default=0) + 0.1


def palette(values: Sequence[str]) -> dict[str, tuple]:
    """A stable colour per value (sorted; `unknown` grey)."""
    cmap = plt.get_cmap("tab10")
    names = sorted(v for v in set(values) if v != UNKNOWN)
    out = {v: cmap(k % 10) for k, v in enumerate(names)}
    out[UNKNOWN] = (0.7, 0.7, 0.7, 1.0)
    return out


def cluster_order(matrix: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering on the distance max(S) - S."""
    m = matrix.shape[0]
    if m < 3:
        return np.arange(m)
    sim = np.nan_to_num((matrix + matrix.T) / 2, nan=np.nanmin(matrix) if np.isfinite(
        matrix).any() else 0.0)
    dist = sim.max() - sim
    np.fill_diagonal(dist, 0.0)
    return leaves_list(linkage(squareform(np.maximum(dist, 0), checks=False), "average"))


def similarity_heatmap(matrix: np.ndarray, model_ids: Sequence[str],
                       objectives: Mapping[str, str], title: str, path: Path) -> Path:
    """Clustered similarity heatmap; a colour strip on both axes marks each model's objective."""
    order = cluster_order(matrix)
    ids = [model_ids[k] for k in order]
    objs = [short(objectives.get(m, UNKNOWN)) for m in ids]
    colours = palette(objs)
    m = len(ids)
    labelled = m <= 40
    side = min(12.0, 2.5 + 0.14 * m)                      # heatmap edge, inches
    ids = [short(m) for m in ids]
    label = 0.07 * max(map(len, ids)) + 0.2 if labelled else 0.1
    legend = 0.25 * (1 + -(-len(set(objs)) // 3))
    width, height = 0.5 + side + label + 1.2, 0.6 + side + label + legend
    fig = plt.figure(figsize=(width, height))
    box = [0.5 / width, (label + legend) / height, side / width, side / height]
    ax = fig.add_axes(box)
    strip_top = fig.add_axes([box[0], box[1] + box[3] + 0.05 / height, box[2], 0.15 / height])
    strip_left = fig.add_axes([box[0] - 0.2 / width, box[1], 0.15 / width, box[3]])
    cbar = fig.add_axes([box[0] + box[2] + (label + 0.2) / width, box[1], 0.15 / width, box[3]])
    image = ax.imshow(matrix[np.ix_(order, order)], cmap="viridis", interpolation="nearest",
                      aspect="auto")
    rgb = np.array([colours[o] for o in objs])[None]
    strip_top.imshow(rgb, aspect="auto")
    strip_left.imshow(rgb.transpose(1, 0, 2), aspect="auto")
    for s in (strip_top, strip_left):
        s.set_xticks([])
        s.set_yticks([])
    if labelled:
        ax.set_xticks(range(m), ids, rotation=90, fontsize=7)
        ax.set_yticks(range(m), ids, fontsize=7)
        ax.yaxis.tick_right()
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    strip_top.set_title(title, fontsize=9)
    fig.colorbar(image, cax=cbar)
    handles = [Patch(color=colours[o], label=o) for o in sorted(set(objs))]
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 0.0), ncol=3,
               fontsize=7, title="objective", title_fontsize=8, frameon=False)
    return save(fig, path)


def consistency_heatmap(wide: pd.DataFrame, names: Mapping[str, str], title: str,
                        path: Path) -> Path:
    """Dataset x dataset Pearson r of one metric (all model pairs), values annotated if few."""
    datasets = list(wide["dataset"])
    values = wide.set_index("dataset").loc[datasets, datasets].to_numpy(dtype=float)
    d = len(datasets)
    side = min(12.0, 2.0 + 0.3 * d)
    labels = [short(names.get(ds, ds)) for ds in datasets]
    label = text_width(labels)
    fig, ax = plt.subplots(figsize=(side + label + 1.6, side + label + 0.5))
    set_margins(fig, label + 0.1, label + 0.1, 1.4, 0.4)
    image = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(d), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(d), labels, fontsize=7)
    if d <= 12:
        for i in range(d):
            for j in range(d):
                if np.isfinite(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(values[i, j]) > 0.6 else "black")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, label="Pearson r")
    return save(fig, path)


def category_distributions(table: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Per category column: Pearson r over dataset pairs, one box (with points) per group pair."""
    table = table[table["category"] != "all"]
    columns = [c for c in dict.fromkeys(table["category"])]
    if not columns:
        return None
    heights = [max(1.0, 0.35 * table[table["category"] == c][["group_1", "group_2"]]
                   .drop_duplicates().shape[0]) + 0.8 for c in columns]
    labels_all = [f"{a} x {b}" for a, b in zip(table["group_1"], table["group_2"], strict=True)]
    label = text_width(labels_all)
    fig, axes = plt.subplots(len(columns), 1, figsize=(5.5 + label, sum(heights) + 1.1),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    set_margins(fig, label + 0.1, 0.55, 0.2, 0.75, hspace=0.8 / np.mean(heights))
    for ax, column in zip(axes[:, 0], columns, strict=True):
        sel = table[table["category"] == column]
        groups = sel.groupby(["group_1", "group_2"], sort=True)["pearson_r"]
        labels = [f"{a} x {b}" for a, b in groups.groups]
        data = [g.dropna().to_numpy() for _, g in groups]
        ax.boxplot(data, vert=False, widths=0.6, showfliers=False)
        for k, values in enumerate(data):
            jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(values, k + 1 + np.asarray(jitter), s=8, alpha=0.6, color="tab:blue")
        ax.set_yticks(range(1, len(labels) + 1), labels, fontsize=7)
        ax.set_xlim(-1.05, 1.05)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_title(column, fontsize=9)
    axes[-1, 0].set_xlabel("consistency across dataset pairs (Pearson r)")
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def gap_scatter(panels: Sequence[tuple[str, pd.DataFrame, float]], title: str,
                path: Path) -> Path | None:
    """One panel per dataset: pair similarity vs. |accuracy gap|, Pearson r in the title."""
    panels = [p for p in panels if len(p[1])]
    if not panels:
        return None
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.6 * nrows + 0.5),
                             squeeze=False)
    set_margins(fig, 0.6, 0.5, 0.15, 0.55, hspace=0.55, wspace=0.3)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (name, pairs, r) in zip(axes.flat, panels, strict=False):
        ax.scatter(pairs["similarity"], pairs["gap"], s=10, alpha=0.7)
        ax.set_title(f"{name}\nr = {r:.2f}" if np.isfinite(r) else f"{name}\nr = n/a",
                     fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("similarity", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("|accuracy gap|", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)
