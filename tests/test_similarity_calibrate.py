"""Calibrated scores (permutation null, one engine pass per permutation of all pairs) and
bootstrap intervals: uniform p-values under independence, small ones for a planted shared
component, intervals that cover the full-sample score."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kstest

from pysim.config import MetricSpec
from pysim.similarity.calibrate import bootstrap_interval, permutation_null

pytestmark = pytest.mark.usefixtures("one_thread")

CKA = MetricSpec("cka", "linear", False)
CCA = MetricSpec.of("cca", cca_method="mean")


def test_p_values_uniform_under_independence():
    rng = np.random.default_rng(0)
    feats = {f"m{i}": rng.standard_normal((30, 4)) for i in range(12)}  # 66 independent pairs
    out = permutation_null(feats, [CKA], permutations=99, seed=1)
    p = out.p_value[CKA.id][np.triu_indices(12, 1)]
    assert kstest(p, "uniform").pvalue > 0.05
    assert np.isnan(np.diag(out.p_value[CKA.id])).all()


def test_planted_shared_component_gives_small_p_values():
    rng = np.random.default_rng(2)
    shared = rng.standard_normal((40, 3))
    feats = {"a": shared @ rng.standard_normal((3, 6)) + 0.5 * rng.standard_normal((40, 6)),
             "b": shared @ rng.standard_normal((3, 5)) + 0.5 * rng.standard_normal((40, 5)),
             "c": rng.standard_normal((40, 5))}
    out = permutation_null(feats, [CKA, CCA], permutations=49, seed=3)
    for key in (CKA.id, CCA.id):
        assert out.p_value[key][0, 1] == pytest.approx(1 / 50)  # no null draw reached it
        assert out.calibrated[key][0, 1] > 3
        assert out.p_value[key][0, 2] > 0.02 and out.p_value[key][1, 2] > 0.02
    # the same seed gives the same null
    again = permutation_null(feats, [CKA, CCA], permutations=49, seed=3)
    np.testing.assert_array_equal(again.null_mean[CKA.id], out.null_mean[CKA.id])


def test_bootstrap_interval_covers_the_score():
    rng = np.random.default_rng(4)
    shared = rng.standard_normal((50, 3))
    feats = {"a": shared + 0.3 * rng.standard_normal((50, 3)),
             "b": shared @ rng.standard_normal((3, 4)) + 0.3 * rng.standard_normal((50, 4))}
    low, high = bootstrap_interval(feats, [CKA], resamples=40, seed=5)[CKA.id]
    score = permutation_null(feats, [CKA], permutations=1).score[CKA.id][0, 1]
    assert low[0, 1] < score < high[0, 1] and high[0, 1] - low[0, 1] < 0.5
