"""Benchmark (not a test): time and peak memory of every stage as the work grows, growth laws.

Each point runs the real stage (bin/pysim-extract, pysim-subset, pysim-similarity, pysim-probe;
pysim.io.read_features(rows=...) for the similarity stage's subset read) in its own fresh
subprocess: first on a tiny input (imports, kernels), then, after resetting the kernel's
peak-RSS mark, on the real input. A point reports seconds, peak RSS above that warm baseline,
bytes read and, on CUDA, torch's peak GPU memory. Every series prints ratios against its
smallest point (same run) and the log-log slope of time and memory against the size it
varies; then the fitted cost laws and the study's projection (benchmarks/scale_study.py).
Usage: python benchmarks/scale.py [--quick] [--gpu] [--threads 1] [--json FILE] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = ROOT / "bin"
METRICS = HERE / "similarity_metric_config_local_global.json"
DEMO_MODELS = ROOT / "assets" / "demo" / "models.json"
MIB = 1 << 20
# CPU threads of every measured run (--threads): 1 by default, so that the 2 shared cores of
# this machine give per-core rates instead of thread contention (the projection runs
# 16 / THREADS such tasks per 16-core node)
THREADS = 1

CHILD = HERE / "peak_child.py"  # one point per fresh process

# the similarity stage's reads of one features file: digests of keys/targets, the subset's rows
READ_SUBSET = """
from pysim.io import read_features, read_subset, split_digests
import numpy as np
split_digests(argv[0], "train")
rows = np.asarray(read_subset(argv[1])["indices"])
read_features(argv[0], "train", rows=rows)
"""


@dataclass
class Series:
    """Points of one stage as one size grows (the others fixed)."""

    stage: str
    param: str
    fixed: str
    points: list[dict] = field(default_factory=list)

    def slope(self, key: str) -> float:
        """Log-log slope of `key` against the varied size (how the cost grows)."""
        x = np.log([p["x"] for p in self.points])
        y = np.log([max(p[key], 1e-9) for p in self.points])
        return float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else float("nan")


def measure(warm: list[str], real: list[str]) -> dict:
    """Seconds, peak RSS above the warm baseline and bytes read of one run, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(THREADS),
           "MKL_NUM_THREADS": str(THREADS)}
    proc = subprocess.run([sys.executable, str(CHILD), json.dumps([warm, real])],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"point failed: {real}\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("POINT "))
    out = json.loads(line.removeprefix("POINT "))
    return {"seconds": out["seconds"], "extra_mib": (out["peak"] - out["base"]) / MIB,
            "read_mib": out["read"] / MIB, "gpu_mib": out["gpu"] / MIB}


# --- inputs ----------------------------------------------------------------------------------

def write_images(root: Path, n: int, seed: int = 0) -> str:
    """A CLIP-benchmark dataset wds/scale_<n> of n 32 px shape images (train split only)."""
    from pysim.demo import SHAPES, _shape_image, _write_split

    name = f"scale_{n}"
    if not (root / f"wds_{name}").exists():
        rng = np.random.default_rng([seed, n])
        samples = [(_shape_image(rng, SHAPES[i % len(SHAPES)]), i % len(SHAPES))
                   for i in range(n)]
        _write_split(root / f"wds_{name}" / "train", samples, max(1, n // 2000), rng)
        (root / f"wds_{name}" / "classnames.txt").write_text("\n".join(SHAPES) + "\n")
    return f"wds/{name}"


def write_feature_file(path: Path, n: int, d: int, classes: int, n_test: int = 0,
                       seed: int = 0, model_id: str = "bench") -> Path:
    """A features file (n x d float32 train, n_test test) of Gaussian classes, block by block."""
    from pysim.feature_writer import FeatureWriter

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, d)).astype(np.float32)
    with FeatureWriter(path) as writer:
        for split, rows in (("train", n), ("test", n_test)):
            if not rows:
                continue
            sink = writer.split(split)
            for start in range(0, rows, 8192):
                idx = np.arange(start, min(rows, start + 8192))
                y = idx % classes
                x = means[y] + rng.standard_normal((len(idx), d), dtype=np.float32)
                sink.append(x, y, [f"{split}{i:08d}" for i in idx])
        writer.set_attrs({"model_id": model_id, "dataset": "scale", "module_name": "head"})
    return path


# --- stages ----------------------------------------------------------------------------------

def extract_series(tmp: Path, sizes: list[int], device: str) -> Series:
    """pysim-extract (demo tiny ViT, 32 px, 1 worker) on n images."""
    series = Series("extract", "n images", f"timm_vit_tiny 32px d=192, {device}")
    def argv(dataset: str, out: str) -> list[str]:
        return [str(BIN / "pysim-extract"), "--models", str(DEMO_MODELS), "--model-id",
                "timm_vit_tiny", "--dataset-root", str(tmp), "--dataset", dataset, "--out",
                str(tmp / out), "--quiet", "--num-workers", "1", "--batch-size", "256",
                "--device", device]
    warm = argv(write_images(tmp, 64), "warm.h5")
    for n in sizes:
        point = measure(warm, argv(write_images(tmp, n), f"x{n}.h5"))
        series.points.append({"x": n, **point, "rate": n / point["seconds"]})
    return series


def subset_series(tmp: Path, sizes: list[int], d: int, n_s: int) -> tuple[Series, Series]:
    """pysim-subset, then the similarity stage's reads (digests + subset rows) of one file."""
    from pysim.subset import make_subset

    make = Series("subset", "n_total", f"max-samples {n_s}")
    read = Series("subset read", "n_total", f"{n_s} rows of width {d}")
    small = write_feature_file(tmp / "small.h5", 200, 8, 10)
    warm_subset = [str(BIN / "pysim-subset"), "--features", str(small), "--out",
                   str(tmp / "small.json"), "--max-samples", "50"]
    warm_read = ["-c", READ_SUBSET, str(small), str(tmp / "small.json")]
    make_subset(small, tmp / "small.json", 50)  # for the read's warm-up
    for n in sizes:
        f = write_feature_file(tmp / f"sub{n}x{d}.h5", n, d, 100)
        sub = tmp / f"sub{n}.json"
        p = measure(warm_subset, [str(BIN / "pysim-subset"), "--features", str(f), "--out",
                                  str(sub), "--max-samples", str(n_s)])
        make.points.append({"x": n, **p})
        p = measure(warm_read, ["-c", READ_SUBSET, str(f), str(sub)])
        read.points.append({"x": n, **p, "file_mib": f.stat().st_size / MIB})
    return make, read


def similarity_run(tmp: Path, n: int, m: int, d: int, device: str) -> dict:
    """pysim-similarity (3 metrics) on m models of n samples x d."""
    def argv(n: int, m: int, d: int, tag: str) -> list[str]:
        files = [write_feature_file(tmp / f"sim{n}x{d}_{i}.h5", n, d, 10, seed=i,
                                    model_id=f"m{i}") for i in range(m)]
        return [str(BIN / "pysim-similarity"), *[a for f in files for a in ("--features", str(f))],
                "--metrics", str(METRICS), "--out", str(tmp / f"sim_{tag}.h5"),
                "--device", device]
    return measure(argv(50, 2, 8, "warm"), argv(n, m, d, f"{n}_{m}"))


def similarity_series(tmp: Path, ns: list[int], ms: list[int], d: int,
                      device: str) -> tuple[Series, Series]:
    """pysim-similarity as the number of samples and the number of models grow."""
    by_n = Series("similarity", "n samples", f"m={ms[0]}, d={d}, 3 metrics, {device}")
    by_m = Series("similarity", "m models", f"n={ns[0]}, d={d}, 3 metrics, {device}")
    cache: dict[tuple[int, int], dict] = {}
    for n, m, series in [(n, ms[0], by_n) for n in ns] + [(ns[0], m, by_m) for m in ms]:
        if (n, m) not in cache:
            cache[n, m] = similarity_run(tmp, n, m, d, device)
        series.points.append({"x": n if series is by_n else m, **cache[n, m]})
    return by_n, by_m


PROBE_REDUCED = ["--epochs", "1", "--seeds", "0", "--lrs", "0.01"]
PROBE_SEEDS_LRS = ["--epochs", "1", "--seeds", "0,1,2", "--lrs", "0.1,0.01,0.001,0.0001"]


def probe_run(tmp: Path, n: int, d: int, c: int, device: str, settings: list[str]) -> dict:
    """pysim-probe on a file of n train (n/4 test) samples x d, c classes."""
    def argv(n: int, d: int, c: int, tag: str, settings: list[str]) -> list[str]:
        f = write_feature_file(tmp / f"probe{n}x{d}c{c}.h5", n, d, c, n_test=n // 4)
        return [str(BIN / "pysim-probe"), "--features", str(f), "--out",
                str(tmp / f"probe_{tag}.json"), "--device", device, *settings]
    p = measure(argv(200, 8, 4, "warm", PROBE_REDUCED), argv(n, d, c, f"{n}_{d}_{c}", settings))
    f = tmp / f"probe{n}x{d}c{c}.h5"
    return {**p, "file_mib": f.stat().st_size / MIB, "n": n, "d": d, "c": c}


def probe_series(tmp: Path, base: tuple[int, int, int], grow: dict[str, list[int]],
                 device: str) -> list[Series]:
    """pysim-probe (1 epoch, 1 seed, 1 lr) as n, d and the number of classes grow."""
    out, cache = [], {}
    for i, (param, values) in enumerate(grow.items()):
        fixed = ", ".join(f"{k}={v}" for j, (k, v) in enumerate(zip("ndC", base, strict=True))
                          if j != i)
        series = Series("probe", param, f"{fixed}, 1 epoch 1 seed 1 lr, {device}")
        for v in values:
            key = tuple(v if j == i else base[j] for j in range(3))
            if key not in cache:
                cache[key] = probe_run(tmp, *key, device, PROBE_REDUCED)
            series.points.append({"x": v, **cache[key]})
        out.append(series)
    return out


def probe_multiplier(tmp: Path, device: str) -> dict:
    """Measured cost of 3 seeds x 4 lrs against 1 seed x 1 lr (same file, 1 epoch)."""
    one = probe_run(tmp, 4000, 512, 100, device, PROBE_REDUCED)
    full = probe_run(tmp, 4000, 512, 100, device, PROBE_SEEDS_LRS)
    return {"reduced_s": one["seconds"], "seeds_lrs_s": full["seconds"],
            "factor": full["seconds"] / one["seconds"], "reduced": one,
            "seeds_lrs": {**full, "seeds": 3, "lrs": 4}}


# --- report ----------------------------------------------------------------------------------

def print_series(series: Series, markdown: bool) -> None:
    """One series: per point time, memory, bytes read and the ratios to the first point."""
    b = series.points[0]
    head = (f"{series.stage} vs {series.param} ({series.fixed}): time slope "
            f"{series.slope('seconds'):.2f}, memory slope {series.slope('extra_mib'):.2f}")
    cols = ["size", "x size", "seconds", "x time", "peak extra MiB", "read MiB"]
    extra = [c for c, k in (("peak / file", "file_mib"), ("GPU peak MiB", "gpu_mib"))
             if any(p.get(k) for p in series.points)]
    rows = []
    for p in series.points:
        row = [f"{p['x']:,}", f"{p['x'] / b['x']:.1f}", f"{p['seconds']:.2f}",
               f"{p['seconds'] / b['seconds']:.2f}", f"{p['extra_mib']:.0f}",
               f"{p['read_mib']:.1f}"]
        if "peak / file" in extra:
            row.append(f"{p['extra_mib'] / p['file_mib']:.2f}")
        if "GPU peak MiB" in extra:
            row.append(f"{p.get('gpu_mib', 0):.0f}")
        rows.append(row)
    print(f"\n{'**' + head + '**' if markdown else head}")
    if markdown:
        print("\n| " + " | ".join(cols + extra) + " |\n|" + "---:|" * len(cols + extra))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    for row in [cols + extra, *rows]:
        print("  " + "".join(f"{c:>15}" for c in row))


def sizes(quick: bool) -> dict:
    """Sizes of every series (quick: about 2-3 minutes on 2 shared cores; full: about 10)."""
    if quick:
        return {"extract": [300, 1200], "subset": [50_000, 100_000], "sim_n": [500, 1000],
                "sim_m": [4, 8], "probe_base": (2500, 1024, 100),
                "probe": {"n": [2500, 10_000], "d": [256, 1024], "C": [10, 300]}}
    return {"extract": [2000, 8000, 20_000], "subset": [50_000, 100_000, 200_000],
            "sim_n": [1000, 2000, 4000], "sim_m": [4, 8, 16], "probe_base": (12_500, 1024, 100),
            "probe": {"n": [12_500, 50_000, 200_000], "d": [256, 512, 1024],
                      "C": [10, 100, 1000]}}


def run_all(tmp: Path, cfg: dict, device: str, markdown: bool) -> tuple[list[Series], dict]:
    """Every series (each printed as soon as it is measured) and the probe's multiplier."""
    steps = [lambda: [extract_series(tmp, cfg["extract"], device)],
             lambda: subset_series(tmp, cfg["subset"], 1024, 10_000),
             lambda: similarity_series(tmp, cfg["sim_n"], cfg["sim_m"], 1024, device),
             lambda: probe_series(tmp, cfg["probe_base"], cfg["probe"], device)]
    series = []
    for step in steps:
        for s in step():
            print_series(s, markdown)
            series.append(s)
        sys.stdout.flush()
    multiplier = probe_multiplier(tmp, device)
    print_multiplier(multiplier)
    return series, multiplier


def print_multiplier(multiplier: dict) -> None:
    """The measured cost of the probe's 3 seeds x 4 learning rates against 1 x 1."""
    print(f"\nprobe, 3 seeds x 4 lrs vs 1 seed x 1 lr (n=4000, d=512, C=100, 1 epoch): "
          f"{multiplier['seeds_lrs_s']:.2f} s vs {multiplier['reduced_s']:.2f} s = "
          f"{multiplier['factor']:.1f}x")


def replot(path: Path, markdown: bool) -> None:
    """Print the series, laws and projection of an earlier run's --json file."""
    from scale_study import print_projection

    saved = json.loads(path.read_text())
    series = [Series(**s) for s in saved["series"]]
    for s in series:
        print_series(s, markdown)
    print_multiplier(saved["multiplier"])
    print_projection(series, saved["multiplier"], markdown, threads=saved.get("threads", 1))


def main() -> None:
    global THREADS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (2-3 minutes)")
    parser.add_argument("--gpu", action="store_true", help="run the device paths on CUDA")
    parser.add_argument("--json", type=Path, help="write every measured point here")
    parser.add_argument("--markdown", action="store_true", help="print tables as markdown")
    parser.add_argument("--replot", type=Path, help="print a --json file's results again")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="CPU threads per measured run (OMP_NUM_THREADS)")
    args = parser.parse_args()
    THREADS = args.threads
    if args.replot:
        replot(args.replot, args.markdown)
        return
    if not os.access("/proc/self/clear_refs", os.W_OK):
        sys.exit("scale.py needs Linux's /proc/self/clear_refs to reset the peak-RSS mark")
    device, cfg = ("cuda" if args.gpu else "cpu"), sizes(args.quick)
    print(f"scale benchmark: device {device}, {THREADS} thread(s) per run, {os.cpu_count()} "
          f"cores, load average "
          f"{os.getloadavg()[0]:.1f} (a shared machine: times are noisy, compare ratios)")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pysim-scale-") as tmp:
        series, multiplier = run_all(Path(tmp), cfg, device, args.markdown)
    print(f"\nbenchmark wall time {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "threads": THREADS,
                                         "multiplier": multiplier, "series": [
            s.__dict__ for s in series]}, indent=1))
    from scale_study import print_projection

    print_projection(series, multiplier, args.markdown, threads=THREADS)


if __name__ == "__main__":
    main()
