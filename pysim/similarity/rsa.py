"""RSA: RDMs (1 - correlation, 1 - cosine, Euclidean) from Gram rows; Pearson, Spearman or
cosine comparators.

Pearson is the cosine of the mean-centred off-diagonal RDMs, the cosine comparator that of the
uncentred ones (inner products, the STACKED kind like CKA); Spearman ranks each model's upper
triangle once and correlates the rank vectors (the RANKED kind).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pysim.config import MetricSpec
from pysim.similarity.base import (  # torch: imported on first use
    Kind,
    MetricFamily,
    ModelInfo,
    choice,
    diag_index,
    row_blocks,
    torch,
    upper_mask,
)

RDM_METHODS = ("correlation", "cosine", "euclidean")
CORR_METHODS = ("pearson", "spearman", "cosine")


def rdm_rows(method: str, rows: slice, gram_rows: torch.Tensor, info: ModelInfo,
             squared_euclidean: bool = False) -> torch.Tensor:
    """Rows of the RDM of one model from float64 (centred) Gram rows (diagonal not forced to
    0); correlation and cosine distances use the raw Gram (`ModelInfo.raw`)."""
    if method == "correlation":
        sd = info.var.sqrt()
        c = torch.addr(info.raw(rows, gram_rows), info.mu[rows], info.mu, alpha=-info.d)
        c /= sd[rows, None]
        c /= sd[None, :]
        return c.neg_().add_(1.0)
    if method == "cosine":
        c = info.raw(rows, gram_rows)
        c /= info.norm[rows, None]
        c /= info.norm[None, :]
        return c.neg_().add_(1.0)
    d2 = gram_rows * -2.0
    d2 += info.csq[rows, None]
    d2 += info.csq[None, :]
    d2.clamp_min_(0.0)
    return d2 if squared_euclidean else d2.sqrt_()


def rdm_invalid(method: str, info: ModelInfo) -> str | None:
    """Why this model's RDM is undefined (a sample with zero variance or zero norm), or None."""
    if method == "correlation" and bool((info.var <= 0).any()):
        return "a sample's features are constant, so its correlation distance is undefined"
    if method == "cosine" and bool((info.norm <= 0).any()):
        return "a sample has zero norm, so its cosine distance is undefined"
    return None


class RSAMetric(MetricFamily):
    """Pearson: row blocks of each model's RDM minus the mean of its off-diagonal entries,
    diagonal 0 (STACKED); Spearman: the ranks of each model's upper triangle (RANKED)."""

    method = "rsa"

    @classmethod
    def parse(cls, entry: dict[str, Any], where: str) -> MetricSpec:
        rsa_method = choice(entry, where, "rsa_method", RDM_METHODS, "correlation")
        corr_method = choice(entry, where, "corr_method", CORR_METHODS, "pearson")
        return MetricSpec("rsa", rsa_method=rsa_method, corr_method=corr_method)

    @staticmethod
    def metric_id(spec: MetricSpec) -> str:
        return f"rsa_method_{spec.rsa_method}_corr_method_{spec.corr_method}"

    @staticmethod
    def params(spec: MetricSpec) -> dict[str, Any]:
        return {"sim_method": "rsa", "rsa_method": spec.rsa_method,
                "corr_method": spec.corr_method}

    def __init__(self, spec: MetricSpec, n: int):
        super().__init__(spec, n)
        self.kind = Kind.RANKED if spec.corr_method == "spearman" else Kind.STACKED
        self.means: dict[int, float] = {}

    def centred(self, a: int, gram: torch.Tensor, info: ModelInfo,
                chunk: int) -> torch.Tensor | str:
        """The whole centred RDM of model a (float64, diagonal 0), or why it is undefined."""
        reason = rdm_invalid(self.spec.rsa_method, info)
        if reason:
            return reason
        rows = slice(0, self.n)
        r = rdm_rows(self.spec.rsa_method, rows, gram.double(), info)
        r[diag_index(rows, r.device)] = 0.0
        self.means[a] = self._mean(float(r.sum()))
        r -= self.means[a]
        r[diag_index(rows, r.device)] = 0.0
        return r

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
        self.means[a] = self._mean(float(total))
        return None

    def block(self, a: int, rows: slice, gram_rows: torch.Tensor, info: ModelInfo) -> torch.Tensor:
        """Pass 2: rows of the centred RDM of model a (float64, diagonal 0)."""
        r = rdm_rows(self.spec.rsa_method, rows, gram_rows, info)
        r -= self.means[a]
        r[diag_index(rows, r.device)] = 0.0
        return r

    def _mean(self, total: float) -> float:
        """What is subtracted from the off-diagonal RDM entries: their mean for Pearson,
        nothing for the cosine comparator (rsatoolbox's `cosine`: uncentred)."""
        return 0.0 if self.spec.corr_method == "cosine" else total / (self.n * (self.n - 1))

    def ranks(self, gram: torch.Tensor, info: ModelInfo, chunk: int) -> torch.Tensor | str:
        """Centred doubled ranks of the upper triangle, or why the RDM is undefined."""
        return rdm_invalid(self.spec.rsa_method, info) or spearman_ranks(self.spec, gram, info,
                                                                         chunk)


