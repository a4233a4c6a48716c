"""What every paper-figure file shares: the study's names and colours (so that our panels lie
beside the paper's), the run's data in one place, and writing one panel as PNG, PDF and the
CSV of the values behind its marks (atomically, deterministic: no time stamps in the files)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.cbook import boxplot_stats  # noqa: E402
from seaborn import cm as seaborn_cm

from pysim.io import atomic_path  # noqa: E402

DPI = 90
FOLDER = "paper_figures"
# the study's short labels of the category values and their colours (its constants module)
SHORT = {"Image-Text": "Img-Txt", "Self-Supervised": "SSL", "Supervised": "Sup",
         "Convolutional": "CNN", "Transformer": "TX", "ImageNet1k": "IN1k",
         "ImageNet21k": "IN21k", "Large DS": "Large", "XLarge DS": "XLarge"}
COLOURS = {"Img-Txt": "#1f77b4", "SSL": "#ff7f0e", "Sup": "#2ca02c", "CNN": "#d62728",
           "TX": "#9467bd", "IN1k": "#8c564b", "IN21k": "#e377c2", "Large": "#7f7f7f",
           "XLarge": "#bcbd22", "small": "#17becf", "medium": "#66c2a5", "large": "#fc8d62",
           "xlarge": "#8da0cb"}
SIZE_ORDER = ["small", "medium", "large", "xlarge"]
CATEGORY_TITLES = {"objective": "Training objective", "architecture_class": "Architecture",
                   "dataset_class": "Training data", "size_class": "Model size"}
METRIC_NAMES = {"cka_kernel_rbf_unbiased_sigma_0.2": "CKA RBF 0.2",
                "cka_kernel_rbf_unbiased_sigma_0.4": "CKA RBF 0.4",
                "cka_kernel_rbf_unbiased_sigma_0.6": "CKA RBF 0.6",
                "cka_kernel_rbf_unbiased_sigma_0.8": "CKA RBF 0.8",
                "cka_kernel_linear_unbiased": "CKA linear",
                "rsa_method_correlation_corr_method_pearson": "RSA pearson",
                "rsa_method_correlation_corr_method_spearman": "RSA spearman"}
REFERENCE_METRIC = "cka_kernel_linear_unbiased"
DOMAIN_COLOURS = {"Natural (multi-domain)": "#8da0cb", "Natural (single-domain)": "#e78ac3",
                  "Specialized": "#a6d854", "Structured": "#b3b3b3"}
# the notebooks' colour maps: seaborn's `rocket` and `mako`
ROCKET, MAKO = seaborn_cm.rocket, seaborn_cm.mako
FONT = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8,
        "ytick.labelsize": 8, "legend.fontsize": 8, "svg.hashsalt": "pysim",
        "pdf.compression": 6}


def short(label: str) -> str:
    """The study's short label of a category value (itself when it has none)."""
    return SHORT.get(label, label)


def colour(label: str, fallback: int = 0) -> str:
    """The study's colour of a (short) label; a tab10 colour for labels it does not know."""
    return COLOURS.get(short(label)) or matplotlib.colors.to_hex(plt.get_cmap("tab10")(
        fallback % 10))


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


@dataclass
class Panel:
    """One written figure (stem under paper_figures/) or, with `reason`, one that is not."""

    stem: str
    caption: str
    reason: str | None = None


