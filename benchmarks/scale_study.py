"""Projection of the whole study (64 models x 23 datasets) from scale.py's measured growth laws.

Three kinds of numbers meet here, each labelled where it is printed: laws measured by scale.py
on this machine, GPU extraction rates measured on one H200 (/work/shared/PLATFORM.md, GPU node
section), and assumptions (dataset sizes, an achieved GPU flop rate, ideal scaling of CPU
tasks over the cores of a node).
"""

from __future__ import annotations

import json
import math

import numpy as np
from scipy.optimize import nnls

from pysim.probe.search import HEAD_MEMORY
from pysim.probe.settings import ProbeSettings
from pysim.probe.wd_search import GRIDS

# Assumed sizes (train, test, classes), approximate: public counts of the CLIP-benchmark
# splits; for wds/vtab/* the VTAB splits (train+val for caltech101, dtd, eurosat, flowers,
# pets, resisc45; train alone for the others); for entity30, living17, nonliving26 the BREEDS
# source splits (~1300 train and 50 test images per source subclass). The repo holds no
# sizes; the list is /work/shared/reference/seed-configs/webdatasets_w_in1k.txt.
DATASETS = {
    "wds/fer2013": (28_709, 7_178, 7), "wds/voc2007": (2_501, 4_952, 20),
    "wds/cars": (8_144, 8_041, 196), "wds/fgvc_aircraft": (6_667, 3_333, 100),
    "wds/stl10": (5_000, 8_000, 10), "wds/gtsrb": (26_640, 12_630, 43),
    "wds/country211": (31_650, 21_100, 211), "wds/vtab/caltech101": (3_060, 6_084, 102),
    "wds/vtab/cifar10": (50_000, 10_000, 10), "wds/vtab/cifar100": (50_000, 10_000, 100),
    "wds/vtab/diabetic_retinopathy": (35_126, 42_670, 5),
    "wds/vtab/dmlab": (65_550, 22_735, 6), "wds/vtab/dtd": (3_760, 1_880, 47),
    "wds/vtab/eurosat": (21_600, 5_400, 10), "wds/vtab/flowers": (2_040, 6_149, 102),
    "wds/vtab/pets": (3_680, 3_669, 37), "wds/vtab/pcam": (262_144, 32_768, 2),
    "wds/vtab/resisc45": (25_200, 6_300, 45), "wds/vtab/svhn": (73_257, 26_032, 10),
    "entity30": (156_000, 6_000, 30), "living17": (44_200, 1_700, 17),
    "nonliving26": (67_600, 2_600, 26), "wds/imagenet1k": (1_281_167, 50_000, 1000),
}
# The 64 seed models (models_config_wo_alignment.json): embedding width -> number of models
# (sum 84 480, max 4096) and parameter counts in millions.
WIDTHS = {384: 3, 512: 5, 640: 1, 768: 14, 1024: 14, 1280: 3, 1536: 5, 1792: 1, 2048: 14,
          2304: 1, 2560: 1, 4096: 2}
PARAMS_M = (12, 19, 22, 22, 24, 24, 24, 24, 24, 24, 24, 24, 24, 25, 26, 26, 28, 30, 43, 60, 62,
            66, 84, 86, 86, 87, 87, 87, 87, 87, 88, 89, 102, 103, 103, 109, 138, 144, 150, 150,
            150, 150, 197, 198, 203, 229, 303, 304, 304, 304, 304, 304, 326, 326, 428, 428,
            428, 428, 631, 631, 632, 1136, 1136, 1367)
# PLATFORM.md (measured on one H200): bare bf16 forward img/s of ResNet-50, ViT-B/16, ViT-L/14
FORWARD_ANCHORS = ((25.6, 15_371), (86.6, 9_051), (304.3, 2_349))
DECODE = {"CPU decode, 16 workers": 2_144, "nvJPEG on the GPU": 8_679}  # PLATFORM.md, img/s
GPU_FP32_FLOPS = 20e12  # assumed achieved fp32 rate of the probe on one H200 (~30% of peak)
NODE_CORES = 16  # assumed: a node runs 16 / threads of the CPU tasks measured here at once
MAX_SAMPLES, N_MODELS, GPUS = 10_000, 64, (8, 32)
PROBE = ProbeSettings()  # pysim-probe's defaults: the study's protocol
SEEDS, LRS, EPOCHS = len(PROBE.seeds), len(PROBE.lrs), PROBE.epochs
GPU_STEP_S = 2e-4  # assumed latency of one optimizer step on the GPU (kernel launches)
WIDTH_SUM = sum(d * k for d, k in WIDTHS.items())


def forward_rate(params_m: float) -> float:
    """Forward img/s of a model of this size: log-log interpolation of the PLATFORM anchors."""
    pairs = list(zip(FORWARD_ANCHORS[:-1], FORWARD_ANCHORS[1:], strict=True))
    (p0, r0), (p1, r1) = next((pair for pair in pairs if params_m <= pair[1][0]), pairs[-1])
    slope = math.log(r1 / r0) / math.log(p1 / p0)
    return min(FORWARD_ANCHORS[0][1], r0 * (params_m / p0) ** slope)


