"""The probe protocol: per learning rate a coarse-to-fine weight-decay search on a stratified
validation hold-out (mean over seeds), then a refit on the whole train split, scored on test."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from pysim.errors import InputError
from pysim.probe.data import ProbeData, stratified_split
from pysim.probe.heads import Scores, score_heads, train_heads
from pysim.probe.settings import ProbeSettings, check_settings

# 1e-6 .. 1e1 with 16 points per decade; the coarse stage tries the decades (every 16th),
# then each refinement tries peak +- 8, 4, 2, 1 grid steps.
WD_GRID = np.logspace(-6, 1, 7 * 16 + 1)
COARSE_STEP = 16
REFINE_SPANS = (8, 4, 2, 1)
# bytes of per-head state (weights, 2 moments, gradient, update) allowed at once
HEAD_MEMORY = 1 << 30
# below this many weights per stage, CPU ops are too small to gain from several threads (and
# lose badly when the cores are shared, e.g. many probe tasks at once): use one thread
SMALL_PROBLEM = 1 << 21


def run_probe(data: ProbeData, settings: ProbeSettings, device: str = "cpu",
              progress: bool = True) -> dict:
    """Choose lr and weight decay on validation, refit on all train data, score on test.

    Returns the probe record of DESIGN §5 (accuracies are means over seeds).
    """
    check_settings(settings)
    with cpu_threads(probe_threads(data, settings, device)):
        return _run_probe(data, settings, device, progress)


def probe_threads(data: ProbeData, settings: ProbeSettings, device: str) -> int | None:
    """1 for a small probe on CPU (the per-step tensors are too small to share), else None."""
    n_weights = (len(settings.seeds) * len(settings.lrs) * len(WD_GRID[::COARSE_STEP])
                 * (data.x_train.shape[1] + 1) * data.n_classes)
    return 1 if device == "cpu" and n_weights < SMALL_PROBLEM else None


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with n torch CPU threads (None: unchanged), then restore the setting."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_probe(data: ProbeData, settings: ProbeSettings, device: str, progress: bool) -> dict:
    """run_probe's body (settings already checked)."""
    x_tr = torch.from_numpy(np.ascontiguousarray(data.x_train)).to(device)
    y_tr = torch.from_numpy(data.y_train).to(device)
    splits = [stratified_split(data.y_train, settings.val_proportion, s) for s in settings.seeds]
    if len(splits[0][1]) == 0:
        raise InputError(f"too few train samples ({len(data.y_train)}) for a validation hold-out "
                         f"of {settings.val_proportion}")
    fit_idx = torch.from_numpy(np.stack([kept for kept, _ in splits])).to(device)
    val_idx = torch.from_numpy(np.stack([held for _, held in splits])).to(device)
    n_fit, n_all = fit_idx.shape[1], len(data.y_train)
    n_heads = (len(range(0, len(WD_GRID), COARSE_STEP)) + 2 * len(REFINE_SPANS)) * len(settings.lrs)
    bar = tqdm(total=n_heads * _steps(n_fit, settings) + _steps(n_all, settings),
               desc="probe search", unit="head-step", disable=not progress, leave=False)

    def evaluate(candidates: list[tuple[int, int]]) -> dict[tuple[int, int], tuple]:
        """Train heads for (lr index, wd index) candidates, return their validation keys."""
        lrs = [settings.lrs[i] for i, _ in candidates]
        wds = [float(WD_GRID[j]) for _, j in candidates]
        scores = _train_and_score(x_tr, y_tr, fit_idx, val_idx, settings, data.n_classes,
                                  lrs, wds, bar.update)
        return {c: _key(scores, g) for g, c in enumerate(candidates)}

    best, results = coarse_to_fine(evaluate, len(settings.lrs))
    lr, wd = settings.lrs[best[0]], float(WD_GRID[best[1]])

    test = _refit_and_test(data, settings, device, lr, wd, bar.update)
    bar.close()
    return {
        "model_id": data.model_id, "dataset": data.dataset,
        "test_acc1": test[0], "test_acc5": test[1], "val_acc1": results[best][0],
        "lr": lr, "weight_decay": wd, "epochs": settings.epochs, "seeds": list(settings.seeds),
        "n_train": n_all, "n_test": len(data.y_test),
    }