@dataclass
class Context:
    """The run's data as the figures need it (built once by the report)."""

    out_dir: Path
    matrices: dict[str, dict[str, np.ndarray]]  # dataset -> metric -> m x m
    model_ids: dict[str, list[str]]  # dataset -> row order
    names: dict[str, str]
    domains: dict[str, str]
    labels: dict[str, dict[str, str]]  # category column -> model -> label (None: no table)
    probes: dict[str, dict[str, float]]  # dataset id -> model -> test_acc1
    consistency: pd.DataFrame | None
    cdir: Path
    sim_vs_gap: pd.DataFrame | None = None
    panels: list[Panel] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        return sorted({m for mats in self.matrices.values() for m in mats})

    @property
    def reference_metric(self) -> str | None:
        metrics = self.metrics
        if REFERENCE_METRIC in metrics:
            return REFERENCE_METRIC
        return metrics[0] if metrics else None

    def ordered_datasets(self) -> list[str]:
        """Datasets by (domain, name), the study's order of §4.6."""
        return sorted(self.matrices, key=lambda d: (self.domains.get(d, ""),
                                                    self.names.get(d, d)))

    def pick_datasets(self, wanted: Sequence[str], n: int) -> list[str]:
        """The notebook's datasets where the run has them, filled up in domain order."""
        have = self.ordered_datasets()
        keys = {d.replace("/", "_"): d for d in have}
        chosen = [keys[w] for w in wanted if w in keys]
        chosen += [d for d in have if d not in chosen]
        return chosen[:n]

    def table(self, name: str) -> pd.DataFrame | None:
        path = self.cdir / name
        if not path.is_file() or path.stat().st_size == 0:
            return None
        frame = pd.read_csv(path)
        return None if frame.empty else frame

    def skip(self, stem: str, caption: str, reason: str) -> None:
        self.panels.append(Panel(stem, caption, reason))

    def write(self, fig, data: pd.DataFrame, stem: str, caption: str) -> None:
        """Save one panel as <stem>.png, <stem>.pdf and <stem>.csv (its data) and close it."""
        folder = self.out_dir / FOLDER
        with atomic_path(folder / f"{stem}.png") as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
        with atomic_path(folder / f"{stem}.pdf") as tmp:
            fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "ModDate": None,
                                                     "Producer": None, "Creator": None})
        plt.close(fig)
        with atomic_path(folder / f"{stem}.csv") as tmp:
            data.to_csv(tmp, index=False, float_format="%.17g")
        self.panels.append(Panel(stem, caption))


def safe(text: str) -> str:
    """A file-name part from free text."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")


def pair_frame(matrix: np.ndarray, model_ids: Sequence[str]) -> pd.DataFrame:
    """Every unordered model pair (upper triangle, k=1) with its value, keyed by the sorted
    pair so that two datasets' frames align."""
    rows, cols = np.triu_indices(len(model_ids), 1)
    first = [model_ids[i] for i in rows]
    second = [model_ids[j] for j in cols]
    lo = [min(a, b) for a, b in zip(first, second, strict=True)]
    hi = [max(a, b) for a, b in zip(first, second, strict=True)]
    return pd.DataFrame({"model_1": lo, "model_2": hi,
                         "value": np.asarray(matrix, dtype=np.float64)[rows, cols]})


def box_rows(values: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per box (key, in the given order) the statistics a matplotlib/seaborn box draws:
    quartiles (linear interpolation), whiskers at the furthest points within 1.5 IQR."""
    rows = []
    for key, vals in values.items():
        vals = np.asarray(vals, dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        if len(vals) == 0:
            continue
        stats = boxplot_stats(vals, whis=1.5)[0]
        rows.append({"box": key, "n": len(vals), "whisker_low": stats["whislo"],
                     "q1": stats["q1"], "median": stats["med"], "q3": stats["q3"],
                     "whisker_high": stats["whishi"], "mean": stats["mean"]})
    return pd.DataFrame(rows)


def draw_boxes(ax, stats: pd.DataFrame, positions: Sequence[float], width: float = 0.6,
               facecolors: Sequence | None = None) -> None:
    """Boxes from precomputed statistics (fliers omitted)."""
    items = [{"med": r.median, "q1": r.q1, "q3": r.q3, "whislo": r.whisker_low,
              "whishi": r.whisker_high, "fliers": []} for r in stats.itertuples()]
    parts = ax.bxp(items, positions=list(positions), widths=width, patch_artist=True,
                   showfliers=False, medianprops={"color": "black"})
    for k, box in enumerate(parts["boxes"]):
        box.set_facecolor(facecolors[k] if facecolors is not None else "white")


def figure(width: float, height: float, **kwargs):
    """A figure of width x height inches (the style: FONT, set by the caller's rc_context)."""
    return plt.subplots(figsize=(width, height), **kwargs)
