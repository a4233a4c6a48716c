"""Figures of the further analyses (DESIGN §1.7): t-SNE model maps, mean vs. spread of each
pair's similarity across datasets, metric vs. metric scatter plots, anchor-model consistency,
consistency of model-set pairs."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pysim.report.figures import UNKNOWN, palette, plt, save, set_margins, short, text_width


def grid(n: int, ncols: int, width: float, height: float, top: float = 0.6,
         extra: float = 2.2):
    """A figure with n panels in rows of ncols (unused panels hidden) and its axes."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols + extra, height * nrows + top),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def legend(fig, colours: Mapping[str, tuple], title: str) -> None:
    """A legend of coloured markers at the right edge of the figure."""
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=short(k))
               for k, c in sorted(colours.items()) if k != UNKNOWN or len(colours) == 1]
    fig.legend(handles=handles, loc="center right", fontsize=7, title=title,
               title_fontsize=8, frameon=False)


def embedding_map(table: pd.DataFrame, labels: Mapping[str, str], names: Mapping[str, str],
                  title: str, category: str, path: Path) -> Path | None:
    """One t-SNE panel per dataset, each model a point coloured by its label of one category."""
    datasets = sorted(table["dataset"].unique())
    if not datasets:
        return None
    colours = palette([labels.get(m, UNKNOWN) for m in table["model_id"]])
    fig, axes = grid(len(datasets), 4, 2.6, 2.5)
    set_margins(fig, 0.3, 0.2, 2.0, 0.6, hspace=0.35, wspace=0.15)
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        sel = table[table["dataset"] == dataset]
        ax.scatter(sel["x"], sel["y"], s=18,
                   c=[colours[labels.get(m, UNKNOWN)] for m in sel["model_id"]])
        ax.set_title(names.get(dataset, dataset), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    legend(fig, colours, category)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def mean_std_scatter(aggregate: pd.DataFrame, pair_labels: Mapping[str, Sequence[str]],
                     title: str, path: Path) -> Path | None:
    """Per model pair: mean vs. std of the similarity across datasets, one panel per category,
    points coloured by the pair's category pair."""
    if aggregate.empty or not pair_labels:
        return None
    key = text_width([k for labs in pair_labels.values() for k in labs], 6) + 0.4
    fig, axes = grid(len(pair_labels), 2, 3.0 + key, 3.0, extra=0.6)
    set_margins(fig, 0.6, 0.5, key, 0.6, hspace=0.45, wspace=(key + 0.4) / 3.0)
    for ax, (category, labs) in zip(axes.flat, pair_labels.items(), strict=False):
        colours = palette(labs)
        ax.scatter(aggregate["mean"], aggregate["std"], s=10, alpha=0.8,
                   c=[colours[k] for k in labs])
        ax.set_title(short(category), fontsize=8)
        ax.set_xlabel("mean similarity across datasets", fontsize=7)
        ax.set_ylabel("std across datasets", fontsize=7)
        ax.tick_params(labelsize=7)
        handles = [plt.Line2D([], [], marker="o", ls="", color=colours[k], label=short(k))
                   for k in sorted(set(labs))]
        ax.legend(handles=handles, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                  frameon=False)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def metric_scatter(panels: Sequence[tuple[str, str, pd.DataFrame, float]],
                   names: Mapping[str, str], title: str, path: Path) -> Path | None:
    """One panel per metric pair: the two metrics' values of every model pair and dataset,
    coloured by dataset; the mean Pearson r over datasets in the panel title."""
    if not panels:
        return None
    datasets = sorted({names.get(d, d) for *_, frame, _ in panels for d in frame["dataset"]})
    colours = palette(datasets)
    fig, axes = grid(len(panels), 3, 3.2, 3.0)
    set_margins(fig, 0.6, 0.6, text_width(datasets) + 0.8, 0.6, hspace=0.6, wspace=0.4)
    for ax, (metric_1, metric_2, frame, r) in zip(axes.flat, panels, strict=False):
        ax.scatter(frame["x"], frame["y"], s=8, alpha=0.7,
                   c=[colours[names.get(d, d)] for d in frame["dataset"]])
        ax.set_xlabel(metric_1, fontsize=6)
        ax.set_ylabel(metric_2, fontsize=6)
        ax.set_title(f"mean r = {r:.2f}" if np.isfinite(r) else "mean r = n/a", fontsize=8)
        ax.tick_params(labelsize=7)
    legend(fig, colours, "dataset")
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def anchor_heatmap(rows: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Anchor x (category: group) median Pearson r of the anchor's row over dataset pairs."""
    if rows.empty:
        return None
    frame = rows.assign(column=rows["category"] + ": " + rows["group"].astype(str))
    wide = frame.pivot_table(index="anchor_model", columns="column", values="pearson_r",
                             aggfunc="median")
    a, g = wide.shape
    label = text_width(list(wide.index)) + 0.1
    bottom = text_width(list(wide.columns)) + 0.1
    fig, ax = plt.subplots(figsize=(min(14.0, 0.45 * g + 1.0) + label + 1.2,
                                    min(14.0, 0.3 * a + 0.4) + bottom + 0.5))
    set_margins(fig, label, bottom, 1.3, 0.4)
    image = ax.imshow(wide.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(g), list(wide.columns), rotation=90, fontsize=7)
    ax.set_yticks(range(a), list(wide.index), fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="median Pearson r")
    return save(fig, path)


def subset_size_boxes(delta: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Appendix C: boxes of |difference| per two consecutive subset sizes, one per metric."""
    if delta.empty:
        return None
    steps = (delta[["samples_per_class_1", "samples_per_class_2"]].drop_duplicates()
             .sort_values(["samples_per_class_1", "samples_per_class_2"]))
    metrics = sorted(delta["metric"].unique())
    colours = palette(metrics)
    width = len(metrics) + 1
    fig, ax = plt.subplots(figsize=(min(14.0, 0.35 * width * len(steps) + 1.0)
                                    + text_width(metrics) + 0.8, 3.2))
    set_margins(fig, 0.7, 0.6, text_width(metrics) + 0.8, 0.4)
    for k, metric in enumerate(metrics):
        values = [delta[(delta["metric"] == metric) & (delta["samples_per_class_1"] == a)
                        & (delta["samples_per_class_2"] == b)]["abs_diff"].dropna().to_numpy()
                  for a, b in steps.itertuples(index=False)]
        boxes = ax.boxplot(values, positions=[s * width + k for s in range(len(steps))],
                           widths=0.8, patch_artist=True, showfliers=True,
                           flierprops={"markersize": 2})
        for box in boxes["boxes"]:
            box.set_facecolor(colours[metric])
    ax.set_xticks([s * width + (len(metrics) - 1) / 2 for s in range(len(steps))],
                  [f"{a} and {b}" for a, b in steps.itertuples(index=False)], fontsize=7)
    ax.set_ylabel("abs. similarity difference", fontsize=7)
    ax.tick_params(labelsize=7)
    legend(fig, {m: colours[m] for m in metrics}, "metric")
    ax.set_title(title, fontsize=9)
    return save(fig, path)


def subset_size_heatmaps(matrices: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Appendix C: one heatmap per subset size (rows) and metric (columns), every matrix in
    the reference's dendrogram order (the table's positions), one colour scale for all."""
    if matrices.empty:
        return None
    sizes = sorted(matrices["samples_per_class"].unique())
    metrics = sorted(matrices["metric"].unique())
    vmin, vmax = float(np.nanmin(matrices["value"])), float(np.nanmax(matrices["value"]))
    fig, axes = plt.subplots(len(sizes), len(metrics), squeeze=False,
                             figsize=(1.6 * len(metrics) + 1.6, 1.5 * len(sizes) + 0.9))
    set_margins(fig, 1.1, 0.2, 0.5, 0.7, hspace=0.12, wspace=0.08)
    image = None
    for (i, n), (j, metric) in itertools.product(enumerate(sizes), enumerate(metrics)):
        ax = axes[i, j]
        sel = matrices[(matrices["samples_per_class"] == n) & (matrices["metric"] == metric)]
        wide = sel.pivot(index="position_1", columns="position_2", values="value")
        image = ax.imshow(wide.to_numpy(dtype=float), vmin=vmin, vmax=vmax, cmap="magma")
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0:
            ax.set_title(metric, fontsize=6)
        if j == 0:
            ax.set_ylabel(f"{n} per class", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, fraction=0.02, pad=0.02)
    fig.suptitle(title, fontsize=9)
    return save(fig, path)


def transformed_mean_std(aggregate: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Appendix D: per model pair the mean vs. std across datasets of tan(S) and arccos(S)."""
    if aggregate.empty or "mean_tan" not in aggregate:
        return None
    fig, axes = grid(2, 2, 3.0, 2.8, extra=0.4)
    set_margins(fig, 0.6, 0.5, 0.2, 0.6, wspace=0.35)
    for ax, name in zip(axes.flat, ("tan", "arccos"), strict=True):
        ax.scatter(aggregate[f"mean_{name}"], aggregate[f"std_{name}"], s=10, alpha=0.6)
        ax.set_xlabel(f"mean {name}(S) across datasets", fontsize=7)
        ax.set_ylabel(f"std {name}(S)", fontsize=7)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def model_set_boxes(table: pd.DataFrame, title: str, path: Path) -> Path | None:
    """One panel per metric: Pearson r over the dataset pairs, one box (with points) per model-set
    pair, pairs in the table's order."""
    if table.empty:
        return None
    table = table.assign(pair=table["set_1"].astype(str) + " vs " + table["set_2"].astype(str))
    pairs = list(dict.fromkeys(table["pair"]))
    metrics = sorted(table["metric"].unique())
    label = text_width(pairs)
    height = 0.35 * len(pairs) + 0.9
    fig, axes = grid(len(metrics), 2, 3.4 + label, height, extra=0.2)
    set_margins(fig, label + 0.1, 0.55, 0.2, 0.6, hspace=0.8 / height,
                wspace=(label + 0.4) / 3.4)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        sel = table[table["metric"] == metric]
        data = [sel[sel["pair"] == p]["pearson_r"].dropna().to_numpy() for p in pairs]
        ax.boxplot(data, orientation="horizontal", widths=0.6, showfliers=False)
        for k, values in enumerate(data):
            jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(values, k + 1 + np.asarray(jitter), s=8, alpha=0.6, color="tab:blue")
        ax.set_yticks(range(1, len(pairs) + 1), pairs, fontsize=7)
        ax.invert_yaxis()  # the first pair on top
        ax.set_xlim(-1.05, 1.05)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_title(metric, fontsize=8)
        ax.set_xlabel("Pearson r over dataset pairs", fontsize=7)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)
