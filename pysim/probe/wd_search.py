"""The weight-decay and learning-rate search, free of training: scores come from a function.

The original study's rule (the default): on `logspace(-6, 1, 64)` (9 points per decade) try the
8 decade points, the larger weight decay winning a tie; then around the peak +-4, +-2, +-1 grid
steps, where the better of the two neighbours (the right one on a tie) replaces the peak only
when strictly better; across learning rates the first one wins a tie. Each search is a generator
(it yields grid indices to score and receives their keys), so that many searches can share one
batched training step and a test can drive one with any score function.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

# a ranking key: larger is better, compared as a tuple (e.g. (accuracy,) or (accuracy, -loss))
Key = tuple[float, ...]
Search = Generator[list[int], dict[int, Key], tuple[int, Key]]


@dataclass(frozen=True)
class WdGrid:
    """Weight decays logspace(start, stop, num), the coarse stride and the refinement steps."""

    name: str
    start: int
    stop: int
    num: int
    coarse_step: int
    refine_steps: tuple[int, ...]

    @property
    def values(self) -> np.ndarray:
        return np.logspace(self.start, self.stop, self.num)

    def record(self) -> dict:
        """The grid as written into the probe JSON."""
        return {"name": self.name, "start": self.start, "stop": self.stop, "num": self.num,
                "coarse_step": self.coarse_step, "refine_steps": list(self.refine_steps)}


GRIDS = {
    # the original study: 9 points per decade, decades first, then +-4, +-2, +-1
    "paper": WdGrid("paper", -6, 1, 64, 9, (4, 2, 1)),
    # pysim before issue 14: 16 points per decade, then +-8, +-4, +-2, +-1
    "fine": WdGrid("fine", -6, 1, 113, 16, (8, 4, 2, 1)),
}


def last_best(indices: Sequence[int], keys: dict[int, Key]) -> int:
    """The best of `indices` in order, a later one winning a tie (the study's `<=`)."""
    best = indices[0]
    for j in indices[1:]:
        if keys[j] >= keys[best]:
            best = j
    return best


def wd_search(grid: WdGrid) -> Search:
    """One coarse-to-fine search: yields indices to score, returns (peak index, its key)."""
    last = grid.num - 1
    coarse = list(range(0, grid.num, grid.coarse_step))
    keys = yield coarse
    peak = last_best(coarse, keys)
    best = keys[peak]
    for step in grid.refine_steps:
        tests = [j for j in (max(peak - step, 0), min(peak + step, last)) if j != peak]
        if not tests:
            break
        keys = yield tests
        candidate = last_best(tests, keys)
        if keys[candidate] > best:  # only a strictly better neighbour moves the peak
            peak, best = candidate, keys[candidate]
    return peak, best


def run_searches(searches: dict[Hashable, Search],
                 score: Callable[[list[tuple[Hashable, int]]], dict[tuple[Hashable, int], Key]]
                 ) -> dict[Hashable, tuple[int, Key]]:
    """Drive many searches in lockstep; `score` gets every (search id, index) of one stage."""
    requests = {name: next(search) for name, search in searches.items()}
    done: dict[Hashable, tuple[int, Key]] = {}
    while requests:
        keys = score([(name, j) for name, js in requests.items() for j in js])
        pending = {}
        for name, js in requests.items():
            try:
                pending[name] = searches[name].send({j: keys[name, j] for j in js})
            except StopIteration as stop:
                done[name] = stop.value
        requests = pending
    return done


def first_best(keys: Sequence[Key]) -> int:
    """Index of the best key, the first winning a tie (the study's strict `<` over lrs)."""
    return max(range(len(keys)), key=lambda i: keys[i])
