"""The consistency stage end to end: read similarity files and the model table, compute every
table, then write them (each atomically) into one output directory."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pysim.analysis import aggregate, agreement, anchors, clusters, consistency, domains, embedding
from pysim.analysis.stack import align, finite_models, read_all
from pysim.analysis.transforms import transform_similarities
from pysim.config import CATEGORY_COLUMNS, load_dataset_info, load_models
from pysim.errors import InputError
from pysim.io import write_csv

log = logging.getLogger(__name__)


def compute_consistency(similarity_paths: Sequence[str | os.PathLike],
                        models_path: str | os.PathLike,
                        dataset_info_path: str | os.PathLike | None = None,
                        permutations: int = 1000, bootstrap: int = 1000, seed: int = 0,
                        num_clusters: int = 5, transform: str = "none",
                        anchor_models: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Every consistency output as {file name: table}; nothing is written.

    `transform` (none, tan, arccos) applies to the cross-dataset consistency tables
    (consistency, matrix_*, domains, anchors, anchor_tests), which carry it in a `transform`
    column; maps, clusters, aggregates and metric agreement always use the raw similarities.
    `anchor_models` (default: every model) are the anchors of anchors.csv.
    """
    models = load_models(models_path)
    info = load_dataset_info(dataset_info_path) if dataset_info_path else None
    stack = align(read_all(similarity_paths), model_order=list(models))
    unknown = [a for a in anchor_models or [] if a not in stack.model_ids]
    if unknown:
        raise InputError(f"anchor models not present in every dataset: {', '.join(unknown)}")
    categories = {m: models[m].categories for m in stack.model_ids}
    tables: list[pd.DataFrame] = []
    outputs: dict[str, pd.DataFrame] = {}
    cluster_frames, embeddings, anchor_frames = [], {}, []
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
        moved = transform_similarities(matrices, transform, metric_id)
        table = consistency.consistency_rows(metric_id, stack.datasets, moved, labels, plan)
        tables.append(table)
        chosen = [a for a in (anchor_models or model_ids) if a in model_ids]
        anchor_frames.append(anchors.anchor_rows(metric_id, stack.datasets, moved, model_ids,
                                                 labels, chosen))
        embeddings[f"embedding_{metric_id}.csv"] = embedding.embedding_table(
            metric_id, stack.datasets, matrices, model_ids)
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
    outputs["consistency.csv"] = table.assign(transform=transform)
    outputs["domains.csv"] = domains.domain_summary(
        table, domains.domain_map(stack.datasets, info)).assign(transform=transform)
    outputs["clusters.csv"] = cluster_rows
    outputs["clusters_ari.csv"] = clusters.cluster_agreement(cluster_rows)
    outputs.update(embeddings)
    outputs["metric_agreement.csv"] = agreement.metric_agreement(stack.datasets, stack.matrices)
    outputs.update(anchor_outputs(anchor_frames, transform))
    return outputs


def anchor_outputs(frames: list[pd.DataFrame], transform: str) -> dict[str, pd.DataFrame]:
    """anchors.csv and anchor_tests.csv from every metric's anchor rows."""
    nonempty = [f for f in frames if not f.empty]
    rows = (pd.concat(nonempty, ignore_index=True) if nonempty
            else pd.DataFrame(columns=anchors.COLUMNS))
    return {"anchors.csv": rows.assign(transform=transform),
            "anchor_tests.csv": anchors.anchor_tests(rows).assign(transform=transform)}


def write_outputs(outputs: dict[str, pd.DataFrame], out_dir: str | os.PathLike) -> list[Path]:
    """Write every table atomically into out_dir; returns the paths written."""
    paths = []
    for name, frame in outputs.items():
        path = Path(out_dir) / name
        write_csv(path, frame)
        paths.append(path)
    return paths
