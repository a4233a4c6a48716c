"""Sensitivity of the similarity matrices to the ImageNet subset size (DESIGN §1.7, Appendix C).

Each imagenet-subset-<N>k similarity file is compared with the N = 10 reference: Pearson's r
between the upper triangles (k=1) of the two matrices of each metric, over the same model pairs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pysim.config import subset_per_class
from pysim.errors import InputError
from pysim.io import Similarities, read_similarities, write_csv

COLUMNS = ("metric", "samples_per_class", "pearson_r")
REFERENCE = 10  # images per class of the study's imagenet-subset-10k


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
    by_size = _by_size(paths)
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


def write_subset_size(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                      reference: int = REFERENCE) -> pd.DataFrame:
    """Compute the table and write it as CSV atomically."""
    table = subset_size_table(paths, reference)
    write_csv(out, table)
    return table
