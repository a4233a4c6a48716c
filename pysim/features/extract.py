"""Features of one model on one dataset (train and test split) -> the DESIGN §5 features file.

Images are decoded and preprocessed in DataLoader workers in shard order (with
`decode="gpu"`: JPEGs decoded and preprocessed as tensors on the device, pysim.data.decode);
the model runs in
fp32 (or bf16/fp16 under autocast); the file records exactly which weights and preprocessing
were used. On the CPU in fp32, two runs on the same inputs give identical arrays.

Extraction streams: each batch's features leave the device at once and are appended to the
file on disk (pysim.feature_writer), so GPU memory stays at model + one batch and host memory
does not grow with the number of images. The file appears atomically when complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pysim.config import SPLIT_NAMES, ModelEntry, dataset_dir, load_models, representation_id
from pysim.data import SplitReader, build_loader, index_split
from pysim.errors import InputError
from pysim.feature_writer import FEATURE_DTYPES, FeatureWriter
from pysim.ids import check_id, child_path
from pysim.io import SplitFeatures

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "bf16", "fp16")
DECODES = ("cpu", "gpu")  # --decode: PIL in the workers, or the tensor path (pysim.data.decode)
# The defaults of pysim-extract, equal to the workflow's (nextflow.config params.batch_size and
# params.num_workers): images per forward pass and DataLoader workers.
BATCH_SIZE = 256
NUM_WORKERS = 8
# pysim-extract's exit status when CUDA ran out of memory (no file written): the workflow
# retries the task with half the batch size (EX_TEMPFAIL of sysexits.h).
EXIT_CUDA_OOM = 75
# Test hook, not for production: with PYSIM_TEST_OOM_ABOVE_BATCH=N a forward on a batch of
# more than N images raises the real torch.cuda.OutOfMemoryError (also on the CPU).
TEST_OOM_ENV = "PYSIM_TEST_OOM_ABOVE_BATCH"


@dataclass
class ExtractOptions:
    """Run options of one extraction."""

    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = BATCH_SIZE
    num_workers: int = NUM_WORKERS
    offline: bool | None = None
    strict: bool = False
    progress: bool = True
    threads: int | None = None  # torch intra-op threads on the CPU (None: torch's default)
    feature_dtype: str = "float32"  # stored dtype of the features (float16 halves the file)
    decode: str = "cpu"  # cpu: PIL + the model's transform; gpu: tensor path on opts.device


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


class _MemorySink:
    """Collects a split's batches on the host (extract_split without a writer)."""

    def __init__(self):
        self.features, self.targets, self.keys = [], [], []

    def append(self, features, targets, keys) -> None:
        self.features.append(features)
        self.targets.append(np.asarray(targets, dtype=np.int64))
        self.keys.extend(keys)

    def result(self) -> SplitFeatures:
        return SplitFeatures(np.concatenate(self.features), np.concatenate(self.targets),
                             np.array(self.keys))


