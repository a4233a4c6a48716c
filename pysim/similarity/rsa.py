"""RSA: RDMs (1 - correlation, 1 - cosine, Euclidean) from Gram rows; Pearson or Spearman.

Pearson is the cosine of the mean-centred off-diagonal RDMs (an inner product, stacked like
CKA); Spearman ranks each model's upper triangle once and correlates the rank vectors.
"""

from __future__ import annotations

import numpy as np
import torch

from pysim.config import MetricSpec
from pysim.similarity.base import ModelInfo, diag_index, row_blocks, upper_mask


def rdm_rows(method: str, rows: slice, gram_rows: torch.Tensor, info: ModelInfo,
             squared_euclidean: bool = False) -> torch.Tensor:
    """Rows of the RDM of one model from float64 Gram rows (diagonal not forced to 0)."""
    if method == "correlation":
        c = gram_rows - info.d * info.mu[rows, None] * info.mu[None, :]
        c /= (info.var[rows, None] * info.var[None, :]).sqrt()
        return c.neg_().add_(1.0)
    if method == "cosine":
        c = gram_rows / (info.norm[rows, None] * info.norm[None, :])
        return c.neg_().add_(1.0)
    d2 = (info.sq[rows, None] + info.sq[None, :] - 2.0 * gram_rows).clamp_min_(0.0)
    return d2 if squared_euclidean else d2.sqrt_()


def rdm_invalid(method: str, info: ModelInfo) -> str | None:
    """Why this model's RDM is undefined (a sample with zero variance or zero norm), or None."""
    if method == "correlation" and bool((info.var <= 0).any()):
        return "a sample's features are constant, so its correlation distance is undefined"
    if method == "cosine" and bool((info.norm <= 0).any()):
        return "a sample has zero norm, so its cosine distance is undefined"
    return None


class RSAPearsonMetric:
    """Row blocks of each model's RDM minus the mean of its off-diagonal entries, diagonal 0."""

    def __init__(self, spec: MetricSpec, n: int):
        self.spec, self.n = spec, n
        self.means: dict[int, float] = {}

    def observe(self, a: int, gram: torch.Tensor, info: ModelInfo, chunk: int) -> str | None:
        """Pass 1: mean of the off-diagonal RDM entries; a reason if the RDM is undefined."""
        reason = rdm_invalid(self.spec.rsa_method, info)
        if reason:
            return reason
        total = torch.zeros((), dtype=torch.float64, device=gram.device)
        for rows in row_blocks(self.n, chunk):
            r = rdm_rows(self.spec.rsa_method, rows, gram[rows].double(), info)
            r[diag_index(rows, r.device)] = 0.0
            total += r.sum()
        self.means[a] = float(total) / (self.n * (self.n - 1))
        return None

    def block(self, a: int, rows: slice, gram_rows: torch.Tensor, info: ModelInfo) -> torch.Tensor:
        """Pass 2: rows of the centred RDM of model a (float64, diagonal 0)."""
        r = rdm_rows(self.spec.rsa_method, rows, gram_rows, info)
        r -= self.means[a]
        r[diag_index(rows, r.device)] = 0.0
        return r


def upper_ranks(values: torch.Tensor) -> torch.Tensor:
    """Centred doubled average ranks (2 rank - (N + 1), ties averaged) of non-negative values.

    Values are rounded to float32 and packed with their index into one int64 sort key, so a
    plain (fast, deterministic) sort gives the order; returns int32, exact.
    """
    count = values.numel()
    bits = (values.float().clamp_min(0.0) + 0.0).view(torch.int32).to(torch.int64)
    keys = (bits << 32) | torch.arange(count, device=values.device, dtype=torch.int64)
    del bits
    if keys.device.type == "cpu":
        keys = torch.from_numpy(np.sort(keys.numpy()))
    else:
        keys = torch.sort(keys).values
    order = keys & 0xFFFFFFFF
    keys >>= 32
    new = torch.ones(count, dtype=torch.bool, device=keys.device)
    new[1:] = keys[1:] != keys[:-1]
    del keys
    starts = torch.nonzero(new).flatten()
    ends = torch.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = count
    group = torch.cumsum(new, 0) - 1
    del new
    ranks = torch.empty(count, dtype=torch.int32, device=values.device)
    ranks[order] = (starts + ends - count)[group].to(torch.int32)
    return ranks


def spearman_ranks(spec: MetricSpec, gram: torch.Tensor, info: ModelInfo,
                   chunk: int) -> torch.Tensor:
    """Rank vector (see upper_ranks) of the strict upper triangle of one model's RDM."""
    n = gram.shape[0]
    parts = []
    for rows in row_blocks(n, chunk):
        r = rdm_rows(spec.rsa_method, rows, gram[rows].double(), info, squared_euclidean=True)
        parts.append(r[upper_mask(rows, n, gram.device)].float())
    return upper_ranks(torch.cat(parts))
