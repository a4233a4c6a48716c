"""Benchmark (not a test): the metric families of issue 23, all pairs at once, beside the peer
`repsim` 0.1.5 (all pairs in C++) on the same features, in the same run.

For each measure both have (linear CKA biased, CCA R^2 = repsim "yanai", mean CCA = repsim
"pillai", PWCCA symmetrised, SVCCA) it prints pysim's and repsim's wall times, their ratio and
the largest deviation; for pysim-only families (shape, linear regression, distance correlation,
neighbourhood, RSA cosine) pysim's time, and for the permutation null the time per engine pass.
Modest default size (m=6, n=600, widths 32-256: about 1 minute on one core); no asserts.
repsim is installed by tests/peers.py into ~/.cache/pysim/test-peers/repsim if missing.
Run: .venv/bin/python benchmarks/families.py [--m 8] [--n 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from peers import PEERS, peer  # noqa: E402

from pysim.config import MetricSpec  # noqa: E402
from pysim.similarity import compute_similarities  # noqa: E402
from pysim.similarity.calibrate import permutation_null  # noqa: E402


def features(m: int, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 16))
    widths = np.linspace(32, 256, m).astype(int)
    return {f"m{i}": (np.tanh(latent @ rng.standard_normal((16, d)))
                      + 0.5 * rng.standard_normal((n, d))).astype(np.float32)
            for i, d in enumerate(widths)}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=6)
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    feats = features(args.m, args.n)
    unit = [f.astype(np.float64) / np.linalg.norm(f.astype(np.float64), axis=1, keepdims=True)
            for f in feats.values()]
    try:
        import pytest
        repsim = peer("repsim")
    except pytest.skip.Exception as exc:  # no PyPI: pysim only
        print(f"repsim unavailable ({exc}); pysim times only")
        repsim = None
    print(f"m={args.m}, n={args.n}, widths 32-256, {args.threads} thread(s); repsim from "
          f"{PEERS / 'repsim'}")
    both = [("cka_kernel_linear_biased", MetricSpec("cka", "linear", False),
             lambda: repsim.cka(unit, kernel_type="linear", estimator="gretton"), lambda x: x),
            ("cca_method_r2", MetricSpec.of("cca", cca_method="r2"),
             lambda: repsim.cca(unit, summary_type="yanai"), lambda x: x),
            ("cca_method_mean", MetricSpec.of("cca", cca_method="mean"),
             lambda: repsim.cca(unit, summary_type="pillai"), lambda x: x),
            ("cca_method_pwcca", MetricSpec.of("cca", cca_method="pwcca"),
             lambda: repsim.pwcca(unit), lambda x: (x + x.T) / 2),
            ("cca_method_svcca_variance_0.99", MetricSpec.of("cca", cca_method="svcca"),
             lambda: repsim.svcca(unit, summary_type="pillai"), lambda x: x)]
    print(f"{'measure':40s} {'pysim s':>8s} {'repsim s':>9s} {'ratio':>7s} {'max dev':>9s}")
    with threadpool_limits(args.threads):
        for name, spec, peer_fn, sym in both:
            got, t_ours = timed(lambda s=spec: compute_similarities(feats, [s])[s.id])
            line = f"{name:40s} {t_ours:8.2f}"
            if repsim is not None:
                try:
                    theirs, t_peer = timed(peer_fn)
                except (TypeError, ValueError) as exc:
                    theirs, t_peer = None, float("nan")
                    line += f"  (repsim call failed: {exc})"
                if theirs is not None:
                    dev = np.abs(sym(got) - theirs).max()
                    line += f" {t_peer:9.2f} {t_peer / t_ours:6.1f}x {dev:9.2e}"
            print(line)
        only = [MetricSpec.of("shape", alpha=1.0), MetricSpec.of("shape", alpha=0.5),
                MetricSpec.of("linear_regression"), MetricSpec("distance_correlation"),
                MetricSpec("rsa", rsa_method="correlation", corr_method="cosine"),
                *[MetricSpec.of("neighbourhood", measure=k, k=10) for k in
                  ("jaccard", "rank_similarity", "second_order_cosine", "cycle_knn")]]
        for spec in only:
            _, t = timed(lambda s=spec: compute_similarities(feats, [s]))
            print(f"{spec.id:40s} {t:8.2f}")
        spec = MetricSpec("cka", "linear", False)
        _, t = timed(lambda: permutation_null(feats, [spec], permutations=5))
        print(f"permutation null, linear CKA: {t / 6:.2f} s per engine pass (6 passes)")


if __name__ == "__main__":
    main()
