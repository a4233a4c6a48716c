"""Engine behaviour: memory-bounded streaming, order invariance, determinism, bad models."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch

from pysim.config import MetricSpec
from pysim.errors import InputError
from pysim.similarity import compute_similarities, parse_size
from pysim.similarity.engine import MemoryPlan, plan_memory
from pysim.similarity.memory import current_rss

METRICS = [MetricSpec("cka", "linear", True), MetricSpec("cka", "rbf", False, 0.4),
           MetricSpec("cka", "rbf", True, 0.5, "median"),
           MetricSpec("rsa", rsa_method="correlation", corr_method="pearson"),
           MetricSpec("rsa", rsa_method="correlation", corr_method="spearman"),
           MetricSpec("mutual_knn", k=7)]


pytestmark = pytest.mark.usefixtures("one_thread")


def models(n: int = 203, widths=(8, 33, 64, 250), seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 5))
    return {f"m{i}": (np.tanh(latent @ rng.standard_normal((5, d)))
                      + 0.5 * rng.standard_normal((n, d))).astype(np.float32)
            for i, d in enumerate(widths)}


def test_parse_size():
    assert parse_size("1GB") == 2**30
    assert parse_size("512MB") == 512 * 2**20
    assert parse_size("2g") == 2 * 2**30
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("1000") == 1000
    for bad in ("lots", "-1GB", "0", "1XB"):
        with pytest.raises(InputError, match="max-memory"):
            parse_size(bad)


def test_small_budget_plans_streaming_and_too_small_is_bad_input():
    roomy = plan_memory(2**34, m=4, n=203, n_stacked=5, n_spearman=1, median=True)
    assert roomy.store and not roomy.spill_ranks  # everything held: one pass
    tight = plan_memory(4 * 2**20, m=8, n=203, n_stacked=5, n_spearman=1, median=True)
    assert tight.block < 203 and not tight.cache_grams
    ranks_only = plan_memory(2 * 10**6, m=32, n=203, n_stacked=0, n_spearman=1, median=False)
    assert ranks_only.spill_ranks  # Spearman ranks go to temporary files
    with pytest.raises(InputError, match="max-memory is too small"):
        plan_memory(100_000, m=4, n=203, n_stacked=5, n_spearman=1, median=True)


def test_gpu_plan_recomputes_rank_slices_within_the_budget():
    budget, m, n = 2 * 10**6, 32, 203
    plan = plan_memory(budget, m=m, n=n, n_stacked=0, n_spearman=1, median=False,
                       recompute_ranks=True)
    pairs = n * (n - 1) // 2
    assert not plan.spill_ranks and not plan.cache_grams and plan.rank_slices > 1
    width = -(-pairs // plan.rank_slices)  # one slice of every model's int32 ranks
    pass1 = 4 * n * n + plan.chunk * n * 64 + 28 * pairs
    assert pass1 + 4 * m * width + 8 * m * plan.columns <= 0.8 * budget
    roomy = plan_memory(2**34, m=m, n=n, n_stacked=0, n_spearman=1, median=False,
                        recompute_ranks=True)
    assert roomy.rank_slices == 1  # ranks that fit are computed once and kept


def test_recomputed_rank_slices_equal_stored_ranks():
    feats = models()
    spearman = [s for s in METRICS if s.corr_method == "spearman"] + [METRICS[0]]
    kept = compute_similarities(feats, spearman)  # ranks held in memory, CKA in one pass
    spilled = compute_similarities(feats, spearman, plan=MemoryPlan(17, 29, False, True, 1000))
    sliced = compute_similarities(feats, spearman, plan=MemoryPlan(
        17, 29, False, False, 1000, rank_slices=7))
    np.testing.assert_allclose(sliced[spearman[0].id], kept[spearman[0].id], atol=1e-12, rtol=0)
    for key in kept:  # the streamed CKA path alike
        np.testing.assert_allclose(sliced[key], spilled[key], atol=1e-12, rtol=0, err_msg=key)


def test_memory_bounded_path_equals_in_memory_path(caplog):
    feats = models()
    full = compute_similarities(feats, METRICS)
    with caplog.at_level(logging.INFO, logger="pysim.similarity"):
        bounded = compute_similarities(feats, METRICS, max_memory=current_rss() + 3 * 2**20)
    block = int(re.search(r"block=(\d+)", caplog.text).group(1))
    assert block < 203  # the tight budget really streamed over row blocks
    streamed = compute_similarities(feats, METRICS, plan=MemoryPlan(17, 29, False, True, 1000))
    # the in-memory path stores centred matrices in float32 (products still in float64)
    for key in full:
        np.testing.assert_allclose(bounded[key], full[key], atol=1e-6, rtol=0, err_msg=key)
        np.testing.assert_allclose(streamed[key], bounded[key], atol=1e-12, rtol=0, err_msg=key)
    with pytest.raises(InputError, match="max-memory"):
        compute_similarities(feats, METRICS, max_memory=current_rss() + 10_000)


def test_model_order_permutes_the_matrix_and_runs_are_bit_identical():
    feats = models(n=120)
    first = compute_similarities(feats, METRICS)
    again = compute_similarities(feats, METRICS)
    order = [2, 0, 3, 1]
    names = list(feats)
    permuted = compute_similarities({names[i]: feats[names[i]] for i in order}, METRICS)
    for key in first:
        assert np.array_equal(first[key], again[key])
        np.testing.assert_allclose(permuted[key], first[key][np.ix_(order, order)], atol=1e-12)
        assert np.array_equal(first[key], first[key].T)


@pytest.mark.parametrize("breakage", ["nan", "inf", "constant"])
def test_bad_model_gets_nan_row_and_warning(caplog, breakage):
    feats = models(n=90)
    good = compute_similarities(feats, METRICS)
    broken = dict(feats)
    x = feats["m1"].copy()
    if breakage == "constant":
        x[:] = x[0]
    else:
        x[5, 3] = np.nan if breakage == "nan" else np.inf
    broken["m1"] = x
    with caplog.at_level(logging.WARNING, logger="pysim.similarity"):
        got = compute_similarities(broken, METRICS)
    assert "model m1" in caplog.text
    keep = [0, 2, 3]
    for key in got:
        assert np.isnan(got[key][1]).all() and np.isnan(got[key][:, 1]).all()
        np.testing.assert_allclose(got[key][np.ix_(keep, keep)], good[key][np.ix_(keep, keep)],
                                   atol=1e-12)


def test_sample_without_variance_only_breaks_correlation_rsa(caplog):
    feats = models(n=90)
    x = feats["m2"].copy()
    x[7] = 0.25  # one sample with equal features: correlation distance undefined for it
    feats["m2"] = x
    with caplog.at_level(logging.WARNING, logger="pysim.similarity"):
        got = compute_similarities(feats, METRICS)
    assert "model m2" in caplog.text and "rsa_method_correlation" in caplog.text
    for key, mat in got.items():
        assert np.isnan(mat[2, 0]) == key.startswith("rsa_method_correlation"), key


def test_too_few_samples_for_knn_is_bad_input():
    with pytest.raises(InputError, match="k=7"):
        compute_similarities(models(n=7), [MetricSpec("mutual_knn", k=7)])


def test_cuda_rank_path_equals_cpu_rank_path_and_scipy():
    # the torch code path that CUDA uses, run on CPU tensors, against the numpy path and scipy
    from scipy.stats import rankdata

    from pysim.similarity.base import ModelInfo
    from pysim.similarity.rsa import (
        _ranks_from_sorted_numpy,
        _ranks_from_sorted_torch,
        _sort_keys_numpy,
        _sort_keys_torch,
    )

    x = torch.from_numpy(models(n=61)["m1"])
    x[5] = x[9]  # duplicate samples give exact ties in the RDM
    x = x / x.norm(dim=1, keepdim=True)
    g = x @ x.T
    info = ModelInfo.from_features(x, g.diagonal())
    spec = METRICS[4]
    keys_np, keys_t = _sort_keys_numpy(g, spec, info, 7), _sort_keys_torch(g, spec, info, 7)
    assert torch.equal(keys_np, keys_t)
    ranks_np = _ranks_from_sorted_numpy(np.sort(keys_np.numpy()))
    ranks_t = _ranks_from_sorted_torch(torch.sort(keys_t).values).numpy()
    assert np.array_equal(ranks_np, ranks_t)
    values = (keys_np.numpy() >> 32).astype(np.int64)  # the float32 bits, order-preserving
    assert np.array_equal(ranks_np, 2 * rankdata(values) - (len(values) + 1))
    assert len(np.unique(values)) < len(values)  # ties were really there
