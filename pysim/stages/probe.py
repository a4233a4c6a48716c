"""The pysim-probe stage: linear-probe test accuracy of one model's features on one dataset."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pysim.io import write_json
from pysim.probe import ProbeSettings, check_settings, load_probe_data
from pysim.probe.settings import SELECTIONS, TIE_BREAKS, WD_GRIDS

__all__ = ["SELECTIONS", "TIE_BREAKS", "WD_GRIDS", "run_probe"]


def run_probe(features: str | os.PathLike, out: str | os.PathLike, *,
              lrs: Sequence[float], epochs: int, batch_size: int, seeds: Sequence[int],
              val_proportion: float, selection: str = "per_seed", wd_grid: str = "paper",
              tie_break: str = "order", normalize: str = "l2", test_from_train: bool = False,
              test_proportion: float = 0.2, split_seed: int = 0,
              device: str = "cpu") -> dict[str, Any]:
    """Choose lr and weight decay on a validation hold-out, refit, write the probe record.

    Settings and the features file are checked before torch is imported; `device` is a
    resolved torch device string.
    """
    settings = ProbeSettings(lrs=list(lrs), epochs=epochs, batch_size=batch_size,
                             seeds=list(seeds), val_proportion=val_proportion,
                             selection=selection, tie_break=tie_break, wd_grid=wd_grid)
    check_settings(settings)
    data = load_probe_data(features, normalize, test_from_train, test_proportion, split_seed)
    from pysim.probe.search import run_probe as search  # torch: once the inputs are known good

    record = search(data, settings, device=device)
    write_json(out, record)
    return record
