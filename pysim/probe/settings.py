"""Probe hyper-parameters and their checks (kept free of torch so bad input fails fast)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pysim.errors import InputError

SELECTIONS = ("per_seed", "shared")
TIE_BREAKS = ("order", "loss")
WD_GRIDS = ("paper", "fine")


@dataclass
class ProbeSettings:
    """Hyper-parameters of the probe protocol (defaults: the original study's runs).

    selection: `per_seed` chooses lr and weight decay for every seed on its own validation
    split (the study), `shared` one pair for all seeds on the mean over seeds; tie_break:
    `order` ranks by validation top-1 alone with the study's positional tie rules, `loss`
    breaks accuracy ties by the lower validation loss first; wd_grid: a name in
    pysim.probe.wd_search.GRIDS.
    """

    lrs: list[float] = field(default_factory=lambda: [1e-1, 1e-2, 1e-3, 1e-4])
    epochs: int = 20
    batch_size: int = 1024
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    val_proportion: float = 0.2
    selection: str = "per_seed"
    tie_break: str = "order"
    wd_grid: str = "paper"


def check_settings(settings: ProbeSettings) -> None:
    """Out-of-range settings are bad input."""
    if not settings.lrs or any(not lr > 0 for lr in settings.lrs):
        raise InputError(f"learning rates must be positive, got {settings.lrs}")
    if settings.epochs < 1 or settings.batch_size < 1:
        raise InputError("--epochs and --batch-size must be at least 1")
    if not settings.seeds or len(set(settings.seeds)) != len(settings.seeds):
        raise InputError(f"seeds must be a non-empty list of distinct integers, got "
                         f"{settings.seeds}")
    if any(s < 0 for s in settings.seeds):
        raise InputError(f"seeds must be non-negative, got {settings.seeds}")
    if not 0 < settings.val_proportion < 1:
        raise InputError(f"--val-proportion must lie in (0, 1), got {settings.val_proportion}")
    for name, allowed in (("selection", SELECTIONS), ("tie_break", TIE_BREAKS),
                          ("wd_grid", WD_GRIDS)):
        if getattr(settings, name) not in allowed:
            raise InputError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                             f"got '{getattr(settings, name)}'")