def probe_work(n: int, d: int, c: int, seeds: int = SEEDS, lrs: int = LRS,
               epochs: int = EPOCHS) -> tuple[float, float]:
    """(sequential optimizer steps, FLOPs) of one probe, following pysim.probe.search's plan.

    Per-seed selection: each refinement stage trains at most 2 new weight decays per seed and
    learning rate (fewer when seeds agree: an upper bound); every candidate is trained for
    all seeds at once, in groups of at most HEAD_MEMORY bytes of head state.
    """
    grid, batch = GRIDS[PROBE.wd_grid], PROBE.batch_size
    n_fit = n - round(PROBE.val_proportion * n)
    group = max(1, HEAD_MEMORY // (5 * 4 * seeds * (d + 1) * c))  # heads trained at once
    tracks = seeds if PROBE.selection == "per_seed" else 1
    calls = ([len(range(0, grid.num, grid.coarse_step)) * lrs]
             + [2 * lrs * tracks] * len(grid.refine_steps))
    steps = epochs * (math.ceil(n_fit / batch) * sum(math.ceil(k / group) for k in calls)
                      + tracks * math.ceil(n / batch))
    flops = 6 * (d + 1) * c * epochs * seeds * (n_fit * sum(calls) + n)
    return steps, flops


def fit(terms: list[list[float]], seconds: list[float]) -> np.ndarray:
    """Non-negative least squares of seconds on cost terms, in relative error."""
    a = np.array(terms, dtype=float) / np.array(seconds)[:, None]
    return nnls(a, np.ones(len(seconds)))[0]


def points(series: list, stage: str) -> list[dict]:
    """Every distinct point measured for a stage."""
    seen = {}
    for s in series:
        if s.stage == stage:
            for p in s.points:
                seen[json.dumps({k: v for k, v in p.items() if k != "x"}, sort_keys=True)] = p
    return list(seen.values())


def hours(seconds: float) -> str:
    """Seconds as h or min, for the tables."""
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def spread(total: float, longest: float) -> list[float]:
    """Seconds on 1 and N nodes: the total divided among them, at least the longest task."""
    return [max(total / n, longest) for n in (1, *GPUS)]


def storage_rows() -> list[tuple]:
    """Bytes of every features file of the study, float32 and float16."""
    images = sum(tr + te for tr, te, _ in DATASETS.values())
    biggest = sum(DATASETS["wds/imagenet1k"][:2]) * max(WIDTHS) * 4
    return [("features files", f"{images:,} images x d={WIDTH_SUM:,}",
             f"{images * WIDTH_SUM * 4 / 1e12:.2f} TB", f"{images * WIDTH_SUM * 2 / 1e12:.2f} TB",
             f"largest file (ImageNet, d=4096) {biggest / 1e9:.1f} GB float32")]


def extraction_rows() -> list[tuple]:
    """GPU extraction time: every model on every image, at min(forward, decode) img/s."""
    images = sum(tr + te for tr, te, _ in DATASETS.values())
    slowest_task = sum(DATASETS["wds/imagenet1k"][:2])
    rows = []
    for name, decode in DECODE.items():
        rates = [min(forward_rate(p), decode) for p in PARAMS_M]
        total = sum(images / r for r in rates)
        rows.append((f"extraction (GPU), {name}",
                     f"{images * N_MODELS / 1e6:.0f} M image-forwards",
                     *spread(total, slowest_task / min(rates)), "PLATFORM.md rates, projected"))
    return rows


def read_rows(series: list, tasks: int) -> tuple[list[tuple], str]:
    """pysim-subset and the similarity stage's reads, from linear fits in n_total (this disk)."""
    sub = [(p["x"], p["seconds"]) for p in next(s for s in series if s.stage == "subset").points]
    rd = next(s for s in series if s.stage == "subset read").points
    c_sub = fit([[1, n] for n, _ in sub], [t for _, t in sub])
    c_rd = fit([[1, p["x"]] for p in rd], [p["seconds"] for p in rd])
    per_ds = [c_sub @ [1, tr] + N_MODELS * (c_rd @ [1, tr]) for tr, _, _ in DATASETS.values()]
    gib = sum(min(MAX_SAMPLES, tr) * WIDTH_SUM * 4 for tr, _, _ in DATASETS.values()) / 2**30
    total = sum(per_ds) / tasks
    law = (f"pysim-subset {c_sub[0]:.2f} s + {c_sub[1] * 1e6:.2f} us x n_total; subset read "
           f"(10k rows x 1024) {c_rd[0]:.2f} s + {c_rd[1] * 1e6:.2f} us x n_total")
    return [("subset + similarity reads", f"{gib:.0f} GiB of subset rows",
             *spread(total, max(per_ds)),
             "measured linear fits, warm cache")], law


def similarity_rows(series: list, tasks: int) -> tuple[list[tuple], str]:
    """Similarity stage per dataset (m=64, n=min(10000, train)), fitted c0 + m n^2 + m^2 n^2."""
    pts = points(series, "similarity")
    by_n = next(s for s in series if s.stage == "similarity" and s.param == "n samples")
    by_m = next(s for s in series if s.stage == "similarity" and s.param == "m models")
    n0, m0 = by_n.points[0]["x"], by_m.points[0]["x"]
    nm = [(p["x"], m0) if p in by_n.points else (n0, p["x"]) for p in pts]
    c = fit([[1, m * n * n, m * m * n * n] for n, m in nm], [p["seconds"] for p in pts])
    mean_d = WIDTH_SUM / N_MODELS / 1024  # the m n^2 term (Gram matrices) grows with the width
    per_ds = [c @ [1, N_MODELS * n * n * mean_d, N_MODELS**2 * n * n]
              for n in (min(MAX_SAMPLES, tr) for tr, _, _ in DATASETS.values())]
    total = sum(per_ds) / tasks
    law = (f"similarity {c[0]:.2f} s + {c[1] * 1e9:.3f} ns x m n^2 + {c[2] * 1e9:.4f} ns "
           f"x m^2 n^2 (slopes: n {by_n.slope('seconds'):.2f}, m {by_m.slope('seconds'):.2f})")
    return [("similarity (CPU)", f"{len(DATASETS)} tasks, m=64, n<=10k",
             *spread(total, max(per_ds)),
             "measured fit, extrapolated")], law


def probe_rows(series: list, multiplier: dict, tasks: int) -> tuple[list[tuple], str]:
    """Probe time: CPU from a fit c0 + steps + FLOPs, GPU from FLOPs at an assumed rate."""
    pts = points(series, "probe") + [multiplier["reduced"], multiplier["seeds_lrs"]]
    work = [probe_work(p["n"], p["d"], p["c"], p.get("seeds", 1), p.get("lrs", 1), 1)
            for p in pts]
    c = fit([[1, s, f] for s, f in work], [p["seconds"] for p in pts])
    err = max(abs(c @ [1, s, f] / p["seconds"] - 1) for (s, f), p in zip(work, pts, strict=True))
    cpu, gpu, flops = [], [], 0.0
    for tr, _, classes in DATASETS.values():
        for d, k in WIDTHS.items():
            steps, f = probe_work(tr, d, classes)
            cpu += [c @ [1, steps, f]] * k
            gpu += [f / GPU_FP32_FLOPS + steps * GPU_STEP_S] * k
            flops += f * k
    rate = 1 / c[2] / 1e9 if c[2] else float("inf")
    law = (f"probe {c[0]:.2f} s + {c[1] * 1e3:.3f} ms x steps + FLOPs / {rate:.1f} GFLOP/s "
           f"(largest relative error of the fit {err:.0%})")
    total, longest = sum(cpu) / tasks, max(cpu) / tasks  # a long probe gets the whole node
    return [("probe (CPU)", f"{len(cpu)} tasks, {flops:.2e} FLOP",
             *spread(total, longest),
             "measured fit, extrapolated"),
            ("probe (GPU)", f"{flops:.2e} FLOP", *spread(sum(gpu), max(gpu)),
             "FLOPs at an assumed 20 TFLOP/s + 0.2 ms/step: needs a GPU run")], law


def print_projection(series: list, multiplier: dict, markdown: bool = False,
                     threads: int = 1) -> None:
    """The study's storage and per-stage time on 1 node and on N GPUs, and the fitted laws."""
    tasks = NODE_CORES // threads
    head = ("stage", "total work", "1 node (1 GPU, 16 cores)",
            *[f"{n} GPUs" for n in GPUS], "basis")
    reads, read_law = read_rows(series, tasks)
    sims, sim_law = similarity_rows(series, tasks)
    probes, probe_law = probe_rows(series, multiplier, tasks)
    print(f"\nfitted cost laws (this machine, {threads} thread(s) per run):")
    for law in (read_law, sim_law, probe_law):
        print(f"- {law}" if markdown else f"  {law}")
    print(f"\nprojection: {N_MODELS} models x {len(DATASETS)} datasets; CPU stages: {tasks} "
          f"tasks at once per 16-core node; N GPUs = N such nodes")
    rows = [*extraction_rows(), *reads, *sims, *probes]
    # the study: CPU-decode extraction, reads, similarity and the GPU probe one after another
    # (an upper bound: the workflow overlaps the CPU stages with the GPU ones)
    study = [r for r in rows if "nvJPEG" not in r[0] and r[0] != "probe (CPU)"]
    rows.append(("study, stages in sequence", "CPU-decode extraction + reads + similarity "
                 "+ GPU probe", *[sum(r[2 + i] for r in study) for i in range(1 + len(GPUS))],
                 "sum of the rows above"))
    _table(head, [(*r[:2], *[hours(t) for t in r[2:-1]], r[-1]) for r in rows], markdown)
    print()
    _table(("storage", "size", "float32", "float16", "note"), storage_rows(), markdown)


def _table(head: tuple, rows: list[tuple], markdown: bool) -> None:
    """Print rows as a markdown table or as aligned text."""
    if markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    for r in [head, *rows]:
        print("  " + " | ".join(f"{c:<20}" for c in r))
