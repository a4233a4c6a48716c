"""The probe protocol: per seed and learning rate a coarse-to-fine weight-decay search on a
stratified validation hold-out, then each seed's choice refit on the whole train split and
scored on test (the rules themselves live in pysim.probe.wd_search)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Hashable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from pysim.errors import InputError
from pysim.probe.data import ProbeData, stratified_split
from pysim.probe.heads import Scores, score_heads, train_heads
from pysim.probe.settings import ProbeSettings, check_settings
from pysim.probe.wd_search import GRIDS, Key, first_best, run_searches, wd_search

log = logging.getLogger("pysim.probe")

# bytes of per-head state (weights, 2 moments, gradient, update) allowed at once
HEAD_MEMORY = 1 << 30
# below this many weights per stage, CPU ops are too small to gain from several threads (and
# lose badly when the cores are shared, e.g. many probe tasks at once): use one thread
SMALL_PROBLEM = 1 << 21
# top-5 accuracy is reported only with more classes than this (the study: NaN otherwise)
TOP5_MIN_CLASSES = 6


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
    grid = GRIDS[settings.wd_grid]
    n_weights = (len(settings.seeds) * len(settings.lrs) * len(range(0, grid.num,
                                                                     grid.coarse_step))
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
    grid = GRIDS[settings.wd_grid]
    x_tr = torch.from_numpy(np.ascontiguousarray(data.x_train)).to(device)
    y_tr = torch.from_numpy(data.y_train).to(device)
    splits = [stratified_split(data.y_train, settings.val_proportion, s) for s in settings.seeds]
    if len(splits[0][1]) == 0:
        raise InputError(f"too few train samples ({len(data.y_train)}) for a validation hold-out "
                         f"of {settings.val_proportion}")
    fit_idx = torch.from_numpy(np.stack([kept for kept, _ in splits])).to(device)
    val_idx = torch.from_numpy(np.stack([held for _, held in splits])).to(device)
    n_fit, n_all, n_seeds = fit_idx.shape[1], len(data.y_train), len(settings.seeds)
    n_lrs = len(settings.lrs)
    tracks = n_seeds if settings.selection == "per_seed" else 1
    n_heads = (len(range(0, grid.num, grid.coarse_step)) + 2 * len(grid.refine_steps) * tracks)
    bar = tqdm(total=n_heads * n_lrs * _steps(n_fit, settings) + n_seeds * _steps(n_all, settings),
               desc="probe search", unit="head-step", disable=not progress, leave=False)
    cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    diverged_heads: list[tuple[float, float]] = []  # (lr, wd) whose training loss is NaN/inf

    def score(requests: list[tuple[Hashable, int]]) -> dict[tuple[Hashable, int], Key]:
        """Train the new (lr index, wd index) candidates of one stage; every request's key."""
        new = sorted({(name[1], j) for name, j in requests} - cache.keys())
        if new:
            scores = _train_and_score(x_tr, y_tr, fit_idx, val_idx, settings, data.n_classes,
                                      [settings.lrs[i] for i, _ in new],
                                      [float(grid.values[j]) for _, j in new], bar.update)
            for g, cand in enumerate(new):
                acc = scores.hits1[:, g].cpu().numpy() / scores.n
                loss = scores.loss_sum[:, g].cpu().numpy() / scores.n
                diverged = ~np.isfinite(loss)  # never chosen: accuracy -1, loss +inf
                if diverged.any():
                    diverged_heads.append((settings.lrs[cand[0]], float(grid.values[cand[1]])))
                cache[cand] = (np.where(diverged, -1.0, acc), np.where(diverged, np.inf, loss))
        return {(name, j): _key(cache[name[1], j], name[0], settings.tie_break)
                for name, j in requests}

    seed_keys = list(range(n_seeds)) if settings.selection == "per_seed" else [None]
    found = run_searches({(s, i): wd_search(grid) for s in seed_keys for i in range(n_lrs)},
                         score)
    choices = []  # (lr index, wd index) per seed
    for s in seed_keys:
        best_lr = first_best([found[s, i][1] for i in range(n_lrs)])
        choice = (best_lr, found[s, best_lr][0])
        choices += [choice] * (1 if s is not None else n_seeds)
    val_acc1 = [float(cache[c][0][s]) for s, c in enumerate(choices)]
    if min(val_acc1) < 0:
        raise InputError("probe training diverged (non-finite loss) for every learning rate "
                         f"and weight decay of a seed (--lrs {','.join(map(str, settings.lrs))});"
                         " use smaller learning rates")
    if diverged_heads:
        log.warning("probe: %d (lr, weight decay) candidates diverged (non-finite loss) and were "
                    "not chosen, e.g. lr %g, weight decay %g", len(diverged_heads),
                    *diverged_heads[0])
    lrs = [settings.lrs[i] for i, _ in choices]
    wds = [float(grid.values[j]) for _, j in choices]
    acc1, acc5 = _refit_and_test(data, settings, device, lrs, wds, bar.update)
    bar.close()
    top5 = float(np.mean(acc5)) if data.n_classes >= TOP5_MIN_CLASSES else None
    return {
        "model_id": data.model_id, "dataset": data.dataset,
        "test_acc1": float(np.mean(acc1)), "test_acc5": top5, "val_acc1": float(np.mean(val_acc1)),
        "lr": lrs, "weight_decay": wds, "epochs": settings.epochs, "seeds": list(settings.seeds),
        "n_train": n_all, "n_test": len(data.y_test),
        "batch_size": settings.batch_size, "val_proportion": settings.val_proportion,
        "selection": settings.selection, "tie_break": settings.tie_break,
        "wd_grid": grid.record(), "test_acc1_per_seed": acc1, "val_acc1_per_seed": val_acc1,
    }


