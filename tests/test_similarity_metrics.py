"""Every metric id of the engine against the float64 pair-by-pair reference (DESIGN §4)."""

from __future__ import annotations

import numpy as np
import pytest
from sim_reference import reference_matrices
from threadpoolctl import threadpool_limits

from pysim.config import MetricSpec
from pysim.similarity import compute_similarities
from pysim.similarity.engine import MemoryPlan

ALL_METRICS = [
    MetricSpec("cka", "linear", True),
    MetricSpec("cka", "linear", False),
    MetricSpec("cka", "rbf", True, 0.4),
    MetricSpec("cka", "rbf", False, 0.4),
    MetricSpec("cka", "rbf", True, 0.5, "median"),
    MetricSpec("cka", "rbf", False, 0.8, "median"),
    *[MetricSpec("rsa", rsa_method=r, corr_method=c)
      for r in ("correlation", "cosine", "euclidean") for c in ("pearson", "spearman")],
    MetricSpec("mutual_knn", k=5),
]
# small blocks that divide nothing: 157 rows in blocks of 37, float64 chunks of 23 rows,
# Spearman ranks spilled to files and multiplied 1000 entries at a time
SMALL_PLAN = MemoryPlan(chunk=23, block=37, cache_grams=False, spill_ranks=True, columns=1000)
# the GPU plan for ranks that do not fit: recomputed for each of 5 column slices
SLICED_PLAN = MemoryPlan(chunk=23, block=37, cache_grams=False, spill_ranks=False, columns=1000,
                         rank_slices=5)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def case():
    """Three models (widths below and above n = 157) and their float64 reference matrices."""
    feats = related_models(157, [5, 40, 300])
    with threadpool_limits(1):
        return feats, reference_matrices(feats, ALL_METRICS)


def related_models(n: int, widths: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    """Models that share a latent structure (so similarities are far from 0) plus noise."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 6))
    out = {}
    for i, d in enumerate(widths):
        w = rng.standard_normal((6, d))
        feats = np.tanh(latent @ w) + 0.3 * (i + 1) * rng.standard_normal((n, d))
        out[f"model_{i}"] = feats.astype(np.float32)
    return out


@pytest.mark.parametrize("plan", [None, SMALL_PLAN, SLICED_PLAN],
                         ids=["in_memory", "small_blocks", "rank_slices"])
def test_every_metric_matches_float64_reference(case, plan):
    feats, ref = case
    got = compute_similarities(feats, ALL_METRICS, plan=plan)
    assert set(got) == {s.id for s in ALL_METRICS}
    for spec in ALL_METRICS:
        mat = got[spec.id]
        assert mat.dtype == np.float64 and mat.shape == (3, 3)
        assert np.array_equal(np.diag(mat), np.ones(3)), spec.id
        np.testing.assert_allclose(mat, ref[spec.id], atol=1e-4, rtol=0, err_msg=spec.id)
        off = mat[np.triu_indices(3, 1)]
        assert np.all(np.abs(off) < 0.999), spec.id  # a real comparison, not trivially 1


def test_reference_agreement_without_normalisation():
    feats = related_models(90, [12, 120], seed=3)
    specs = [MetricSpec("cka", "rbf", True, 0.7, "median"), MetricSpec("cka", "linear", False),
             MetricSpec("rsa", rsa_method="euclidean", corr_method="spearman")]
    got = compute_similarities(feats, specs, normalize="none")
    ref = reference_matrices(feats, specs, normalize="none")
    for spec in specs:
        np.testing.assert_allclose(got[spec.id], ref[spec.id], atol=1e-4, rtol=0)


def test_orthogonal_transform_and_scaling_give_linear_cka_one():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((120, 30))
    q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    feats = {"x": x.astype(np.float32), "y": (3.7 * x @ q).astype(np.float32)}
    specs = [MetricSpec("cka", "linear", True), MetricSpec("cka", "linear", False)]
    for normalize in ("l2", "none"):
        got = compute_similarities(feats, specs, normalize=normalize)
        for spec in specs:
            assert got[spec.id][0, 1] == pytest.approx(1.0, abs=1e-5)


def test_biased_cka_is_pulled_up_on_near_diagonal_rbf_kernels():
    # independent random models: their RBF kernels with a narrow sigma are close to the
    # identity. HKH of a near-identity kernel is ~H for both, so the biased estimator sees two
    # almost equal matrices (CKA near 1); U-centring removes the diagonal, leaving ~0.
    rng = np.random.default_rng(2)
    feats = {f"m{i}": rng.standard_normal((100, 64)).astype(np.float32) for i in range(2)}
    biased, unbiased = MetricSpec("cka", "rbf", False, 0.3), MetricSpec("cka", "rbf", True, 0.3)
    got = compute_similarities(feats, [biased, unbiased])
    ref = reference_matrices(feats, [biased, unbiased])
    assert got[biased.id][0, 1] > 0.9
    assert abs(got[unbiased.id][0, 1]) < 0.1
    for spec in (biased, unbiased):
        assert got[spec.id][0, 1] == pytest.approx(ref[spec.id][0, 1], abs=1e-4)
