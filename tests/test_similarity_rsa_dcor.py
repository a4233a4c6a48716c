"""RSA with the cosine comparator (rsa_method_<r>_corr_method_cosine) and distance correlation
against float64 references (tests/sim_reference.py) and the peer rsatoolbox 0.3.2
(tests/peers.py), with their invariances."""

from __future__ import annotations

import numpy as np
import pytest
import sim_reference as ref
from test_similarity_metrics import SMALL_PLAN, related_models

from pysim.config import MetricSpec
from pysim.similarity import compute_similarities

pytestmark = pytest.mark.usefixtures("one_thread")

COSINE = [MetricSpec("rsa", rsa_method=r, corr_method="cosine")
          for r in ("correlation", "cosine", "euclidean")]
DCOR = MetricSpec("distance_correlation")
SPECS = [*COSINE, DCOR]


@pytest.mark.parametrize("plan", [None, SMALL_PLAN], ids=["in_memory", "small_blocks"])
def test_matches_float64_reference(plan):
    feats = related_models(97, [5, 30, 120], seed=7)
    got = compute_similarities(feats, SPECS, plan=plan)
    want = ref.reference_matrices(feats, COSINE)
    prepared = {k: ref.normalise(v) for k, v in feats.items()}
    want[DCOR.id] = ref.pair_reference(prepared, ref.distance_correlation)
    for spec in SPECS:
        np.testing.assert_allclose(got[spec.id], want[spec.id], atol=1e-6, err_msg=spec.id)
    # the cosine comparator is not Pearson (uncentred): they differ here
    pearson = compute_similarities(feats, [MetricSpec("rsa", rsa_method="euclidean")])
    assert np.abs(pearson["rsa_method_euclidean_corr_method_pearson"]
                  - got["rsa_method_euclidean_corr_method_cosine"]).max() > 1e-2


def test_distance_correlation_invariances():
    feats = related_models(60, [8, 11], seed=8)
    x, y = feats["model_0"].astype(np.float64), feats["model_1"].astype(np.float64)
    rng = np.random.default_rng(3)
    orth = np.linalg.qr(rng.standard_normal((8, 8)))[0]
    perm = rng.permutation(60)

    def score(xv, yv):
        return compute_similarities({"x": xv, "y": yv}, [DCOR], normalize="none")[DCOR.id][0, 1]

    base = score(x, y)
    for moved in (score(x @ orth, y), score(5 * x + 2, y), score(x[perm], y[perm])):
        assert abs(moved - base) < 1e-6
    assert abs(score(x @ np.diag(np.linspace(0.2, 5, 8)), y) - base) > 1e-3  # not linear maps


def test_against_rsatoolbox():
    """rsatoolbox 0.3.2: RDMs by `calc_rdm` (correlation, euclidean: squared Euclidean in
    rsatoolbox, so our euclidean Pearson/Spearman is compared on the correlation RDM only)
    and `compare` with cosine / corr / spearman. Largest deviations seen: 2.2e-9 (cosine),
    9.7e-10 (pearson), 0 (spearman)."""
    from peers import peer

    peer("rsatoolbox")
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, compare

    feats = related_models(60, [5, 30], seed=9)
    prepared = {k: ref.normalise(v) for k, v in feats.items()}
    rdms = [calc_rdm(Dataset(v), method="correlation") for v in prepared.values()]
    specs = [MetricSpec("rsa", rsa_method="correlation", corr_method=c)
             for c in ("cosine", "pearson", "spearman")]
    got = compute_similarities(feats, specs)
    for spec, method in zip(specs, ("cosine", "corr", "spearman"), strict=True):
        peer_value = float(compare(rdms[0], rdms[1], method=method)[0, 0])
        assert abs(got[spec.id][0, 1] - peer_value) < 1e-6, (spec.id, peer_value)
    # rsatoolbox's euclidean RDM is the squared distance over the number of features: a
    # monotone map of ours within a model, so the rank comparator must agree exactly
    squared = [calc_rdm(Dataset(v), method="euclidean") for v in prepared.values()]
    spec = MetricSpec("rsa", rsa_method="euclidean", corr_method="spearman")
    ours = compute_similarities(feats, [spec])[spec.id][0, 1]
    assert abs(ours - float(compare(squared[0], squared[1], method="spearman")[0, 0])) < 1e-6