def _key(scores: tuple[np.ndarray, np.ndarray], seed: int | None, tie_break: str) -> Key:
    """Ranking key from per-seed (accuracy, loss): one seed's, or the mean over seeds (None)."""
    acc, loss = (scores[0][seed], scores[1][seed]) if seed is not None else (
        scores[0].mean(), scores[1].mean())
    if acc < 0 or (seed is None and scores[0].min() < 0):  # diverged (for some seed)
        acc, loss = -1.0, np.inf
    return (float(acc),) if tie_break == "order" else (float(acc), -float(loss))


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


def _refit_and_test(data: ProbeData, settings: ProbeSettings, device: str, lrs: list[float],
                    wds: list[float], on_step) -> tuple[list[float], list[float]]:
    """Refit every seed's chosen head on the whole train split; per-seed test top-1, top-5.

    Seeds that chose the same (lr, weight decay) are trained together, as in the search.
    """
    x_tr = torch.from_numpy(np.ascontiguousarray(data.x_train)).to(device)
    y_tr = torch.from_numpy(data.y_train).to(device)
    x_te = torch.from_numpy(np.ascontiguousarray(data.x_test)).to(device)
    y_te = torch.from_numpy(data.y_test).to(device)
    acc1, acc5 = [0.0] * len(lrs), [0.0] * len(lrs)
    for lr, wd in dict.fromkeys(zip(lrs, wds, strict=True)):
        members = [s for s in range(len(lrs)) if (lrs[s], wds[s]) == (lr, wd)]
        seeds = [settings.seeds[s] for s in members]
        all_idx = torch.arange(len(y_tr), device=device).expand(len(seeds), -1)
        # same lr_ref as in the search, so the refit head is trained exactly like the chosen one
        heads = train_heads(x_tr, y_tr, all_idx, seeds, [lr], [wd], data.n_classes,
                            settings.epochs, settings.batch_size, lambda: on_step(1),
                            max(settings.lrs))
        test_idx = torch.arange(len(y_te), device=device).expand(len(seeds), -1)
        scores = score_heads(heads, x_te, y_te, test_idx)
        if not bool(torch.isfinite(scores.loss_sum).all()):
            raise InputError(f"probe training diverged (non-finite loss) when refitting lr {lr:g},"
                             f" weight decay {wd:g} on the whole train split; use smaller "
                             "learning rates")
        for row, s in enumerate(members):
            acc1[s] = scores.hits1[row, 0].item() / scores.n
            acc5[s] = scores.hits5[row, 0].item() / scores.n
    return acc1, acc5


def _steps(n: int, settings: ProbeSettings) -> int:
    return settings.epochs * -(-n // settings.batch_size)
