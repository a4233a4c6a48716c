"""The probe's weight-decay / learning-rate search rules against a re-typing of the original
study's tuners (sim_consistency/tasks/regularization_tuner.py, hyperparameter_tuner.py), driven
by injected validation-score functions (no training)."""

from __future__ import annotations

import numpy as np
import pytest

from pysim.probe.wd_search import GRIDS, first_best, run_searches, wd_search

PAPER = GRIDS["paper"]


def original_tune_lambda(acc, n: int = 64) -> tuple[int, float]:
    """The study's RegularizationTuner.tune_lambda on grid indices; acc(i): validation top-1."""
    def find_peak(idxs):
        best_idx, max_acc = 0, 0
        for i in idxs:
            if max_acc <= acc(i):
                best_idx, max_acc = i, acc(i)
        return best_idx, max_acc

    lambdas = np.logspace(-6, 1, n).tolist()
    peak, best = find_peak([lambdas.index(v) for v in np.logspace(-6, 1, 8).tolist()])
    step = 4
    while step > 0:
        left, right = max(peak - step, 0), min(peak + step, n - 1)
        idxs = [i for i in (left, right) if i != peak]
        if not idxs:
            break
        new, new_acc = find_peak(idxs)
        if new_acc > best:
            peak, best = new, new_acc
        step //= 2
    return peak, best


def original_tune(accs) -> int:
    """The study's HyperparameterTuner.tune over learning rates: index of the chosen lr."""
    best_lr, max_acc = 0, 0
    for lr, acc in enumerate(accs):
        if max_acc < acc:
            best_lr, max_acc = lr, acc
    return best_lr


def search_one(acc) -> tuple[int, float]:
    """pysim's search on the paper grid, scores injected: (peak index, its accuracy)."""
    calls = []

    def score(requests):
        calls.append([j for _, j in requests])
        return {(name, j): (acc(j),) for name, j in requests}

    peak, key = run_searches({"only": wd_search(PAPER)}, score)["only"]
    return peak, key[0]


def test_grid_is_the_studys_logspace_and_coarse_points_are_the_decades():
    assert np.array_equal(PAPER.values, np.logspace(-6, 1, 64))
    coarse = PAPER.values[::PAPER.coarse_step]
    assert np.allclose(coarse, 10.0 ** np.arange(-6, 2), rtol=1e-12, atol=0)
    assert len(coarse) == 8 and PAPER.refine_steps == (4, 2, 1)
    requested = []
    search = wd_search(PAPER)
    requested.append(next(search))
    assert requested[0] == [0, 9, 18, 27, 36, 45, 54, 63]


def test_coarse_tie_goes_to_the_larger_weight_decay():
    # 1e-4 (index 18) and 1e-2 (index 36) tie, every other point is worse
    def acc(i):
        return 0.8 if i in (18, 36) else 0.1
    assert original_tune_lambda(acc) == (36, 0.8)
    assert search_one(acc) == (36, 0.8)


def test_refinement_keeps_the_peak_on_a_tie_and_prefers_the_right_neighbour():
    # peak 36; 40 only ties it (stays at 36); then 34 and 38 both better and equal: 38 (right)
    table = {36: 0.5, 40: 0.5, 34: 0.7, 38: 0.7, 37: 0.7}

    def acc(i):
        return table.get(i, 0.2)
    assert original_tune_lambda(acc) == (38, 0.7)  # 37 only ties 38 in the last step
    assert search_one(acc) == (38, 0.7)


@pytest.mark.parametrize("table, expected", [
    # peak 1e-6 (index 0): -4 clamps onto the peak, so only 4 is tried; then 2 and 6 tie
    # without beating 4; then 3 wins
    ({0: 0.5, 4: 0.6, 2: 0.6, 6: 0.6, 3: 0.9}, (3, 0.9)),
    # peak 1e1 (index 63): only 59 is tried, and is not better
    ({63: 0.5, 59: 0.5, 54: 0.4}, (63, 0.5)),
])
def test_refinement_at_the_grid_edges(table, expected):
    def acc(i):
        return table.get(i, 0.0)
    assert original_tune_lambda(acc) == expected
    assert search_one(acc) == expected


@pytest.mark.parametrize("levels", [2, 3, 5, 64])
def test_random_score_functions_with_ties_match_the_original(levels):
    """Coarse validation scores (few distinct levels): ties everywhere, both rules agree."""
    rng = np.random.default_rng(levels)
    for _ in range(200):
        table = rng.integers(0, levels, size=64) / levels
        assert search_one(lambda i, t=table: float(t[i])) == original_tune_lambda(
            lambda i, t=table: float(t[i]))


def test_learning_rates_first_wins_a_tie_and_searches_run_in_lockstep():
    """Four lrs searched together; lrs 1 and 3 reach the same best accuracy: lr 1 wins."""
    rng = np.random.default_rng(7)
    tables = rng.integers(0, 4, size=(4, 64)) / 4
    tables[1, 45], tables[3, 18] = 1.0, 1.0
    tables[[0, 2]] = np.minimum(tables[[0, 2]], 0.75)
    stages = []

    def score(requests):
        stages.append(len(requests))
        return {(lr, j): (float(tables[lr, j]),) for lr, j in requests}

    found = run_searches({lr: wd_search(PAPER) for lr in range(4)}, score)
    reference = [original_tune_lambda(lambda i, t=t: float(t[i])) for t in tables]
    assert [(peak, key[0]) for peak, key in (found[lr] for lr in range(4))] == reference
    chosen = first_best([found[lr][1] for lr in range(4)])
    assert chosen == original_tune([acc for _, acc in reference]) == 1
    assert stages[0] == 4 * 8 and len(stages) == 4 and all(s <= 8 for s in stages[1:])


def test_fine_grid_keeps_pysims_former_grid():
    fine = GRIDS["fine"]
    assert np.array_equal(fine.values, np.logspace(-6, 1, 7 * 16 + 1))
    assert np.allclose(fine.values[::fine.coarse_step], 10.0 ** np.arange(-6, 2))
    assert fine.refine_steps == (8, 4, 2, 1)
