"""The pysim-fetch-weights stage: fill the HF / torch / OpenCLIP weight caches for a model table."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence


def run_fetch_weights(models: str | os.PathLike, model_ids: Sequence[str] = (),
                      offline: bool | None = None) -> Iterator[str]:
    """Download (or offline, only check) every model's weights; yields one line per model."""
    from pysim.models.fetch import fetch_weights  # torch and the model libraries: when run

    yield from fetch_weights(models, list(model_ids), offline)
