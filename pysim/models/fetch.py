"""Fill the weight caches for a model table (run where there is network, e.g. a login node).

Each model is loaded once through its own source's loader, which downloads into the standard
HF / torch hub caches; compute nodes then run with HF_HUB_OFFLINE=1 (`--offline`). An entry's
alignment transform (gLocal) is downloaded first, from the URL thingsvision reads it from.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pysim.config import load_models
from pysim.errors import InputError
from pysim.models.alignment import fetch_alignment
from pysim.models.resolve import resolve


def fetch_weights(models_file: str | os.PathLike, model_ids: list[str] | None = None,
                  offline: bool | None = None) -> Iterator[str]:
    """Yield one line per model: nothing to fetch / already cached / fetched / missing."""
    from pysim.models import load_model, offline_default

    offline = offline_default() if offline is None else offline
    models = load_models(models_file)
    unknown = [m for m in model_ids or [] if m not in models]
    if unknown:
        raise InputError(f"{models_file}: no model {', '.join(repr(m) for m in unknown)}")
    base_dir = Path(models_file).resolve().parent
    missing = []
    for model_id in model_ids or list(models):
        entry = models[model_id]
        res = resolve(entry, base_dir)
        src = res.alignment
        if src is not None and src.cached():
            yield f"{model_id}: cached {src.kind} transform {src.path}"
        elif src is not None and offline:
            missing.append(model_id)
            yield f"{model_id}: MISSING {src.kind} transform {src.url}"
        elif src is not None:
            fetch_alignment(src)
            yield f"{model_id}: fetched {src.kind} transform {src.url}"
        if not res.pretrained:
            yield f"{model_id}: random init (\"pretrained\": false), nothing to fetch"
        elif res.weights_file:
            yield f"{model_id}: local file {res.weights_file}"
        elif res.cached():
            yield f"{model_id}: cached {res.weight_source}"
        elif offline:
            missing.append(model_id)
            yield f"{model_id}: MISSING {res.weight_source}"
        else:
            load_model(entry, base_dir=base_dir, offline=False)
            yield f"{model_id}: fetched {res.weight_source}"
    missing = list(dict.fromkeys(missing))
    if missing:
        raise InputError(f"{len(missing)} models have no cached weights (offline): "
                         f"{', '.join(missing)}")
