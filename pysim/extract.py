"""Features of one model on one dataset (train and test split) -> the DESIGN §5 features file.

Images are decoded and preprocessed in DataLoader workers in shard order; the model runs in
fp32 (or bf16/fp16 under autocast); the file records exactly which weights and preprocessing
were used. On the CPU in fp32, two runs on the same inputs give identical arrays.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pysim.config import SPLIT_NAMES, ModelEntry, dataset_dir, load_models
from pysim.data import SplitReader, build_loader, index_split
from pysim.errors import InputError
from pysim.io import SplitFeatures, write_features

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class ExtractOptions:
    """Run options of one extraction."""

    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 64
    num_workers: int = 2
    offline: bool | None = None
    strict: bool = False
    progress: bool = True
    threads: int | None = None  # torch intra-op threads on the CPU (None: torch's default)


def model_entry(models_file: str | os.PathLike, model_id: str) -> ModelEntry:
    """One entry of a model table, or an InputError naming the table and the id."""
    models = load_models(models_file)
    if model_id not in models:
        known = ", ".join(list(models)[:8])
        raise InputError(f"{models_file}: no model '{model_id}' (known: {known}"
                         f"{', ...' if len(models) > 8 else ''})")
    return models[model_id]


def _autocast(device: str, precision: str):
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def extract_split(extractor, preprocess, split_path: Path, opts: ExtractOptions,
                  desc: str = "") -> tuple[SplitFeatures, int]:
    """Features, targets and keys of one split in sample order; returns them and #skipped."""
    import torch
    from tqdm import tqdm

    index = index_split(split_path, strict=opts.strict)
    reader = SplitReader(index, preprocess)
    loader = build_loader(reader, opts.batch_size, opts.num_workers,
                          pin_memory=opts.device.startswith("cuda"))
    chunks, positions, skipped = [], [], list(index.skipped)
    bar = tqdm(loader, desc=desc, unit="batch", file=sys.stderr, disable=not opts.progress,
               mininterval=1.0 if sys.stderr.isatty() else 10.0)
    with torch.inference_mode(), _autocast(opts.device, opts.precision):
        for images, _, pos, bad in bar:
            for i, reason in bad:
                where = f"{index.shard_paths[index.shards[i]]}:{index.keys[i]}"
                if opts.strict:
                    raise InputError(f"sample {where}: image cannot be decoded ({reason})")
                skipped.append(f"{where}: {reason}")
            if images is None:
                continue
            images = images.to(opts.device, non_blocking=True)
            if opts.device.startswith("cuda"):
                images = images.contiguous(memory_format=torch.channels_last)
            chunks.append(extractor(images).float())  # stays on the device: no sync per batch
            positions.append(pos)
    if not chunks:
        raise InputError(f"split {split_path}: no sample could be decoded")
    if skipped:
        log.warning("%s: skipped %d corrupt samples (first: %s)", split_path, len(skipped),
                    skipped[0])
    feats = torch.cat(chunks).cpu().numpy()
    pos = torch.cat(positions).numpy()
    bad = ~np.isfinite(feats).all(axis=1)
    if bad.any():
        raise InputError(f"split {split_path}: {int(bad.sum())} samples have NaN/inf features "
                         f"(precision {opts.precision}; try --precision fp32)")
    keys = np.array([index.keys[i] for i in pos])
    targets = np.array([index.label[i] for i in pos], dtype=np.int64)
    return SplitFeatures(feats.astype(np.float32, copy=False), targets, keys), len(skipped)


def extract(models_file: str | os.PathLike, model_id: str, dataset_root: str | os.PathLike,
            dataset: str, out: str | os.PathLike, opts: ExtractOptions | None = None) -> Path:
    """Extract train (and test, if present) features of one model on one dataset into `out`."""
    import torch

    opts = opts or ExtractOptions()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    elif "OMP_NUM_THREADS" not in os.environ and hasattr(os, "sched_getaffinity"):
        # the CPUs this task may use (SLURM/cgroup cpusets), not every core of the node
        torch.set_num_threads(min(torch.get_num_threads(), len(os.sched_getaffinity(0))))
    if opts.precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}")
    if opts.batch_size < 1 or opts.num_workers < 0:
        raise InputError("--batch-size must be >= 1 and --num-workers >= 0")
    entry = model_entry(models_file, model_id)
    ddir = dataset_dir(dataset_root, dataset)
    if not ddir.is_dir():
        raise InputError(f"dataset '{dataset}': directory {ddir} not found")
    splits = [s for s in SPLIT_NAMES if (ddir / s).exists()]
    if "train" not in splits:
        raise InputError(f"dataset '{dataset}': split directory {ddir / 'train'} not found")
    from pysim.models import load_model

    base_dir = Path(models_file).resolve().parent
    torch.manual_seed(0)
    model, preprocess, extractor = load_model(entry, base_dir=base_dir, offline=opts.offline)
    model.to(opts.device)
    if opts.device.startswith("cuda"):
        model.to(memory_format=torch.channels_last)
    results, attrs = {}, {}
    for split in splits:
        results[split], attrs[f"n_skipped_{split}"] = extract_split(
            extractor, preprocess, ddir / split, opts, desc=f"{model_id} {dataset} {split}")
    attrs.update(model_id=model_id, dataset=dataset, module_name=entry.module_name,
                 model_name=entry.model_name, token_extraction=extractor.token_extraction or "",
                 precision=opts.precision, device=opts.device, batch_size=opts.batch_size,
                 **extractor.provenance)
    write_features(out, results, attrs)
    return Path(out)
