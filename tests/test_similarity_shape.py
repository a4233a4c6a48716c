"""Shape metrics / normalised Bures similarity (shape_alpha_<a>_<score>) and linear regression
R^2 (linear_regression_r2) against float64 references written from the papers
(tests/sim_reference.py: netrep's whitening and an explicit Procrustes alignment; Bures through
scipy's sqrtm of the n x n kernels; lstsq with intercept), and their invariances."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import sim_reference as ref
from test_similarity_metrics import related_models

from pysim.config import MetricSpec
from pysim.similarity import compute_similarities

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPES = [MetricSpec.of("shape", alpha=a, score="cosine") for a in (1.0, 0.5, 0.0)]
ANGULAR = MetricSpec.of("shape", alpha=0.5, score="angular")
PROCRUSTES = MetricSpec.of("shape", alpha=1.0, score="procrustes")
R2 = MetricSpec.of("linear_regression")
ALL = [*SHAPES, ANGULAR, PROCRUSTES, R2]


def test_ids_and_stored_parameters():
    assert [s.id for s in ALL] == [
        "shape_alpha_1_cosine", "shape_alpha_0.5_cosine", "shape_alpha_0_cosine",
        "shape_alpha_0.5_angular", "shape_alpha_1_procrustes", "linear_regression_r2"]
    assert R2.params()["symmetric"] is False


@pytest.mark.parametrize("n, widths", [(90, [6, 20, 45]), (25, [40, 8, 60])],
                         ids=["n>d", "n<d"])
def test_matches_float64_reference(n, widths):
    feats = related_models(n, widths, seed=4)
    got = compute_similarities(feats, ALL)
    prepared = {k: ref.normalise(v) for k, v in feats.items()}
    for spec in SHAPES:
        want = ref.pair_reference(prepared, partial(ref.shape_cosine,
                                                    alpha=spec.option("alpha")))
        np.testing.assert_allclose(got[spec.id], want, atol=1e-6, err_msg=spec.id)
    bures = ref.pair_reference(prepared, ref.bures_similarity)
    np.testing.assert_allclose(got["shape_alpha_1_cosine"], bures, atol=1e-6)
    half = got["shape_alpha_0.5_cosine"]
    np.testing.assert_allclose(got[ANGULAR.id], np.arccos(np.clip(half, -1, 1)), atol=1e-9)
    np.testing.assert_allclose(got[PROCRUSTES.id],
                               np.sqrt(2 - 2 * got["shape_alpha_1_cosine"]), atol=1e-9)
    want = ref.pair_reference(prepared, ref.regression_r2, symmetric=False)
    np.testing.assert_allclose(got[R2.id], want, atol=1e-6)
    assert not np.allclose(got[R2.id], got[R2.id].T)  # asymmetric
    if n > 40:  # the alphas disagree here (so a mixed-up whitening would fail)
        assert len({round(got[s.id][0, 1], 3) for s in SHAPES}) == 3


def test_invariances():
    feats = related_models(70, [9, 12], seed=6)
    x, y = feats["model_0"].astype(np.float64), feats["model_1"].astype(np.float64)
    rng = np.random.default_rng(2)
    orth = np.linalg.qr(rng.standard_normal((9, 9)))[0]
    linear = rng.standard_normal((9, 9)) + 3 * np.eye(9)
    perm = rng.permutation(70)

    def score(xv, yv):
        out = compute_similarities({"x": xv, "y": yv}, ALL, normalize="none")
        return {k: (v[0, 1], v[1, 0]) for k, v in out.items()}

    base = score(x, y)
    same = {"orthogonal": score(x @ orth, y), "shifted": score(x + 4.0, y),
            "permuted": score(x[perm], y[perm])}
    for name, moved in same.items():
        for key in base:
            np.testing.assert_allclose(moved[key], base[key], atol=1e-6, err_msg=(name, key))
    scaled, lin = score(3.0 * x, y), score(x @ linear, y)
    # isotropic scaling: alpha in {0, 1} only (alpha s + 1 - alpha is not proportional to s)
    for key in ("shape_alpha_1_cosine", "shape_alpha_0_cosine", R2.id):
        np.testing.assert_allclose(scaled[key], base[key], atol=1e-6, err_msg=key)
    assert abs(scaled["shape_alpha_0.5_cosine"][0] - base["shape_alpha_0.5_cosine"][0]) > 1e-4
    # invertible linear maps: fully whitened (alpha = 0) and R^2 predicting from x only
    np.testing.assert_allclose(lin["shape_alpha_0_cosine"], base["shape_alpha_0_cosine"],
                               atol=1e-6)
    assert abs(lin[R2.id][0] - base[R2.id][0]) < 1e-6  # row x predicts y
    assert abs(lin[R2.id][1] - base[R2.id][1]) > 1e-4  # y predicting a transformed x changes
    assert abs(lin["shape_alpha_1_cosine"][0] - base["shape_alpha_1_cosine"][0]) > 1e-4


def test_diagonal():
    feats = related_models(30, [5, 7], seed=1)
    got = compute_similarities(feats, ALL)
    for spec in ALL:
        diag = np.diag(got[spec.id])
        expected = 0.0 if spec.option("score") in ("angular", "procrustes") else 1.0
        assert np.allclose(diag, expected), spec.id
    assert math.isclose(got[PROCRUSTES.id][0, 1], got[PROCRUSTES.id][1, 0])
