"""Sensitivity of the similarity matrices to the ImageNet subset size (DESIGN §1.7, Appendix C).

As the study's Appendix C notebook: per metric and model pair (upper triangle, k=1) the
absolute difference of the similarity between consecutive subset sizes (sizes ascending;
`delta_table`), and every size's matrix for heatmaps whose rows and columns follow the
dendrogram of the reference size's matrix of one metric (CKA linear if present; seaborn
clustermap's defaults: average linkage on the Euclidean distances between the matrix rows,
diagonal set to 1; `matrices_table`).

pysim's extra (`subset_size_table`): each size's matrix compared with the N = 10 reference by
Pearson's r between the upper triangles of the two matrices of each metric.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.cluster import hierarchy

from pysim.config import subset_per_class
from pysim.errors import InputError
from pysim.io import Similarities, read_similarities, write_csv

COLUMNS = ("metric", "samples_per_class", "pearson_r")
DELTA_COLUMNS = ("metric", "samples_per_class_1", "samples_per_class_2", "model_1", "model_2",
                 "abs_diff")
MATRIX_COLUMNS = ("metric", "samples_per_class", "order_metric", "position_1", "position_2",
                  "model_1", "model_2", "value")
REFERENCE = 10  # images per class of the study's imagenet-subset-10k
ORDER_METRIC = "cka_kernel_linear_unbiased"  # the notebook's dendrogram


def _by_size(paths: Sequence[str | os.PathLike]) -> dict[int, Similarities]:
    """Similarity files keyed by their images per class (from the dataset id)."""
    out: dict[int, Similarities] = {}
    for path in paths:
        sims = read_similarities(path)
        try:
            n = subset_per_class(sims.dataset)
        except ValueError:
            raise InputError(f"{path}: dataset '{sims.dataset}' is not an "
                             "imagenet-subset-<N>k") from None
        if n in out:
            raise InputError(f"{path}: a second similarity file of '{sims.dataset}'")
        out[n] = sims
    return out


def _upper(sims: Similarities, metric: str, model_ids: list[str], where: str) -> np.ndarray:
    """Upper triangle (k=1) of one metric's matrix with rows in `model_ids` order."""
    if sorted(sims.model_ids) != sorted(model_ids):
        raise InputError(f"{where}: models differ from the reference's")
    if metric not in sims.matrices:
        raise InputError(f"{where}: no matrix of metric '{metric}'")
    order = [sims.model_ids.index(m) for m in model_ids]
    matrix = sims.matrices[metric][np.ix_(order, order)]
    return matrix[np.triu_indices(len(model_ids), k=1)]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r over the pairs finite on both sides; NaN under 2 pairs or a constant side."""
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 2:
        return math.nan
    a, b = a[keep] - a[keep].mean(), b[keep] - b[keep].mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else math.nan


def subset_size_table(paths: Sequence[str | os.PathLike], reference: int = REFERENCE
                      ) -> pd.DataFrame:
    """One row per (metric, samples per class): r with the reference size's matrix."""
    return r_table(_by_size(paths), reference)


def r_table(by_size: dict[int, Similarities], reference: int) -> pd.DataFrame:
    """pysim's table: r of every size's upper triangle with the reference's, per metric."""
    if reference not in by_size:
        raise InputError(f"no similarity file of imagenet-subset-{reference}k (the reference) "
                         f"among {len(by_size)} given")
    ref = by_size[reference]
    rows = []
    for metric in ref.matrices:
        want = _upper(ref, metric, ref.model_ids, ref.dataset)
        for n in sorted(by_size):
            got = _upper(by_size[n], metric, ref.model_ids, by_size[n].dataset)
            rows.append((metric, n, pearson(want, got)))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _matrix(sims: Similarities, metric: str, model_ids: list[str]) -> np.ndarray:
    """One metric's full matrix with rows in `model_ids` order and a unit diagonal."""
    if sorted(sims.model_ids) != sorted(model_ids):
        raise InputError(f"{sims.dataset}: models differ from the reference's")
    if metric not in sims.matrices:
        raise InputError(f"{sims.dataset}: no matrix of metric '{metric}'")
    order = [sims.model_ids.index(m) for m in model_ids]
    matrix = np.array(sims.matrices[metric], dtype=np.float64)[np.ix_(order, order)]
    np.fill_diagonal(matrix, 1.0)
    return matrix