def coarse_to_fine(evaluate: Callable[[list[tuple[int, int]]], dict[tuple[int, int], tuple]],
                   n_lrs: int, grid_size: int = len(WD_GRID)
                   ) -> tuple[tuple[int, int], dict[tuple[int, int], tuple]]:
    """Best (lr index, weight-decay grid index) by a per-lr coarse-to-fine search.

    `evaluate` maps a list of candidates to their ranking keys (higher is better; ties keep the
    current peak). Every COARSE_STEP-th grid point first, then peak +- each REFINE_SPANS step;
    each stage is one `evaluate` call over all learning rates. Returns the best candidate and
    every evaluated key.
    """
    results: dict[tuple[int, int], tuple] = {}
    coarse = range(0, grid_size, COARSE_STEP)
    results.update(evaluate([(i, j) for i in range(n_lrs) for j in coarse]))
    peaks = {i: max(coarse, key=lambda j, i=i: results[i, j]) for i in range(n_lrs)}
    for span in REFINE_SPANS:
        new = sorted({(i, j) for i, p in peaks.items() for j in (p - span, p + span)
                      if 0 <= j < grid_size and (i, j) not in results})
        if new:
            results.update(evaluate(new))
        for i, p in peaks.items():
            near = [j for j in (p, p - span, p + span) if (i, j) in results]
            peaks[i] = max(near, key=lambda j, i=i: results[i, j])
    return max(peaks.items(), key=lambda item: results[item]), results


def _train_and_score(x, y, fit_idx, val_idx, settings, n_classes, lrs, wds, on_step) -> Scores:
    """Train candidates in memory-bounded groups and concatenate their validation scores.

    on_step(k) is called after every training step of k heads (per seed).
    """
    per_head = 5 * 4 * len(settings.seeds) * (x.shape[1] + 1) * n_classes
    group = max(1, HEAD_MEMORY // per_head)
    parts = []
    for start in range(0, len(lrs), group):
        sl = slice(start, start + group)
        n_group = len(lrs[sl])
        heads = train_heads(x, y, fit_idx, settings.seeds, lrs[sl], wds[sl], n_classes,
                            settings.epochs, settings.batch_size, lambda k=n_group: on_step(k),
                            max(settings.lrs))
        parts.append(score_heads(heads, x, y, val_idx))
    return Scores(*(torch.cat([getattr(p, f) for p in parts], dim=1)
                    for f in ("hits1", "hits5", "loss_sum")), parts[0].n)


def _key(scores: Scores, g: int) -> tuple[float, float]:
    """Ranking key of candidate g: mean validation top-1 over seeds, then lower mean loss."""
    acc1 = scores.hits1[:, g].sum().item() / (scores.n * scores.hits1.shape[0])
    loss = scores.loss_sum[:, g].sum().item() / (scores.n * scores.hits1.shape[0])
    return acc1, -loss


def _refit_and_test(data: ProbeData, settings: ProbeSettings, device: str, lr: float, wd: float,
                    on_step) -> tuple[float, float]:
    """Refit one head per seed on the whole train split; mean test top-1 and top-5."""
    x_tr = torch.from_numpy(np.ascontiguousarray(data.x_train)).to(device)
    y_tr = torch.from_numpy(data.y_train).to(device)
    x_te = torch.from_numpy(np.ascontiguousarray(data.x_test)).to(device)
    y_te = torch.from_numpy(data.y_test).to(device)
    n_seeds = len(settings.seeds)
    all_idx = torch.arange(len(y_tr), device=device).expand(n_seeds, -1)
    # same lr_ref as in the search, so the refit head is trained exactly like the chosen one
    heads = train_heads(x_tr, y_tr, all_idx, settings.seeds, [lr], [wd], data.n_classes,
                        settings.epochs, settings.batch_size, lambda: on_step(1),
                        max(settings.lrs))
    test_idx = torch.arange(len(y_te), device=device).expand(n_seeds, -1)
    scores = score_heads(heads, x_te, y_te, test_idx)
    total = scores.n * n_seeds
    return scores.hits1.sum().item() / total, scores.hits5.sum().item() / total


def _steps(n: int, settings: ProbeSettings) -> int:
    return settings.epochs * -(-n // settings.batch_size)
