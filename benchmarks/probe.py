"""Benchmark (not a test): wall time of one full linear probe (search + refit) on CPU or CUDA.

Baseline, measured in the same run: the original study's way, one torch.nn.Linear + AdamW run
per (seed, lr, weight decay); one such run is timed and multiplied by the number of runs the
same search needs. Usage: python benchmarks/probe.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from pysim.probe import ProbeData, ProbeSettings
from pysim.probe.data import l2_normalize, stratified_split
from pysim.probe.search import cpu_threads, probe_threads, run_probe
from pysim.probe.wd_search import GRIDS


def synthetic(n: int, d: int, n_classes: int, seed: int = 0) -> ProbeData:
    """Gaussian classes around random means, split 80/20 into train and test."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = (rng.standard_normal((n_classes, d)) * 0.3)[y] + rng.standard_normal((n, d))
    x = l2_normalize(x.astype(np.float32))
    tr, te = stratified_split(y, 0.2, seed)
    return ProbeData("bench", "synthetic", x[tr], y[tr], x[te], y[te], n_classes)


def one_sequential_run(data: ProbeData, settings: ProbeSettings, device: str) -> float:
    """Seconds for one head trained alone with torch.nn.Linear + torch.optim.AdamW."""
    x = torch.from_numpy(data.x_train).to(device)
    y = torch.from_numpy(data.y_train).to(device)
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], data.n_classes).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    steps = math.ceil(len(y) / settings.batch_size)
    start = time.perf_counter()
    for _ in range(settings.epochs):
        order = torch.randperm(len(y), device=device)
        for i in range(steps):
            idx = order[i * settings.batch_size:(i + 1) * settings.batch_size]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n=2000, d=256, 20 classes")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    n, d, c = (2000, 256, 20) if args.quick else (10_000, 1024, 100)
    data = synthetic(n, d, c)
    settings = ProbeSettings()
    threads = probe_threads(data, settings, args.device) or torch.get_num_threads()
    print(f"probe benchmark: n={n} d={d} classes={c} device={args.device} "
          f"torch threads={threads} settings={settings}")

    start = time.perf_counter()
    record = run_probe(data, settings, device=args.device, progress=False)
    if args.device == "cuda":
        torch.cuda.synchronize()
    batched = time.perf_counter() - start
    print(f"batched probe: {batched:.1f} s  (test top-1 {record['test_acc1']:.4f}, "
          f"lr per seed {record['lr']}, wd per seed "
          f"{[f'{wd:.3g}' for wd in record['weight_decay']]})")

    # search runs at 80% of the train data, the refit at 100%: count them as train-data passes
    grid = GRIDS[settings.wd_grid]
    n_search = ((len(grid.values[::grid.coarse_step]) + 2 * len(grid.refine_steps))
                * len(settings.lrs))
    runs = len(settings.seeds) * (n_search * (1 - settings.val_proportion) + 1)
    threads = probe_threads(data, settings, args.device)
    with cpu_threads(threads):  # the same thread count as the probe used
        one = one_sequential_run(data, settings, args.device)
    baseline = one * runs
    print(f"sequential baseline: {one:.2f} s per run x {runs:.0f} run-equivalents = "
          f"{baseline:.0f} s (extrapolated)")
    print(f"speed-up batched vs sequential: {baseline / batched:.1f}x")


if __name__ == "__main__":
    main()
