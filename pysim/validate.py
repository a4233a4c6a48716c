"""Input checks run before any work (the VALIDATE stage)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pysim.config import (
    IMAGENET_ID,
    IMAGENET_SUBSET,
    MetricSpec,
    ModelEntry,
    check_dataset_dirs,
    check_dataset_ids,
    dataset_dir,
    dataset_key,
    derived_kind,
    load_dataset_info,
    load_dataset_list,
    load_metrics,
    load_models,
)
from pysim.errors import InputError


@dataclass
class Inputs:
    """The three validated inputs."""

    models: dict[str, ModelEntry]
    datasets: list[str]
    metrics: list[MetricSpec]
    dataset_info: dict[str, dict[str, str]] | None = None


def validate_inputs(models: str | os.PathLike, datasets: str | os.PathLike,
                    metrics: str | os.PathLike, dataset_root: str | os.PathLike | None = None,
                    dataset_info: str | os.PathLike | None = None) -> Inputs:
    """Load and check every input; raises InputError on the first problem."""
    inputs = Inputs(load_models(models), load_dataset_list(datasets), load_metrics(metrics),
                    load_dataset_info(dataset_info) if dataset_info else None)
    check_dataset_ids(inputs.datasets)
    if dataset_root is not None:
        check_dataset_dirs(dataset_root, inputs.datasets)
    return inputs


def summary(inputs: Inputs) -> str:
    """A short human-readable summary of validated inputs."""
    sources: dict[str, int] = {}
    for entry in inputs.models.values():
        sources[entry.source] = sources.get(entry.source, 0) + 1
    by_source = ", ".join(f"{n} {s}" for s, n in sorted(sources.items()))
    lines = [
        f"models:   {len(inputs.models)} ({by_source})",
        f"datasets: {len(inputs.datasets)} ({', '.join(inputs.datasets[:5])}"
        f"{', ...' if len(inputs.datasets) > 5 else ''})",
        f"metrics:  {len(inputs.metrics)} ({', '.join(m.id for m in inputs.metrics)})",
    ]
    aligned = [m for m, e in inputs.models.items() if e.alignment]
    if aligned:
        kinds = sorted({inputs.models[m].alignment for m in aligned})
        lines.insert(1, f"aligned:  {len(aligned)} ({', '.join(kinds)}: {', '.join(aligned[:3])}"
                        f"{', ...' if len(aligned) > 3 else ''})")
    derived = [d for d in inputs.datasets if derived_kind(d)]
    if derived:
        lines.append(f"derived:  {len(derived)} ({', '.join(derived)}; sliced from the "
                     f"{IMAGENET_ID} features)")
    return "\n".join(lines)


# --- the tables the workflow reads (VALIDATE's outputs) ---------------------------------

def select_models(models: dict[str, ModelEntry], model_ids: list[str] | None,
                  table_name: str) -> dict[str, ModelEntry]:
    """The entries of `model_ids` in table order (all when None); ids must name files."""
    if model_ids:
        unknown = [i for i in model_ids if i not in models]
        if unknown:
            raise InputError(f"--model_ids: unknown model id '{unknown[0]}' (not in {table_name})")
        models = {i: e for i, e in models.items() if i in model_ids}
    bad = [i for i in models if "/" in i or "'" in i or i.startswith(".")]
    if bad:
        raise InputError(f"--models: model id '{bad[0]}' cannot be used as a file name")
    return models


def model_table(models: dict[str, ModelEntry], models_path: str | os.PathLike) -> dict:
    """id -> the table's own entry, a relative weights path made absolute (table's folder)."""
    base = Path(models_path).resolve().parent
    out = {}
    for model_id, entry in models.items():
        raw = dict(entry.raw)
        if isinstance(raw.get("weights"), str) and not raw["weights"].startswith("/"):
            raw["weights"] = os.path.normpath(base / raw["weights"])
        out[model_id] = raw
    return out


def dataset_row(dataset_id: str, role: str) -> dict[str, str]:
    """One dataset: id, output key, folder under the root ('' when derived), derived_from,
    and role: analysed (in the list), extracted (ImageNet, only for derived ids) or
    subset_size (the ImageNet subset-size sensitivity)."""
    derived = bool(derived_kind(dataset_id))
    return {"id": dataset_id, "key": dataset_key(dataset_id),
            "folder": "" if derived else dataset_dir("", dataset_id).name,
            "derived_from": IMAGENET_ID if derived else "", "role": role}


def dataset_table(datasets: list[str], subset_sizes: list[int] | None = None,
                  reference: int = 10) -> list[dict[str, str]]:
    """The list's datasets, ImageNet when a derived id needs it and the list lacks it, and
    the imagenet-subset-<N>k of `subset_sizes` (plus the reference) when ImageNet is listed."""
    rows = [dataset_row(i, "analysed") for i in datasets]
    if any(derived_kind(i) for i in datasets) and IMAGENET_ID not in datasets:
        rows.append(dataset_row(IMAGENET_ID, "extracted"))
    imagenet = any(i == IMAGENET_ID or IMAGENET_SUBSET.fullmatch(i) for i in datasets)
    if subset_sizes and imagenet:
        for size in sorted({*subset_sizes, reference}):
            rows.append(dataset_row(f"imagenet-subset-{size}k", "subset_size"))
    return rows


def write_json(data, path: str | os.PathLike) -> None:
    """Write `data` as indented JSON (the workflow reads it with splitJson)."""
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
