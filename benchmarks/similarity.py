"""Benchmark (not a test): the all-pairs engine against the original per-pair method.

Prints both wall times and their ratio (m=16, n=2000, widths 64-768, the three metrics of
similarity_metric_config_local_global.json), the largest deviation from the float64 per-pair
values, and the peak RSS of `pysim-similarity --max-memory 1GB` at m=32, n=4000.
Run: .venv/bin/python benchmarks/similarity.py [--quick]
On a GPU machine: benchmarks/similarity.py --gpu (m=64, n=10000, widths 384-2048 on CUDA: the
whole stage, the engine on device-resident features per stage, deviation on sampled pairs).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

from pysim.config import load_metrics
from pysim.io import SplitFeatures, read_features, write_features
from pysim.similarity import compute_similarities, similarities_of_prepared
from pysim.stages.similarity import run_similarity

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
METRICS = HERE / "similarity_metric_config_local_global.json"


def make_features(directory: Path, m: int, n: int, seed: int = 0,
                  widths: tuple[int, int] = (64, 768)) -> list[Path]:
    """m synthetic models (widths evenly spread) sharing a latent structure, as h5 files."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 16))
    keys = np.array([f"img{i:06d}" for i in range(n)])
    targets = np.arange(n) % 10
    paths = []
    for i, d in enumerate(np.linspace(*widths, m).astype(int)):
        feats = np.maximum(latent @ rng.standard_normal((16, d)), 0) \
            + (0.5 + i / m) * rng.standard_normal((n, d))
        path = directory / f"model_{i:02d}.h5"
        write_features(path, {"train": SplitFeatures(feats.astype(np.float32), targets, keys)},
                       {"model_id": f"model_{i:02d}", "dataset": "synthetic",
                        "module_name": "head"})
        paths.append(path)
    return paths


# --- the original method: every pair on its own, kernels rebuilt for every HSIC term ------

def _load(path: Path) -> np.ndarray:
    x = read_features(path, "train").features.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _linear(x: np.ndarray) -> np.ndarray:
    return x @ x.T


def _rbf(x: np.ndarray, sigma: float = 0.4) -> np.ndarray:
    g = x @ x.T
    d2 = np.diag(g)[:, None] + np.diag(g)[None, :] - 2 * g
    return np.exp(-d2 / (2 * sigma**2))


