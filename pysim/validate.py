"""Input checks run before any work (the VALIDATE stage)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pysim.config import (
    MetricSpec,
    ModelEntry,
    check_dataset_dirs,
    check_dataset_ids,
    load_dataset_info,
    load_dataset_list,
    load_metrics,
    load_models,
)


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
    return "\n".join(lines)