def _oom_hook_limit() -> int | None:
    """The batch size above which the test hook fakes a CUDA out-of-memory (None: off)."""
    value = os.environ.get(TEST_OOM_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise InputError(f"{TEST_OOM_ENV} must be a non-negative integer, got {value!r}")
    return int(value)


def _forward(extractor, images, oom_above: int | None):
    import torch

    if oom_above is not None and images.shape[0] > oom_above:
        raise torch.cuda.OutOfMemoryError(
            f"CUDA out of memory (test hook {TEST_OOM_ENV}={oom_above}: batch of "
            f"{images.shape[0]})")
    if getattr(extractor, "multi", False):  # every module from one forward pass
        return extractor.features(images)
    return extractor(images)


def _to_host(feats, store) -> tuple[np.ndarray, int, int]:
    """A batch's features on the host in the stored dtype, #non-finite rows, #float16 overflows."""
    import torch

    feats = feats.float()
    finite = torch.isfinite(feats).all(dim=1)
    # off the device every batch: GPU memory stays at model + one batch
    stored_cpu = feats.to(store).cpu().numpy()
    finite_cpu = finite.cpu().numpy()
    overflow = 0
    if store is not torch.float32:
        overflow = int((finite_cpu & ~np.isfinite(stored_cpu).all(axis=1)).sum())
    return stored_cpu, int((~finite_cpu).sum()), overflow


def _reader_and_loader(index, preprocess, opts: ExtractOptions):
    """The split's DataLoader: PIL + transform in the workers (decode cpu), or the tensor path
    (decode gpu: `preprocess` is the model's transform or its TensorPreprocess)."""
    pin = opts.device.startswith("cuda")
    if opts.decode == "cpu":
        return build_loader(SplitReader(index, preprocess), opts.batch_size, opts.num_workers,
                            pin_memory=pin)
    from pysim.data.decode import (
        EncodedSplitReader,
        TensorCollate,
        TensorPreprocess,
        tensor_preprocess,
    )

    pipeline = preprocess if isinstance(preprocess, TensorPreprocess) else \
        tensor_preprocess(preprocess)
    return build_loader(EncodedSplitReader(index), opts.batch_size, opts.num_workers,
                        pin_memory=pin, collate_fn=TensorCollate(pipeline, opts.device))


def extract_split(extractor, preprocess, split_path: Path, opts: ExtractOptions,
                  desc: str = "", sink=None) -> tuple[SplitFeatures | None, int]:
    """Features, targets and keys of one split in sample order, batch by batch.

    `preprocess` is the model's transform (with opts.decode "gpu" also its TensorPreprocess).

    Each batch's features leave the device at once (as float32, or float16 with
    opts.feature_dtype) and go to `sink.append(features, targets, keys)` (a
    feature_writer.SplitWriter streams them to disk; a multi-module extractor needs a dict
    module -> sink); without a sink they are collected on the host and returned.
    Returns (SplitFeatures or None with a sink, #skipped samples).
    """
    import torch
    from tqdm import tqdm

    from pysim.data.decode import EncodedBatch, finish_batch

    store = torch.float16 if opts.feature_dtype == "float16" else torch.float32
    oom_above = _oom_hook_limit()
    memory = sink is None
    sink = _MemorySink() if memory else sink
    index = index_split(split_path, strict=opts.strict)
    loader = _reader_and_loader(index, preprocess, opts)
    skipped = list(index.skipped)
    n_good = n_nonfinite = n_overflow = 0
    bar = tqdm(loader, desc=desc, unit="batch", file=sys.stderr, disable=not opts.progress,
               mininterval=1.0 if sys.stderr.isatty() else 10.0)
    with torch.inference_mode(), _autocast(opts.device, opts.precision):
        for images, _, pos, bad in bar:
            if isinstance(images, EncodedBatch):  # tensor path on CUDA: decode on the device
                images, _, pos, more = finish_batch(images, loader.collate_fn.pipeline,
                                                    opts.device)
                bad = [*bad, *more]
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
            outs = _forward(extractor, images, oom_above)
            del images
            pos = pos.tolist()
            targets, keys = [index.label[i] for i in pos], [index.keys[i] for i in pos]
            for name, feats in (outs.items() if isinstance(outs, dict) else [(None, outs)]):
                stored_cpu, nonfinite, overflow = _to_host(feats, store)
                n_nonfinite, n_overflow = n_nonfinite + nonfinite, n_overflow + overflow
                (sink[name] if isinstance(sink, dict) else sink).append(stored_cpu, targets, keys)
            n_good += len(pos)
    if not n_good:
        raise InputError(f"split {split_path}: no sample could be decoded")
    if skipped:
        log.warning("%s: skipped %d corrupt samples (first: %s)", split_path, len(skipped),
                    skipped[0])
    if n_nonfinite:
        raise InputError(f"split {split_path}: {n_nonfinite} samples have NaN/inf features "
                         f"(precision {opts.precision}; try --precision fp32)")
    if n_overflow:
        raise InputError(f"split {split_path}: {n_overflow} samples have features beyond the "
                         f"float16 range (try --feature-dtype float32)")
    return (sink.result() if memory else None), len(skipped)


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
    if opts.feature_dtype not in FEATURE_DTYPES:
        raise InputError(f"--feature-dtype must be one of {', '.join(FEATURE_DTYPES)}")
    if opts.decode not in DECODES:
        raise InputError(f"--decode must be one of {', '.join(DECODES)}")
    _oom_hook_limit()
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
    attrs = {"decode": opts.decode}
    if opts.decode == "gpu":  # before any image is read: an untranslatable step is bad input
        from pysim.data.decode import tensor_preprocess

        preprocess = tensor_preprocess(preprocess)
        attrs["decode_steps"] = preprocess.describe()
    attrs.update(dataset=dataset, model_name=entry.model_name,
                 token_extraction=extractor.token_extraction or "", precision=opts.precision,
                 device=opts.device, batch_size=opts.batch_size,
                 feature_dtype=opts.feature_dtype)
    if entry.multi:
        return _extract_modules(entry, extractor, preprocess, ddir, splits, out, opts, attrs)
    with FeatureWriter(out, dtype=opts.feature_dtype) as writer:
        for split in splits:
            _, attrs[f"n_skipped_{split}"] = extract_split(
                extractor, preprocess, ddir / split, opts,
                desc=f"{model_id} {dataset} {split}", sink=writer.split(split))
        writer.set_attrs(_single_attrs(entry, extractor, attrs))
    return Path(out)


def _single_attrs(entry: ModelEntry, extractor, attrs: dict) -> dict:
    """Root attributes of a single-module file, in the order of earlier versions."""
    pooling = {"pooling": extractor.poolings.get(extractor.module_name, "none")} \
        if entry.pooling else {}
    head = {k: v for k, v in attrs.items() if k.startswith(("decode", "n_skipped_"))}
    return {**head, "model_id": entry.model_id, "dataset": attrs["dataset"],
            "module_name": entry.module_name, "model_name": entry.model_name,
            **{k: attrs[k] for k in ("token_extraction", "precision", "device", "batch_size",
                                     "feature_dtype")}, **pooling, **extractor.provenance}


def representation_paths(entry: ModelEntry, modules: list[str], out: str | os.PathLike
                         ) -> dict[str, Path]:
    """module -> features file in the folder `out`: `<rep id>.h5` (primary: `<model_id>.h5`)."""
    out_paths = {}
    for k, m in enumerate(modules):
        rep = check_id(representation_id(entry.model_id, m, k == 0), "representation")
        out_paths[m] = child_path(out, f"{rep}.h5")
    return out_paths


def _extract_modules(entry: ModelEntry, extractor, preprocess, ddir: Path, splits: list[str],
                     out: str | os.PathLike, opts: ExtractOptions, attrs: dict) -> Path:
    """One forward pass per batch; one features file per module in the folder `out`."""
    paths = representation_paths(entry, extractor.module_names, out)
    Path(out).mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        writers = {m: stack.enter_context(FeatureWriter(p, dtype=opts.feature_dtype))
                   for m, p in paths.items()}
        for split in splits:
            sinks = {m: w.split(split) for m, w in writers.items()}
            _, attrs[f"n_skipped_{split}"] = extract_split(
                extractor, preprocess, ddir / split, opts,
                desc=f"{entry.model_id} {attrs['dataset']} {split}", sink=sinks)
        for module, writer in writers.items():
            writer.set_attrs({**attrs, "model_id": paths[module].stem,
                              "base_model_id": entry.model_id, "module_name": module,
                              "modules": list(extractor.module_names),
                              "pooling": extractor.poolings.get(module, "none"),
                              **extractor.provenance})
    return Path(out)
