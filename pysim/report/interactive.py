"""Data behind the report's interactive figures (drawn by report.js with Plotly): similarity
matrices with model orders and categories, consistency matrices, layer-wise blocks."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pysim.analysis.layers import primary_only
from pysim.config import CATEGORY_COLUMNS, LAYER_SEP, ModelEntry, base_model_id
from pysim.io import Similarities
from pysim.report.figures import cluster_order

DIGITS = 4


def rounded(matrix: np.ndarray) -> list[list[float | None]]:
    """A matrix as nested lists, rounded to DIGITS decimals, NaN as null (JSON-safe)."""
    values = np.round(np.asarray(matrix, dtype=float), DIGITS)
    return [[float(v) if np.isfinite(v) else None for v in row] for row in values]


def split_layers(sims: Similarities, models: Mapping[str, ModelEntry] | None = None
                 ) -> tuple[Similarities, Similarities | None]:
    """Whole-model rows, and layer rows if the file has any: every `<model_id>@<module>` id
    and, first in its model's group, the primary row of such a model, labelled
    `<model_id>@<its module>` (as extracted, recorded in the file; else the table's first
    entry; `primary` without either)."""
    bases = {base_model_id(m) for m in sims.model_ids if LAYER_SEP in m}
    layer = [k for k, m in enumerate(sims.model_ids) if m in bases] + \
        [k for k, m in enumerate(sims.model_ids) if LAYER_SEP in m]
    order = list(dict.fromkeys(base_model_id(m) for m in sims.model_ids))
    layer.sort(key=lambda k: order.index(base_model_id(sims.model_ids[k])))

    def label(model_id: str) -> str:
        if LAYER_SEP in model_id:
            return model_id
        entry = (models or {}).get(model_id)
        module = sims.module_names.get(model_id) or (entry.modules[0] if entry else "primary")
        return f"{model_id}{LAYER_SEP}{module}"

    def part(rows: list[int]) -> Similarities:
        return Similarities(sims.dataset, [label(sims.model_ids[k]) for k in rows],
                            {k: v[np.ix_(rows, rows)] for k, v in sims.matrices.items()},
                            sims.metric_attrs)

    return primary_only(sims), (part(layer) if layer else None)


def model_categories(ids: Sequence[str], models: Mapping[str, ModelEntry] | None
                     ) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The category columns the model table fills, and each model's labels (unknown if absent)."""
    models = models or {}
    columns = [c for c in CATEGORY_COLUMNS
               if any(c in e.categories for e in models.values())]
    labels = {m: {c: (models[m].categories.get(c) if m in models else None) or "unknown"
                  for c in columns} for m in ids}
    return columns, labels


def table_order(similarities: Sequence[Similarities],
                models: Mapping[str, ModelEntry] | None) -> list[str]:
    """Every model in the similarity files: model-table order, then others as first seen."""
    seen = list(dict.fromkeys(m for s in similarities for m in s.model_ids))
    listed = [m for m in (models or {}) if m in set(seen)]
    return listed + [m for m in seen if m not in set(listed)]


def aligned(sims: Similarities, metric: str, ids: Sequence[str]) -> np.ndarray:
    """One dataset's matrix on the rows `ids` (NaN where the dataset lacks a model)."""
    pos = {m: k for k, m in enumerate(sims.model_ids)}
    rows = np.array([pos.get(m, -1) for m in ids])
    out = np.full((len(ids), len(ids)), np.nan)
    have = rows >= 0
    out[np.ix_(have, have)] = sims.matrices[metric][np.ix_(rows[have], rows[have])]
    return out


def cluster_orders(similarities: Sequence[Similarities], metrics: Sequence[str],
                   ids: Sequence[str]) -> dict[str, list[str]]:
    """Per metric one order for all datasets: clustering of the mean matrix across datasets."""
    out = {}
    for metric in metrics:
        stack = [aligned(s, metric, ids) for s in similarities if metric in s.matrices]
        if not stack:
            continue
        with warnings.catch_warnings():  # a pair no dataset has: all-NaN mean, handled below
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.stack(stack), axis=0)
        mean = np.where(np.isfinite(mean), mean, np.nanmin(mean) if np.isfinite(mean).any()
                        else 0.0)
        out[metric] = [ids[k] for k in cluster_order(mean)]
    return out


def similarity_data(similarities: Sequence[Similarities], metrics: Sequence[str],
                    models: Mapping[str, ModelEntry] | None,
                    names: Mapping[str, str]) -> dict[str, Any]:
    """Everything report.js needs to draw, reorder and hover the similarity heatmaps."""
    similarities = sorted(similarities, key=lambda s: s.dataset)
    ids = table_order(similarities, models)
    columns, labels = model_categories(ids, models)
    position = {m: k for k, m in enumerate(ids)}
    orders = {"table": ids}
    for column in columns:
        orders[column] = sorted(ids, key=lambda m: (labels[m][column], position[m]))
    matrices = {metric: {s.dataset: {"ids": list(s.model_ids), "z": rounded(s.matrices[metric])}
                         for s in similarities if metric in s.matrices}
                for metric in metrics}
    return {"models": ids, "columns": columns, "labels": labels, "orders": orders,
            "clusterOrders": cluster_orders(similarities, metrics, ids),
            "datasets": [{"key": s.dataset, "name": names.get(s.dataset, s.dataset)}
                         for s in similarities],
            "matrices": {k: v for k, v in matrices.items() if v}}


def consistency_data(wide: Mapping[str, pd.DataFrame], names: Mapping[str, str]
                     ) -> dict[str, Any]:
    """Per metric the dataset x dataset consistency (Pearson r), datasets as keys and names."""
    out = {}
    for metric, frame in wide.items():
        datasets = [str(d) for d in frame["dataset"]]
        values = frame.set_index("dataset").loc[datasets, datasets].to_numpy(dtype=float)
        out[metric] = {"datasets": datasets, "names": [names.get(d, d) for d in datasets],
                       "z": rounded(values)}
    return out


def layer_data(layers: Sequence[Similarities], names: Mapping[str, str]
               ) -> tuple[dict[str, Any], dict[str, str]]:
    """Per dataset the layer ids grouped by model (module order), inline, and the layer
    matrices as one script per dataset (assets/layers_<k>.js, loaded when first shown)."""
    index, scripts = {}, {}
    for k, sims in enumerate(sorted(layers, key=lambda s: s.dataset)):
        modules: dict[str, list[str]] = {}
        rows: dict[str, list[int]] = {}
        for row, layer_id in enumerate(sims.model_ids):
            model, module = layer_id.split(LAYER_SEP, 1)
            modules.setdefault(model, []).append(module)
            rows.setdefault(model, []).append(row)
        script = f"assets/layers_{k}.js"
        index[sims.dataset] = {"name": names.get(sims.dataset, sims.dataset), "script": script,
                               "metrics": sorted(sims.matrices), "modules": modules,
                               "rows": rows}
        matrices = {m: rounded(v) for m, v in sorted(sims.matrices.items())}
        scripts[script] = ("window.pysimLayers = window.pysimLayers || {};\n"
                           f"window.pysimLayers[{json.dumps(sims.dataset)}] = "
                           f"{json.dumps(matrices, separators=(',', ':'), allow_nan=False)};\n")
    return index, scripts


def data_script(data: Mapping[str, Any]) -> str:
    """The report's data as an inline JSON script element: `<`, `>` and `&` escaped as JSON
    unicode escapes, so no text of an input (`</script>`, `<!--`) can end or change it."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="pysim-data">{text}</script>'
