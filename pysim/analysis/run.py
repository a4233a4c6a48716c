"""The consistency stage end to end: read similarity files and the model table, compute every
table, then write them (each atomically) into one output directory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pysim.analysis import (
    aggregate,
    agreement,
    anchors,
    clusters,
    consistency,
    domains,
    embedding,
    layers,
    metric_pairs,
)
from pysim.analysis.model_sets import COLUMNS as COLUMNS_MODEL_SETS
from pysim.analysis.model_sets import ModelSets, set_pair_rows, summarize
from pysim.analysis.stack import align, finite_models, read_all
from pysim.analysis.transforms import transform_similarities
from pysim.config import CATEGORY_COLUMNS, load_dataset_info, load_models
from pysim.errors import InputError
from pysim.io import write_csv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """Settings of the consistency stage (see compute_consistency)."""

    permutations: int = 1000
    bootstrap: int = 1000
    seed: int = 0
    num_clusters: int = 5
    transform: str = "none"
    anchor_models: Sequence[str] | None = None


def compute_consistency(similarity_paths: Sequence[str | os.PathLike],
                        models_path: str | os.PathLike,
                        dataset_info_path: str | os.PathLike | None = None,
                        permutations: int = 1000, bootstrap: int = 1000, seed: int = 0,
                        num_clusters: int = 5, transform: str = "none",
                        anchor_models: Sequence[str] | None = None,
                        anchor_test_metrics: Sequence[str] | None = None
                        ) -> dict[str, pd.DataFrame]:
    """Every consistency output as {file name: table}; nothing is written.

    `transform` (none, tan, arccos) applies to the cross-dataset consistency tables
    (consistency, matrix_*, domains, anchors, anchor_tests; metric_consistency_agreement is
    built from consistency), which carry it in a `transform` column; maps, clusters,
    aggregates (their tan / arccos columns are App. D's) and the metric agreements always use
    the raw similarities.
    `anchor_models` (default: every model) are the anchors of anchors.csv.
    `anchor_test_metrics` (default: every metric) are the metrics whose tests form
    anchor_tests.csv's Bonferroni family; an id not in the similarity files is bad input.
    """
    opt = Options(permutations, bootstrap, seed, num_clusters, transform, anchor_models)
    models = load_models(models_path)
    info = load_dataset_info(dataset_info_path) if dataset_info_path else None
    files = read_all(similarity_paths)
    layer_tables = layers.layer_outputs([sims for _, sims in files], models)
    # the per-model analyses see primary representations only (ids without '@')
    stack = align([(p, layers.primary_only(s)) for p, s in files], model_order=list(models))
    unknown = [a for a in anchor_models or [] if a not in stack.model_ids]
    if unknown:
        raise InputError(f"anchor models not present in every dataset: {', '.join(unknown)}")
    unknown = [m for m in anchor_test_metrics or [] if m not in stack.matrices]
    if unknown:
        raise InputError(f"anchor-test metrics not in the similarity files: "
                         f"{', '.join(unknown)} (they hold: {', '.join(stack.matrices)})")
    categories = {m: models[m].categories for m in stack.model_ids}
    outputs: dict[str, pd.DataFrame] = {}
    parts: dict[str, list[pd.DataFrame]] = {"consistency": [], "clusters": [], "anchors": []}
    if len(stack.datasets) < 2:
        log.warning("only one dataset (%s): no dataset pairs to compare", stack.datasets[0])
    for metric_id in tqdm(stack.matrices, desc="consistency", unit="metric", leave=False):
        keep = finite_models(stack.matrices[metric_id], stack.model_ids, metric_id)
        matrices = stack.matrices[metric_id][:, keep][:, :, keep]
        model_ids = [stack.model_ids[k] for k in keep]
        if len(model_ids) < 3:
            log.warning("metric '%s': fewer than 3 usable models, skipped", metric_id)
            continue
        files, pieces = metric_outputs(metric_id, stack.datasets, matrices, model_ids,
                                       categories, opt)
        outputs.update(files)
        for key, frame in pieces.items():
            parts[key].append(frame)
    table = concat(parts["consistency"], consistency.COLUMNS)
    cluster_rows = concat(parts["clusters"], ["dataset", "metric", "model_id", "cluster"])
    outputs["consistency.csv"] = table.assign(transform=transform)
    outputs["domains.csv"] = domains.domain_summary(
        table, domains.domain_map(stack.datasets, info)).assign(transform=transform)
    outputs["clusters.csv"] = cluster_rows
    outputs["clusters_ari.csv"] = clusters.cluster_agreement(cluster_rows)
    outputs["metric_agreement.csv"] = agreement.metric_agreement(stack.datasets, stack.matrices)
    outputs["metric_mean_agreement.csv"] = metric_pairs.mean_agreement(stack.matrices)  # §4.2
    outputs["metric_consistency_agreement.csv"] = metric_pairs.consistency_agreement(table)
    outputs.update(anchor_outputs(parts["anchors"], transform, anchor_test_metrics or None))
    outputs.update(layer_tables)
    return outputs


def metric_outputs(metric_id: str, datasets: Sequence[str], matrices: np.ndarray,
                   model_ids: Sequence[str], categories: Mapping[str, Mapping[str, str]],
                   opt: Options) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """One metric's own files (matrix, aggregate, embedding) and its rows of the shared tables."""
    labels = consistency.category_labels(model_ids, categories, CATEGORY_COLUMNS)
    plan = consistency.resampling_plan(labels, opt.permutations, opt.bootstrap, opt.seed)
    moved = transform_similarities(matrices, opt.transform, metric_id)
    table = consistency.consistency_rows(metric_id, datasets, moved, labels, plan)
    chosen = [a for a in (opt.anchor_models or model_ids) if a in model_ids]
    files = {f"matrix_{metric_id}.csv": consistency.consistency_matrix(table, metric_id, datasets),
             f"aggregate_{metric_id}.csv": aggregate.aggregate_pairs(matrices, model_ids,
                                                                     metric_id),
             f"embedding_{metric_id}.csv": embedding.embedding_table(metric_id, datasets,
                                                                     matrices, model_ids)}
    pieces = {"consistency": table,
              "clusters": clusters.cluster_table(metric_id, datasets, matrices, model_ids,
                                                 opt.num_clusters, opt.seed),
              "anchors": anchors.anchor_rows(metric_id, datasets, moved, model_ids, labels,
                                             chosen)}
    return files, pieces


def concat(frames: Sequence[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """The non-empty frames stacked, or an empty table with the given columns."""
    nonempty = [f for f in frames if not f.empty]
    return (pd.concat(nonempty, ignore_index=True) if nonempty
            else pd.DataFrame(columns=list(columns)))


def anchor_outputs(frames: list[pd.DataFrame], transform: str,
                   family_metrics: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """anchors.csv and anchor_tests.csv from every metric's anchor rows (the Bonferroni family:
    the tests of `family_metrics`, default every metric)."""
    rows = concat(frames, anchors.COLUMNS)
    tests = anchors.anchor_tests(rows, family_metrics)
    return {"anchors.csv": rows.assign(transform=transform),
            "anchor_tests.csv": tests.assign(transform=transform)}


def write_outputs(outputs: dict[str, pd.DataFrame], out_dir: str | os.PathLike) -> list[Path]:
    """Write every table atomically into out_dir; returns the paths written."""
    paths = []
    for name, frame in outputs.items():
        path = Path(out_dir) / name
        write_csv(path, frame)
        paths.append(path)
    return paths


def compute_model_set_pairs(similarity_paths: Sequence[str | os.PathLike],
                            models_path: str | os.PathLike, sets: ModelSets,
                            transform: str = "none") -> dict[str, pd.DataFrame]:
    """model_set_pairs.csv and its summary (pysim.analysis.model_sets) over the primary
    representations, each metric on its models with finite similarities, after `transform`."""
    files = read_all(similarity_paths)
    stack = align([(p, layers.primary_only(s)) for p, s in files],
                  model_order=list(load_models(models_path)))
    frames = []
    for metric_id, matrices in stack.matrices.items():
        keep = finite_models(matrices, stack.model_ids, metric_id)
        model_ids = [stack.model_ids[k] for k in keep]
        moved = transform_similarities(matrices[:, keep][:, :, keep], transform, metric_id)
        frames.append(set_pair_rows(metric_id, stack.datasets, moved, model_ids, sets))
    missing = sorted({m for members in sets.sets.values() for m in members} - set(stack.model_ids))
    if missing:
        log.warning("model-set members without similarities, left out: %s", ", ".join(missing))
    table = concat(frames, COLUMNS_MODEL_SETS)
    return {"model_set_pairs.csv": table.assign(transform=transform),
            "model_set_pairs_summary.csv": summarize(table).assign(transform=transform)}
