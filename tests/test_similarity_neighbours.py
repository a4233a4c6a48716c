"""Neighbourhood measures (neighbourhood_<measure>_k_<k>) against a per-sample Python-set
reference written from the ReSi / platonic-rep definitions (tests/sim_reference.py), and their
invariances. No installable peer: platonic-rep and ReSi are not on PyPI; their definitions
were read and re-derived in the reference."""

from __future__ import annotations

import numpy as np
import pytest
import sim_reference as ref
from test_similarity_metrics import related_models

from pysim.config import MetricSpec
from pysim.similarity import compute_similarities
from pysim.similarity import neighbours as nb_module

pytestmark = pytest.mark.usefixtures("one_thread")

MEASURES = ("jaccard", "rank_similarity", "second_order_cosine", "cycle_knn")
SPECS = [MetricSpec.of("neighbourhood", measure=m, k=6) for m in MEASURES]


@pytest.mark.parametrize("rows", [2048, 17], ids=["one_block", "row_blocks"])
def test_matches_reference(monkeypatch, rows):
    monkeypatch.setattr(nb_module, "ROWS", rows)
    feats = related_models(70, [5, 20, 40], seed=11)
    got = compute_similarities(feats, SPECS)
    prepared = {k: ref.normalise(v) for k, v in feats.items()}
    for spec, measure in zip(SPECS, MEASURES, strict=True):
        want = ref.pair_reference(prepared, lambda x, y, m=measure: ref.neighbourhood(x, y, m, 6),
                                  symmetric=measure != "cycle_knn")
        np.testing.assert_allclose(got[spec.id], want, atol=1e-9, err_msg=spec.id)
    assert len({round(got[s.id][0, 1], 4) for s in SPECS}) == len(SPECS)  # they disagree
    assert not np.allclose(got[SPECS[3].id], got[SPECS[3].id].T)


def test_invariances_and_bad_k():
    feats = related_models(50, [7, 9], seed=12)
    x, y = feats["model_0"].astype(np.float64), feats["model_1"].astype(np.float64)
    orth = np.linalg.qr(np.random.default_rng(4).standard_normal((7, 7)))[0]

    def score(xv):
        out = compute_similarities({"x": xv, "y": y}, SPECS, normalize="none")
        return np.array([out[s.id][0, 1] for s in SPECS])

    base = score(x)
    np.testing.assert_allclose(score(x @ orth), base, atol=1e-9)
    np.testing.assert_allclose(score(3.0 * x), base, atol=1e-9)
    assert np.abs(score(x + 2.0) - base).max() > 1e-3  # cosine: not translation invariant
    from pysim.errors import InputError
    with pytest.raises(InputError, match="k=6"):
        compute_similarities({"x": x[:6], "y": y[:6]}, SPECS[:1])
