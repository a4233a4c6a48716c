"""Benchmark (not a test): pysim-extract throughput vs the bare model forward, decode speed.

1. images/s of the extraction loop (index + decode in workers + forward + hook) versus the bare
   forward of the same model on already-decoded tensors, same batch size (target >= 90 %);
2. decode + preprocess throughput of the WebDataset reader in one process (= per worker);
3. wall time of the whole demo extraction (every demo model x dataset, train + test), in one
   process and, with --cli, as one pysim-extract process per model x dataset.

Usage: python benchmarks/extraction.py [--dataset-root D] [--workers 2] [--input-size 112] [--cli]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from pysim.config import load_dataset_list, load_models
from pysim.data import SplitReader, index_split
from pysim.demo import write_demo_datasets
from pysim.extract import ExtractOptions, extract, extract_split
from pysim.models import load_model

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "assets" / "demo"


def bench_model(root: Path, input_size: int, workers: int, batch: int,
                rounds: int = 3) -> None:
    """Pipeline vs bare forward for torchvision resnet18 at `input_size` px on demo textures."""
    table = Path(tempfile.mkdtemp()) / "models.json"
    table.write_text('{"r18": {"model_name": "resnet18", "source": "torchvision", '
                     '"module_name": "avgpool", "pretrained": false, "model_parameters": '
                     f'{{"weights": "DEFAULT", "input_size": {input_size}}}}}}}')
    model, preprocess, extractor = load_model(load_models(table)["r18"])
    sdir = root / "wds_demo_textures" / "train"
    reader = SplitReader(index_split(sdir), preprocess)
    t0 = time.perf_counter()
    decoded = [reader[i][0] for i in range(len(reader))]
    decode_s = time.perf_counter() - t0
    x = torch.stack(decoded)
    opts = ExtractOptions(batch_size=batch, num_workers=workers, progress=False,
                          threads=torch.get_num_threads())
    with torch.inference_mode():
        model(x[:batch])  # warm-up
    extract_split(extractor, preprocess, sdir, opts)  # warm-up (worker start-up stays below)
    bare_s = pipe_s = float("inf")
    for _ in range(rounds):  # alternate and keep the best of each: the box is shared
        with torch.inference_mode():
            t0 = time.perf_counter()
            for i in range(0, len(x), batch):
                model(x[i:i + batch])
            bare_s = min(bare_s, time.perf_counter() - t0)
        t0 = time.perf_counter()
        extract_split(extractor, preprocess, sdir, opts)
        pipe_s = min(pipe_s, time.perf_counter() - t0)
    n = len(x)
    print(f"resnet18 @{input_size}px, batch {batch}, {n} images, torch threads "
          f"{torch.get_num_threads()}, workers {workers}, best of {rounds}")
    print(f"  decode+preprocess, 1 process: {n / decode_s:8.1f} img/s (per worker)")
    print(f"  bare forward (decoded)      : {n / bare_s:8.1f} img/s")
    print(f"  pysim extraction loop       : {n / pipe_s:8.1f} img/s "
          f"= {100 * bare_s / pipe_s:.0f} % of bare forward (target >= 90 %)")


def bench_demo(root: Path, cli: bool, workers: int, jobs: int) -> None:
    """Wall time of extracting every demo model on every demo dataset."""
    models = list(load_models(DEMO / "models.json"))
    datasets = load_dataset_list(DEMO / "datasets.txt")
    out = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    opts = ExtractOptions(num_workers=workers, progress=False, threads=torch.get_num_threads())
    for m in models:
        for d in datasets:
            extract(DEMO / "models.json", m, root, d, out / f"{m}_{d.replace('/', '_')}.h5", opts)
    print(f"demo extraction in one process: {len(models)} models x {len(datasets)} datasets "
          f"in {time.perf_counter() - t0:.1f} s")
    if not cli:
        return
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    def one(job):
        m, d = job
        subprocess.run([sys.executable, str(ROOT / "bin" / "pysim-extract"), "--models",
                        str(DEMO / "models.json"), "--model-id", m, "--dataset-root", str(root),
                        "--dataset", d, "--out", str(out / f"cli_{m}_{d.replace('/', '_')}.h5"),
                        "--quiet", "--num-workers", str(workers), "--threads",
                        str(torch.get_num_threads())], check=True, env=env,
                       stdout=subprocess.DEVNULL)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, [(m, d) for m in models for d in datasets]))
    print(f"demo extraction as {len(models) * len(datasets)} pysim-extract processes, "
          f"{jobs} at a time: {time.perf_counter() - t0:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-root", type=Path, help="demo data (default: generate)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=112)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (main process)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel pysim-extract processes")
    parser.add_argument("--cli", action="store_true", help="also time pysim-extract processes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = args.dataset_root
    if root is None:
        root = Path(tempfile.mkdtemp())
        t0 = time.perf_counter()
        write_demo_datasets(root)
        print(f"demo data generation: {time.perf_counter() - t0:.1f} s")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    bench_model(root, args.input_size, args.workers, args.batch_size)
    bench_demo(root, args.cli, args.workers, args.jobs)


if __name__ == "__main__":
    main()
