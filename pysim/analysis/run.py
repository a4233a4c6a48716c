"""The consistency stage end to end: read similarity files and the model table, compute every
table, then write them (each atomically) into one output directory."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pysim.analysis import aggregate, clusters, consistency, domains
from pysim.analysis.stack import align, finite_models, read_all
from pysim.config import CATEGORY_COLUMNS, load_dataset_info, load_models
from pysim.io import write_csv

log = logging.getLogger(__name__)


def compute_consistency(similarity_paths: Sequence[str | os.PathLike],
                        models_path: str | os.PathLike,
                        dataset_info_path: str | os.PathLike | None = None,
                        permutations: int = 1000, bootstrap: int = 1000, seed: int = 0,
                        num_clusters: int = 5) -> dict[str, pd.DataFrame]:
    """Every consistency output as {file name: table}; nothing is written."""
    models = load_models(models_path)
    info = load_dataset_info(dataset_info_path) if dataset_info_path else None
    stack = align(read_all(similarity_paths), model_order=list(models))
    categories = {m: models[m].categories for m in stack.model_ids}
    tables: list[pd.DataFrame] = []
    outputs: dict[str, pd.DataFrame] = {}
    cluster_frames = []
    if len(stack.datasets) < 2:
        log.warning("only one dataset (%s): no dataset pairs to compare", stack.datasets[0])
    for metric_id in tqdm(stack.matrices, desc="consistency", unit="metric", leave=False):
        keep = finite_models(stack.matrices[metric_id], stack.model_ids, metric_id)
        matrices = stack.matrices[metric_id][:, keep][:, :, keep]
        model_ids = [stack.model_ids[k] for k in keep]
        if len(model_ids) < 3:
            log.warning("metric '%s': fewer than 3 usable models, skipped", metric_id)
            continue
        labels = consistency.category_labels(model_ids, categories, CATEGORY_COLUMNS)
        plan = consistency.resampling_plan(labels, permutations, bootstrap, seed)
        table = consistency.consistency_rows(metric_id, stack.datasets, matrices, labels, plan)
        tables.append(table)
        outputs[f"matrix_{metric_id}.csv"] = consistency.consistency_matrix(
            table, metric_id, stack.datasets)
        outputs[f"aggregate_{metric_id}.csv"] = aggregate.aggregate_pairs(matrices, model_ids)
        cluster_frames.append(clusters.cluster_table(metric_id, stack.datasets, matrices,
                                                     model_ids, num_clusters, seed))
    nonempty = [t for t in tables if not t.empty]
    table = (pd.concat(nonempty, ignore_index=True) if nonempty
             else pd.DataFrame(columns=consistency.COLUMNS))
    cluster_rows = (pd.concat(cluster_frames, ignore_index=True) if cluster_frames
                    else pd.DataFrame(columns=["dataset", "metric", "model_id", "cluster"]))
    outputs["consistency.csv"] = table
    outputs["domains.csv"] = domains.domain_summary(table, domains.domain_map(stack.datasets,
                                                                              info))
    outputs["clusters.csv"] = cluster_rows
    outputs["clusters_ari.csv"] = clusters.cluster_agreement(cluster_rows)
    return outputs


def write_outputs(outputs: dict[str, pd.DataFrame], out_dir: str | os.PathLike) -> list[Path]:
    """Write every table atomically into out_dir; returns the paths written."""
    paths = []
    for name, frame in outputs.items():
        path = Path(out_dir) / name
        write_csv(path, frame)
        paths.append(path)
    return paths
