"""The pysim-extract stage: features of one model on one dataset (train and test) -> HDF5.

The option choices and defaults live here (from pysim.features.extract), once: the entry point
offers exactly these, and the workflow's nextflow.config uses the same batch size and workers.
"""

from __future__ import annotations

import os
from pathlib import Path

from pysim.feature_writer import FEATURE_DTYPES
from pysim.features.extract import (
    BATCH_SIZE,
    DECODES,
    EXIT_CUDA_OOM,
    NUM_WORKERS,
    PRECISIONS,
    TEST_OOM_ENV,
    ExtractOptions,
    extract,
)

__all__ = ["BATCH_SIZE", "DECODES", "EXIT_CUDA_OOM", "FEATURE_DTYPES", "NUM_WORKERS",
           "PRECISIONS", "TEST_OOM_ENV", "CudaOutOfMemory", "run_extract"]


class CudaOutOfMemory(Exception):
    """CUDA ran out of memory at this batch size; nothing was written (retry a smaller batch)."""


def run_extract(models: str | os.PathLike, model_id: str, dataset_root: str | os.PathLike,
                dataset: str, out: str | os.PathLike, device: str = "cpu",
                precision: str = "fp32", batch_size: int = BATCH_SIZE,
                feature_dtype: str = "float32", decode: str = "cpu",
                num_workers: int = NUM_WORKERS, offline: bool | None = None,
                strict: bool = False, threads: int | None = None,
                progress: bool = True) -> Path:
    """Extract MODEL_ID's features on DATASET into `out`; CudaOutOfMemory (one line) on OOM.

    `device` is a resolved torch device string; `offline` True sets HF_HUB_OFFLINE before any
    model library is imported (None: as the environment says).
    """
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    opts = ExtractOptions(device, precision, batch_size, num_workers, offline, strict,
                          progress=progress, threads=threads, feature_dtype=feature_dtype,
                          decode=decode)
    try:
        return extract(models, model_id, dataset_root, dataset, out, opts)
    except torch.cuda.OutOfMemoryError as exc:
        message = " ".join(str(exc).split()[:40])
        raise CudaOutOfMemory(f"CUDA out of memory at --batch-size {batch_size} (exit "
                              f"{EXIT_CUDA_OOM}: retry with a smaller batch): {message}") from None
