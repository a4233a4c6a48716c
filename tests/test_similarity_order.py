"""Every family of issue 23: the matrix does not depend on the order the models are given in
(DESIGN §4), asymmetric ones included (row and column follow their models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_similarity_cli import FAMILY_METRICS
from test_similarity_metrics import related_models

from pysim.config import load_metrics
from pysim.similarity import compute_similarities

pytestmark = pytest.mark.usefixtures("one_thread")

MORE = [{"sim_method": "cca", "cca_method": m} for m in ("mean", "r2", "yanai", "pillai")] + [
    {"sim_method": "shape", "alpha": 0.0, "score": "procrustes"},
    {"sim_method": "cknna", "k": 6},
    *[{"sim_method": "neighbourhood", "measure": m, "k": 6}
      for m in ("jaccard", "rank_similarity", "second_order_cosine")]]


def test_model_order_does_not_matter(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(FAMILY_METRICS + MORE))
    specs = load_metrics(path)
    feats = related_models(64, [5, 18, 33, 9], seed=21)
    order = [2, 0, 3, 1]
    names = list(feats)
    forward = compute_similarities(feats, specs)
    shuffled = compute_similarities({names[i]: feats[names[i]] for i in order}, specs)
    for spec in specs:
        assert np.isfinite(forward[spec.id]).all(), spec.id
        np.testing.assert_allclose(shuffled[spec.id], forward[spec.id][np.ix_(order, order)],
                                   atol=1e-12, err_msg=spec.id)


def test_all_kinds_in_one_call_under_every_memory_plan():
    # STACKED, RANKED and PAIRWISE families together, streamed in small blocks, with ranks
    # spilled or recomputed per slice: the same matrices as in memory
    from test_similarity_metrics import ALL_METRICS, SLICED_PLAN, SMALL_PLAN

    from pysim.config import MetricSpec
    specs = [*ALL_METRICS, MetricSpec.of("cca", cca_method="pwcca"),
             MetricSpec.of("cknna", k=5), MetricSpec("distance_correlation")]
    feats = related_models(90, [5, 30, 60], seed=1)
    whole = compute_similarities(feats, specs)
    for plan in (SMALL_PLAN, SLICED_PLAN):
        part = compute_similarities(feats, specs, plan=plan)
        for spec in specs:
            np.testing.assert_allclose(part[spec.id], whole[spec.id], atol=1e-7,
                                       err_msg=spec.id)
