"""Similarity vs. behaviour (DESIGN §1.6): per metric and dataset, the correlation between a model
pair's similarity and the absolute difference of the two models' probe accuracies.

The accuracies of a similarity dataset may come from another dataset's probes (the original's
performance list, matched by display name: `imagenet-subset-10k` takes full ImageNet's); the
mapping is decided by pysim-validate and handed in here."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from pysim.config import LAYER_SEP, dataset_key
from pysim.errors import InputError
from pysim.io import Similarities, read_json

log = logging.getLogger(__name__)
COLUMNS = ["metric", "dataset", "performance_dataset", "n_pairs", "pearson_r", "spearman_r"]
# The stage's table (DESIGN §5), under --outdir: its one name in pysim.
TABLE_NAME = "performance/similarity_vs_gap.csv"


def load_probes(paths: Sequence[str | os.PathLike]) -> dict[str, dict[str, float]]:
    """Probe results: dataset key -> model id -> test_acc1; duplicates and bad values are errors."""
    out: dict[str, dict[str, float]] = {}
    for path in paths:
        probe = read_json(path)
        if not isinstance(probe, dict) or not {"model_id", "dataset", "test_acc1"} <= probe.keys():
            raise InputError(f"{path}: probe file needs 'model_id', 'dataset' and 'test_acc1'")
        acc = probe["test_acc1"]
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not math.isfinite(acc) \
                or not 0 <= acc <= 1:
            raise InputError(f"{path}: 'test_acc1' must be a number in [0, 1], got {acc!r}")
        accs = out.setdefault(dataset_key(str(probe["dataset"])), {})
        if probe["model_id"] in accs:
            raise InputError(f"{path}: second probe of model '{probe['model_id']}' "
                             f"on dataset '{probe['dataset']}'")
        accs[str(probe["model_id"])] = float(acc)
    return out


def gap_pairs(matrix: np.ndarray, model_ids: Sequence[str], accs: Mapping[str, float]
              ) -> pd.DataFrame:
    """Every pair (i < j) of models that have a probe: similarity and |acc_i - acc_j|."""
    idx = [k for k, m in enumerate(model_ids) if m in accs]
    rows, cols = np.triu_indices(len(idx), 1)
    ii, jj = np.array(idx, dtype=int)[rows], np.array(idx, dtype=int)[cols]
    acc = np.array([accs.get(m, np.nan) for m in model_ids])
    frame = pd.DataFrame({"model_1": [model_ids[i] for i in ii],
                          "model_2": [model_ids[j] for j in jj],
                          "similarity": matrix[ii, jj], "gap": np.abs(acc[ii] - acc[jj])})
    return frame[np.isfinite(frame["similarity"])].reset_index(drop=True)


def correlate(frame: pd.DataFrame) -> tuple[float, float]:
    """Pearson and Spearman r of similarity vs. gap (NaN under 3 pairs or constant input)."""
    if len(frame) < 3 or frame["similarity"].nunique() < 2 or frame["gap"].nunique() < 2:
        return math.nan, math.nan
    return (float(pearsonr(frame["similarity"], frame["gap"])[0]),
            float(spearmanr(frame["similarity"], frame["gap"])[0]))


def sim_vs_perf_table(files: Sequence[Similarities],
                      probes: Mapping[str, Mapping[str, float]],
                      performance: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per (metric, dataset); datasets without probes and models without one are warned.

    `performance`: similarity dataset id -> the dataset whose probes give its accuracies
    (None: each dataset its own; a dataset missing from the mapping has no rows).
    """
    out = []
    by_key = None if performance is None else {dataset_key(k): v for k, v in performance.items()}
    for sims in sorted(files, key=lambda s: s.dataset):
        source = sims.dataset if by_key is None else by_key.get(dataset_key(sims.dataset))
        if source is None:
            log.warning("dataset '%s': no performance dataset matched, skipped", sims.dataset)
            continue
        accs = probes.get(dataset_key(source))
        if not accs:
            log.warning("dataset '%s': no probe results%s, skipped", sims.dataset,
                        "" if source == sims.dataset else f" of '{source}'")
            continue
        # layer representations (<model_id>@<module>) have no probe by design
        missing = [m for m in sims.model_ids if m not in accs and LAYER_SEP not in m]
        if missing:
            log.warning("dataset '%s': models without a probe result left out: %s",
                        sims.dataset, ", ".join(missing))
        for metric_id in sorted(sims.matrices):
            pairs = gap_pairs(sims.matrices[metric_id], sims.model_ids, accs)
            pearson, spearman = correlate(pairs)
            out.append({"metric": metric_id, "dataset": sims.dataset,
                        "performance_dataset": source, "n_pairs": len(pairs),
                        "pearson_r": pearson, "spearman_r": spearman})
    return pd.DataFrame(out, columns=COLUMNS)