def _u_centre(k: np.ndarray) -> np.ndarray:
    n = len(k)
    k = k.copy()
    np.fill_diagonal(k, 0)
    means = k.sum(0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    k -= means[:, None]
    k -= means[None, :]
    np.fill_diagonal(k, 0)
    return k


def _hsic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    return float(np.sum(_u_centre(k) * _u_centre(l)))


def _cka(kernel, x: np.ndarray, y: np.ndarray) -> float:
    """Three HSIC terms, each building both kernels anew (as the per-pair original did)."""
    xy = _hsic(kernel(x), kernel(y))
    xx = _hsic(kernel(x), kernel(x))
    yy = _hsic(kernel(y), kernel(y))
    return xy / np.sqrt(xx * yy)


def baseline(paths: list[Path], pairs: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """The per-pair method on the given pairs: reload both files, CKA x2, RSA with scipy."""
    ids = ["cka_kernel_linear_unbiased", "cka_kernel_rbf_unbiased_sigma_0.4",
           "rsa_method_correlation_corr_method_spearman"]
    out = {k: np.full((len(paths), len(paths)), np.nan) for k in ids}
    iu = None
    for i, j in pairs:
        x, y = _load(paths[i]), _load(paths[j])
        if iu is None:
            iu = np.triu_indices(len(x), k=1)
        values = [_cka(_linear, x, y), _cka(_rbf, x, y),
                  spearmanr((1 - np.corrcoef(x))[iu], (1 - np.corrcoef(y))[iu])[0]]
        for key, value in zip(ids, values, strict=True):
            out[key][i, j] = out[key][j, i] = value
    return out


def peak_rss_of_cli(paths: list[Path], out: Path, max_memory: str, threads: int) -> tuple:
    """Run pysim-similarity as a child process; its peak RSS (MiB) and wall time."""
    args = [sys.executable, str(ROOT / "bin" / "pysim-similarity"), "--metrics", str(METRICS),
            "--out", str(out), "--device", "cpu", "--max-memory", max_memory]
    for p in paths:
        args += ["--features", str(p)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"pysim-similarity failed:\n{stderr}")
    return usage.ru_maxrss / 1024, wall


def gpu_run(m: int = 64, n: int = 10000) -> None:
    """The prepared CUDA run: whole stage, engine on device-resident features, deviation."""
    from pysim.similarity.prepare import prepare_features

    logging.basicConfig(level=logging.INFO, format="  %(message)s", stream=sys.stdout)
    specs = load_metrics(METRICS)
    with tempfile.TemporaryDirectory(prefix="pysim-bench-") as tmp:
        start = time.perf_counter()
        paths = make_features(Path(tmp), m, n, widths=(384, 2048))
        print(f"m={m}, n={n}, widths 384-2048 written in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        sims = run_similarity(paths, METRICS, Path(tmp) / "sims.h5", device="cuda",
                               progress=False)
        print(f"whole pysim-similarity stage on CUDA: {time.perf_counter() - start:.2f} s")
        feats = {p.stem: prepare_features(read_features(p, "train").features, "l2", "cuda")
                 for p in paths}
        torch.cuda.synchronize()
        start = time.perf_counter()
        similarities_of_prepared(feats, specs)
        torch.cuda.synchronize()
        print(f"engine, features already on the GPU: {time.perf_counter() - start:.2f} s")
        del feats
        pairs = [(0, m - 1), (m // 3, m // 2)]
        ref = baseline(paths, pairs)
        deviation = max(abs(sims.matrices[k][i, j] - ref[k][i, j]) for k in ref for i, j in pairs)
        print(f"max |engine - float64 per-pair| on pairs {pairs}: {deviation:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="m=6, n=500; RSS at m=8, n=1000")
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--rss-models", type=int, default=32)
    parser.add_argument("--rss-samples", type=int, default=4000)
    parser.add_argument("--baseline-pairs", type=int, default=0,
                        help="time only this many pairs of the baseline and extrapolate (0: all)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and BLAS threads for both methods (the box is shared)")
    parser.add_argument("--gpu", action="store_true", help="the prepared CUDA run (see above)")
    parser.add_argument("--rss-only", action="store_true", help="only the peak-RSS measurement")
    args = parser.parse_args()
    if args.gpu:
        gpu_run()
        return
    if args.quick:
        args.models, args.samples, args.rss_models, args.rss_samples = 6, 500, 8, 1000
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="pysim-bench-") as tmp, \
            threadpool_limits(args.threads):
        tmp = Path(tmp)
        if not args.rss_only:
            speed(tmp, args)
        rss_paths = make_features(tmp / "rss", args.rss_models, args.rss_samples, seed=1)
        rss, wall = peak_rss_of_cli(rss_paths, tmp / "rss.h5", "1GB", args.threads)
        print(f"pysim-similarity --max-memory 1GB, m={args.rss_models}, n={args.rss_samples}: "
              f"peak RSS {rss:.0f} MiB, {wall:.1f} s")


def speed(tmp: Path, args: argparse.Namespace) -> None:
    """Engine vs the per-pair baseline on the same files, and the deviation between them."""
    m, n = args.models, args.samples
    paths = make_features(tmp, m, n)
    print(f"m={m} models, n={n} samples, widths 64-768, metrics: "
          f"{', '.join(s.id for s in load_metrics(METRICS))}; {args.threads} thread(s)")

    walls = []
    for _ in range(3):  # the box is shared: report the median of three runs and the spread
        start = time.perf_counter()
        sims = run_similarity(paths, METRICS, tmp / "sims.h5", device="cpu", progress=False)
        walls.append(time.perf_counter() - start)
    engine_wall = float(np.median(walls))
    feats = {p.stem: read_features(p, "train").features for p in paths}
    start = time.perf_counter()
    compute_similarities(feats, load_metrics(METRICS))
    compute_wall = time.perf_counter() - start

    all_pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    timed = all_pairs
    if 0 < args.baseline_pairs < len(all_pairs):
        pick = np.random.default_rng(0).choice(len(all_pairs), args.baseline_pairs, False)
        timed = [all_pairs[k] for k in sorted(pick)]
    start = time.perf_counter()
    ref = baseline(paths, timed)
    base_wall = (time.perf_counter() - start) * len(all_pairs) / len(timed)
    deviation = max(np.nanmax(np.abs(sims.matrices[k] - ref[k])) for k in ref)
    note = "" if timed is all_pairs else f" (extrapolated from {len(timed)} pairs)"
    print(f"baseline (per pair, {len(all_pairs)} pairs): {base_wall:8.2f} s{note}")
    print(f"engine, pysim-similarity stage:     {engine_wall:8.2f} s (median of "
          f"{', '.join(f'{w:.2f}' for w in walls)}; compute only {compute_wall:.2f} s)")
    print(f"speed-up: {base_wall / engine_wall:.1f}x (compute only "
          f"{base_wall / compute_wall:.1f}x)")
    print(f"max |engine - float64 per-pair|: {deviation:.2e}")


if __name__ == "__main__":
    main()
