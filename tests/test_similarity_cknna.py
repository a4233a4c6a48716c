"""CKNNA (cknna_k_<k>) against a dense float64 reference written from platonic-rep's
definition (tests/sim_reference.py: n x n masks, Song et al.'s unbiased HSIC), and its
invariances. No PyPI peer (platonic-rep is not packaged)."""

from __future__ import annotations

import numpy as np
import pytest
import sim_reference as ref
from test_similarity_metrics import related_models

from pysim.config import MetricSpec
from pysim.similarity import cknna as cknna_module
from pysim.similarity import compute_similarities

pytestmark = pytest.mark.usefixtures("one_thread")

SPECS = [MetricSpec.of("cknna", k=k) for k in (5, 12)]


@pytest.mark.parametrize("rows", [2048, 13], ids=["one_block", "row_blocks"])
def test_matches_reference(monkeypatch, rows):
    monkeypatch.setattr(cknna_module, "ROWS", rows)
    feats = related_models(80, [6, 20, 50], seed=13)
    got = compute_similarities(feats, SPECS)
    prepared = {k: ref.normalise(v) for k, v in feats.items()}
    for spec in SPECS:
        assert np.isfinite(got[spec.id]).all(), spec.id
        k = spec.option("k")
        want = ref.pair_reference(prepared, lambda x, y, k=k: ref.cknna(x, y, k),
                                  symmetric=False)
        np.testing.assert_allclose(got[spec.id], want, atol=1e-6, err_msg=spec.id)
        # platonic-rep's definition is not symmetric (masked kernels are not): nor is ours
        assert not np.allclose(want, want.T) and not np.allclose(got[spec.id], got[spec.id].T)
    assert abs(got["cknna_k_5"][0, 1] - got["cknna_k_12"][0, 1]) > 1e-3


def test_invariances_and_parsing(tmp_path):
    feats = related_models(60, [8, 10], seed=14)
    x, y = feats["model_0"].astype(np.float64), feats["model_1"].astype(np.float64)
    orth = np.linalg.qr(np.random.default_rng(5).standard_normal((8, 8)))[0]

    def score(xv):
        return compute_similarities({"x": xv, "y": y}, SPECS[:1], normalize="none")["cknna_k_5"]

    base = score(x)[0, 1]
    assert abs(score(x @ orth)[0, 1] - base) < 1e-6
    assert abs(score(2.5 * x)[0, 1] - base) < 1e-6
    assert abs(score(x + 1.0)[0, 1] - base) > 1e-3  # the raw kernel: not translation invariant
    import json

    from pysim.config import load_metrics
    from pysim.errors import InputError
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"sim_method": "cknna", "k": 1}]))
    with pytest.raises(InputError, match="k' >= 2"):
        load_metrics(path)
