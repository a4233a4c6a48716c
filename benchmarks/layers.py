"""Benchmark (not a test): the similarity stage with many layer representations.

Synthetic layer-wise study: M models x L layers (a random tanh network per model, widths
192-768), n samples, the three metrics of similarity_metric_config_local_global.json. Runs
`bin/pysim-similarity --max-memory` in a fresh process (benchmarks/peak_child.py) for growing
m (representations) and prints seconds, whole-process peak RSS, and the log-log slope of time
in m; then a projection (not a measurement) for m = 768, n = 10 000.
Run: .venv/bin/python benchmarks/layers.py [--ms 50 100 200] [--n 2000] [--max-memory 3GB]
     [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pysim.io import SplitFeatures, write_features
from pysim.similarity.engine import plan_memory

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
METRICS = HERE / "similarity_metric_config_local_global.json"
LAYERS = 10


def make_layers(directory: Path, m: int, n: int, seed: int = 0) -> list[Path]:
    """m representations: m / LAYERS models of LAYERS layers each, as features files."""
    rng = np.random.default_rng(seed)
    keys = np.array([f"img{i:06d}" for i in range(n)])
    targets, paths = np.arange(n) % 10, []
    latent = rng.standard_normal((n, 32)).astype(np.float32)
    for model in range(int(np.ceil(m / LAYERS))):
        d = int(rng.choice([192, 384, 768]))
        x = latent @ rng.standard_normal((32, d)).astype(np.float32)
        for layer in range(LAYERS):
            if len(paths) == m:
                break
            w = rng.standard_normal((d, d)).astype(np.float32) / np.sqrt(d)
            x = np.tanh(x @ w) + 0.2 * rng.standard_normal((n, d)).astype(np.float32)
            rep = f"m{model:03d}" + ("" if layer == 0 else f"@blocks.{layer}")
            path = directory / f"{rep}.h5"
            write_features(path, {"train": SplitFeatures(x, targets, keys)},
                           {"model_id": rep, "dataset": "synthetic", "module_name": "b"})
            paths.append(path)
    return paths


def run_stage(paths: list[Path], out: Path, max_memory: str, device: str = "cpu"
              ) -> tuple[float, float]:
    """Seconds and peak RSS (GiB, the whole process) of one pysim-similarity run, in a fresh
    process measured by benchmarks/peak_child.py."""
    argv = [str(ROOT / "bin" / "pysim-similarity"), "--metrics", str(METRICS), "--out", str(out),
            "--max-memory", max_memory, "--device", device]
    for path in paths:
        argv += ["--features", str(path)]
    proc = subprocess.run([sys.executable, str(HERE / "peak_child.py"),
                           json.dumps([["-c", ""], argv])], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("POINT "))
    point = json.loads(line.removeprefix("POINT "))
    return point["seconds"], point["peak"] / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ms", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--max-memory", default="3GB")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the GPU node)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_layers(Path(tmp), max(args.ms), args.n)
        for m in sorted(args.ms):
            seconds, peak = run_stage(paths[:m], Path(tmp) / f"s{m}.h5", args.max_memory,
                                      args.device)
            rows.append({"m": m, "n": args.n, "seconds": round(seconds, 1),
                         "peak_rss_gib": round(peak, 2)})
            print(json.dumps(rows[-1]), flush=True)
    ms, ts = np.log([r["m"] for r in rows]), np.log([r["seconds"] for r in rows])
    slope = float(np.polyfit(ms, ts, 1)[0]) if len(rows) > 1 else float("nan")
    # the pair products (quadratic in m) dominate only at the larger m: project from the
    # last two points
    last = float((ts[-1] - ts[-2]) / (ms[-1] - ms[-2])) if len(rows) > 1 else 2.0
    print(f"time slope in m: {slope:.2f} overall, {last:.2f} between the last two points")
    project(rows[-1], last)


def project(last: dict, slope: float) -> None:
    """Projection (not measured) to m = 768, n = 10 000: CPU time from the measured slope and
    n^2, work in FLOP, the engine's plan on a 120 GB budget and the Spearman rank spill."""
    m, n = 768, 10_000
    cpu = last["seconds"] * (m / last["m"]) ** slope * (n / last["n"]) ** 2
    flop = 2 * (2 * m) ** 2 * n * n + 2 * m * m * n * (n - 1) / 2 + 2 * 2 * m * n * n * 768
    cpu_plan = plan_memory(120 * 2**30, m, n, n_stacked=2, n_spearman=1, median=False)
    gpu_plan = plan_memory(120 * 2**30, m, n, n_stacked=2, n_spearman=1, median=False,
                           recompute_ranks=True)
    # the GPU plan recomputes every model's Gram matrix (d = 768) and ranks once per slice
    flop += gpu_plan.rank_slices * m * 2 * n * n * 768
    ranks = 4 * n * (n - 1) // 2 * m
    print(json.dumps({"projected_cpu_hours_this_machine": round(cpu / 3600, 1),
                      "flop": f"{flop:.2e}", "gpu_seconds_at_20_tflops": round(flop / 20e12),
                      "plan_120GB_cpu": cpu_plan.__dict__, "plan_120GB_gpu": gpu_plan.__dict__,
                      "spearman_rank_bytes_gb": ranks / 1e9,
                      "sorts_of_rank_vectors_gpu": gpu_plan.rank_slices * m,
                      "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