def delta_table(by_size: dict[int, Similarities], model_ids: list[str],
                metrics: Sequence[str]) -> pd.DataFrame:
    """|S_next - S| per metric, model pair (k=1) and two consecutive sizes (ascending)."""
    rows, cols = np.triu_indices(len(model_ids), k=1)
    sizes = sorted(by_size)
    frames = []
    for metric in metrics:
        upper = [_matrix(by_size[n], metric, model_ids)[rows, cols] for n in sizes]
        for k in range(len(sizes) - 1):
            frames.append(pd.DataFrame({
                "metric": metric, "samples_per_class_1": sizes[k],
                "samples_per_class_2": sizes[k + 1],
                "model_1": [model_ids[i] for i in rows], "model_2": [model_ids[j] for j in cols],
                "abs_diff": np.abs(upper[k + 1] - upper[k])}))
    return (pd.concat(frames, ignore_index=True)[list(DELTA_COLUMNS)] if frames
            else pd.DataFrame(columns=list(DELTA_COLUMNS)))


def dendrogram_order(matrix: np.ndarray) -> list[int]:
    """Leaf order of the average-linkage dendrogram of the rows (Euclidean distances), as
    seaborn's clustermap orders a matrix by default."""
    if len(matrix) < 2 or not np.isfinite(matrix).all():
        return list(range(len(matrix)))
    tree = hierarchy.linkage(matrix, method="average", metric="euclidean")
    return [int(i) for i in hierarchy.dendrogram(tree, no_plot=True,
                                                 color_threshold=-np.inf)["leaves"]]


def matrices_table(by_size: dict[int, Similarities], model_ids: list[str],
                   metrics: Sequence[str], reference: int) -> pd.DataFrame:
    """Every size's full matrix per metric, positions in the reference's dendrogram order."""
    order_metric = ORDER_METRIC if ORDER_METRIC in metrics else sorted(metrics)[0]
    order = dendrogram_order(_matrix(by_size[reference], order_metric, model_ids))
    ids = [model_ids[i] for i in order]
    m = len(ids)
    p1, p2 = np.repeat(np.arange(m), m), np.tile(np.arange(m), m)
    frames = [pd.DataFrame({
        "metric": metric, "samples_per_class": n, "order_metric": order_metric,
        "position_1": p1, "position_2": p2, "model_1": [ids[i] for i in p1],
        "model_2": [ids[j] for j in p2],
        "value": _matrix(by_size[n], metric, ids).ravel()})
        for metric in metrics for n in sorted(by_size)]
    return pd.concat(frames, ignore_index=True)[list(MATRIX_COLUMNS)]


def subset_size_tables(paths: Sequence[str | os.PathLike], reference: int = REFERENCE
                       ) -> dict[str, pd.DataFrame]:
    """The three tables: `r` (pysim's r against the reference), `delta` and `matrices`."""
    by_size = _by_size(paths)
    table = r_table(by_size, reference)
    ref = by_size[reference]
    metrics = list(ref.matrices)
    return {"r": table, "delta": delta_table(by_size, ref.model_ids, metrics),
            "matrices": matrices_table(by_size, ref.model_ids, metrics, reference)}


def write_subset_size(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                      reference: int = REFERENCE, delta_out: str | os.PathLike | None = None,
                      matrices_out: str | os.PathLike | None = None) -> dict[str, pd.DataFrame]:
    """Compute the tables and write each as CSV atomically: `out` (r against the reference),
    `delta_out` and `matrices_out` (default: subset_size_delta.csv and
    subset_size_matrices.csv beside `out`)."""
    tables = subset_size_tables(paths, reference)
    folder = Path(out).parent
    write_csv(out, tables["r"])
    write_csv(delta_out or folder / "subset_size_delta.csv", tables["delta"])
    write_csv(matrices_out or folder / "subset_size_matrices.csv", tables["matrices"])
    return tables
