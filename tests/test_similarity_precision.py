"""Numerical care on the features real models give (issue 23): a large common mean with a tiny
column spread (the demo OpenCLIP RN: mean 0.11, spread 3e-5 to 4e-4), near-constant columns and
n < d. The engine centres every model's columns in float64 before forming its Gram matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sim_reference import reference_matrices
from test_similarity_metrics import ALL_METRICS
from threadpoolctl import threadpool_limits

from pysim.similarity import compute_similarities
from pysim.similarity.prepare import prepare_features

pytestmark = pytest.mark.usefixtures("one_thread")


def anisotropic(n: int, d: int, seed: int) -> np.ndarray:
    """Features 0.11 + low-rank structure with column spreads 3e-5..4e-4, three columns
    constant up to 1e-7 (float32, like stored features)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 8)) @ rng.standard_normal((8, d))
    x = 0.11 + z * np.geomspace(3e-5, 4e-4, d)
    x[:, :3] = 0.11 + 1e-7 * rng.standard_normal((n, 3))
    return x.astype(np.float32)


def zoo(n: int, d: int) -> dict[str, np.ndarray]:
    shared = anisotropic(n, d, 0)
    return {"a": shared, "b": (shared + anisotropic(n, d, 1)) / 2, "c": anisotropic(n, d, 2)}


@pytest.mark.parametrize("n, d", [(160, 96), (40, 96)], ids=["n>d", "n<d"])
def test_anisotropic_features_match_float64(n, d):
    feats = zoo(n, d)
    with threadpool_limits(1):
        want = reference_matrices({k: v.astype(np.float64) for k, v in feats.items()},
                                  ALL_METRICS)
        # the engine's own inputs: the l2-normalised features rounded to float32. The
        # reference for CKA takes them column-centred (CKA is translation invariant): Song et
        # al.'s unbiased HSIC formula on the raw Gram cancels terms of size 1 down to 1e-12 and
        # is itself 1e-5 off in float64 here
        prepared = {k: prepare_features(v).double().numpy() for k, v in feats.items()}
        exact = reference_matrices(prepared, ALL_METRICS, normalize="none")
        centred = {k: v - v.mean(axis=0) for k, v in prepared.items()}
        exact.update(reference_matrices(centred, [s for s in ALL_METRICS if s.method == "cka"],
                                        normalize="none"))
    got = compute_similarities(feats, ALL_METRICS)
    for spec in ALL_METRICS:
        assert np.isfinite(got[spec.id]).all(), spec.id
        # what the engine adds to its inputs' rounding (the uncentred Gram added 4.8e-4, below)
        np.testing.assert_allclose(got[spec.id], exact[spec.id], atol=1e-6, rtol=0,
                                   err_msg=spec.id)
        # against the raw features: the float32 rounding of the normalised features, and the
        # raw reference's own cancellation (3.1e-5 at n = 40 for unbiased CKA)
        np.testing.assert_allclose(got[spec.id], want[spec.id], atol=5e-5, rtol=0,
                                   err_msg=spec.id)


def test_uncentred_float32_gram_would_fail_here():
    # the plant: biased linear CKA from the raw float32 Gram (the engine before centring)
    feats = zoo(160, 96)
    x, y = (torch.nn.functional.normalize(torch.from_numpy(feats[k]), dim=1) for k in "ab")

    def hkh(g: torch.Tensor) -> torch.Tensor:
        g = g.double()
        return g - g.mean(0) - g.mean(1)[:, None] + g.mean()

    k, l = hkh(x @ x.T), hkh(y @ y.T)  # noqa: E741
    old = float((k * l).sum() / (k.norm() * l.norm()))
    spec = ALL_METRICS[1]
    assert spec.id == "cka_kernel_linear_biased"
    want = reference_matrices({k: v.astype(np.float64) for k, v in feats.items()}, [spec])
    assert abs(old - want[spec.id][0, 1]) > 1e-4
    got = compute_similarities(feats, [spec])[spec.id][0, 1]
    assert abs(got - want[spec.id][0, 1]) < 1e-6


def test_common_offset_leaves_translation_invariant_metrics_unchanged():
    # without normalisation, adding one large vector to every sample changes nothing for CKA,
    # Euclidean RDMs; only rounding remains (the offset is 1e3 times the spread)
    feats = zoo(60, 24)
    offset = {k: v + np.linspace(0.2, 0.5, v.shape[1], dtype=np.float32)
              for k, v in feats.items()}
    specs = [s for s in ALL_METRICS if s.method == "cka" or s.rsa_method == "euclidean"
             and s.method == "rsa"]
    a = compute_similarities(feats, specs, normalize="none")
    b = compute_similarities(offset, specs, normalize="none")
    for spec in specs:
        np.testing.assert_allclose(a[spec.id], b[spec.id], atol=1e-5, err_msg=spec.id)


def test_pairwise_families_on_anisotropic_features():
    # the whitening families get float64 features (engine.features_dtype): on these features
    # the float32 rounding of the normalised rows moved mean CCA by 7.5e-3, shape(0.5) by
    # 7.3e-3 and R^2 by 2.1e-2; what is left is the covariance-route reference's own error
    # (it squares the condition number) for CCA
    from functools import partial

    import sim_reference as ref

    from pysim.config import MetricSpec
    checks = [(MetricSpec.of("cca", cca_method="mean"), partial(ref.cca, variant="mean"),
               True, 2e-3),
              (MetricSpec.of("shape", alpha=0.5), partial(ref.shape_cosine, alpha=0.5),
               True, 1e-4),
              (MetricSpec.of("linear_regression"), ref.regression_r2, False, 1e-8),
              (MetricSpec.of("cknna", k=5), partial(ref.cknna, k=5), False, 1e-8)]
    feats = zoo(160, 96)
    got = compute_similarities(feats, [c[0] for c in checks])
    raw = {k: ref.normalise(v) for k, v in feats.items()}
    for spec, fn, symmetric, tol in checks:
        want = ref.pair_reference(raw, fn, symmetric=symmetric)
        assert np.isfinite(got[spec.id]).all(), spec.id
        np.testing.assert_allclose(got[spec.id], want, atol=tol, err_msg=spec.id)
    # the plant: the same engine on float32-prepared features is off by more than allowed
    from pysim.similarity import similarities_of_prepared
    rounded = similarities_of_prepared({k: prepare_features(v) for k, v in feats.items()},
                                       [checks[0][0]])
    want = ref.pair_reference(raw, checks[0][1])
    assert np.abs(rounded[checks[0][0].id] - want).max() > 2e-3