def _sort_keys(gram: torch.Tensor, spec: MetricSpec, info: ModelInfo, chunk: int) -> torch.Tensor:
    """int64 keys (float32 RDM value bits << 32 | position) of the strict upper triangle.

    RDM values are non-negative, so their float32 bit patterns sort like the values; packing
    the position into the low bits makes a plain sort an argsort.
    """
    if gram.device.type == "cpu":
        return _sort_keys_numpy(gram, spec, info, chunk)
    return _sort_keys_torch(gram, spec, info, chunk)


def _sort_keys_numpy(gram: torch.Tensor, spec: MetricSpec, info: ModelInfo,
                     chunk: int) -> torch.Tensor:
    """CPU keys: both int32 halves of every key filled in place, row by row."""
    n = gram.shape[0]
    count = n * (n - 1) // 2
    keys = np.empty(count, dtype=np.int64)
    halves = keys.view(np.int32)  # little-endian: [position, value]
    halves[0::2] = np.arange(count, dtype=np.int32)
    values, offset = halves[1::2], 0
    for rows in row_blocks(n, chunk):
        r = _triangle_values(spec, rows, gram, info).numpy().view(np.int32)
        for i in range(rows.start, min(rows.stop, n - 1)):
            values[offset:offset + n - 1 - i] = r[i - rows.start, i + 1:]
            offset += n - 1 - i
    return torch.from_numpy(keys)


def _sort_keys_torch(gram: torch.Tensor, spec: MetricSpec, info: ModelInfo,
                     chunk: int) -> torch.Tensor:
    """Keys on any device (used on CUDA): masked triangle, shifted bits, positions added."""
    n = gram.shape[0]
    keys = torch.empty(n * (n - 1) // 2, dtype=torch.int64, device=gram.device)
    offset = 0
    for rows in row_blocks(n, chunk):
        r = _triangle_values(spec, rows, gram, info)
        part_values = r[upper_mask(rows, n, gram.device)]
        part = keys[offset:offset + part_values.numel()]
        part.copy_(part_values.view(torch.int32))
        part <<= 32
        part += torch.arange(offset, offset + part_values.numel(), device=gram.device)
        offset += part_values.numel()
    return keys


def _triangle_values(spec: MetricSpec, rows: slice, gram: torch.Tensor,
                     info: ModelInfo) -> torch.Tensor:
    """RDM rows as non-negative float32 (+0.0, never -0.0), ranked like the RDM itself."""
    r = rdm_rows(spec.rsa_method, rows, gram[rows].double(), info, squared_euclidean=True)
    return r.float().clamp_min_(0.0).add_(0.0)


def _ranks_from_sorted_numpy(keys: np.ndarray) -> np.ndarray:
    """Centred doubled average ranks from sorted keys; only tie groups need extra work."""
    count = len(keys)
    halves = keys.view(np.int32)  # little-endian: [position, value] per key
    order, values = halves[0::2], halves[1::2]
    in_sorted = np.arange(1 - count, count, 2, dtype=np.int32)  # 2 (p + 1) - (count + 1)
    dup = values[1:] == values[:-1]
    if dup.any():
        tied = np.zeros(count, dtype=bool)
        tied[1:] |= dup
        tied[:-1] |= dup
        pos = np.flatnonzero(tied)
        first = np.ones(len(pos), dtype=bool)
        first[1:] = ~dup[pos[1:] - 1]
        heads = np.flatnonzero(first)
        lasts = np.append(pos[heads[1:] - 1], pos[-1])
        in_sorted[pos] = (pos[heads] + lasts + 1 - count)[np.cumsum(first) - 1]
    ranks = np.empty(count, dtype=np.int32)
    ranks[order] = in_sorted
    return ranks


def _ranks_from_sorted_torch(keys: torch.Tensor) -> torch.Tensor:
    """The same for a tensor on any device."""
    count = keys.numel()
    order = (keys & 0xFFFFFFFF).long()
    values = keys >> 32
    positions = torch.arange(count, device=keys.device)
    new = torch.ones(count, dtype=torch.bool, device=keys.device)
    new[1:] = values[1:] != values[:-1]
    start = torch.cummax(torch.where(new, positions, 0), 0).values
    last = torch.ones_like(new)
    last[:-1] = new[1:]
    end = torch.where(last, positions, count).flip(0).cummin(0).values.flip(0)
    ranks = torch.empty(count, dtype=torch.int32, device=keys.device)
    ranks[order] = (start + end - (count - 1)).to(torch.int32)
    return ranks


def spearman_ranks(spec: MetricSpec, gram: torch.Tensor, info: ModelInfo,
                   chunk: int) -> torch.Tensor:
    """Centred doubled average ranks (2 rank - (N + 1), ties averaged; int32, exact) of the
    strict upper triangle of one model's RDM, taken at float32 resolution."""
    keys = _sort_keys(gram, spec, info, chunk)
    if keys.device.type == "cpu":
        array = keys.numpy()
        array.sort()  # in place; numpy's int64 sort is fast and deterministic
        return torch.from_numpy(_ranks_from_sorted_numpy(array))
    return _ranks_from_sorted_torch(torch.sort(keys).values)
