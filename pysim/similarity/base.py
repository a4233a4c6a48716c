"""Shared pieces of the metric families: per-model statistics and row-block helpers.

Every metric is an inner product between per-model n x n matrices (centred kernels, centred
RDMs, neighbour indicators); the engine builds their row blocks from one Gram matrix per model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class ModelInfo:
    """Per-sample statistics of one model's (prepared) features, float64, length n."""

    d: int
    sq: torch.Tensor    # squared norms, taken from the Gram diagonal (so self-distances are 0)
    norm: torch.Tensor  # sqrt(sq)
    mu: torch.Tensor    # mean over features of each sample
    var: torch.Tensor   # sum over features of (x - mu)^2, exact in float64

    @classmethod
    def from_features(cls, x: torch.Tensor, gram_diag: torch.Tensor) -> ModelInfo:
        """Statistics of features x (n x d) given the diagonal of their Gram matrix."""
        x64 = x.double()
        mu = x64.mean(dim=1)
        var = ((x64 - mu[:, None]) ** 2).sum(dim=1)
        sq = gram_diag.double()
        return cls(d=x.shape[1], sq=sq, norm=sq.sqrt(), mu=mu, var=var)


def overflow_reason(info: ModelInfo) -> str | None:
    """Why float32 products of this model's features overflow (a squared norm is inf), or None."""
    if not bool(torch.isfinite(info.sq).all()):
        return ("features too large for float32 products (a squared norm overflows; "
                "use --normalize l2 or rescale the features)")
    return None


def row_blocks(n: int, size: int) -> Iterator[slice]:
    """Consecutive row slices of at most `size` rows covering 0..n."""
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def diag_index(rows: slice, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the diagonal entries (i, i) inside the row block `rows` of an n x n matrix."""
    cols = torch.arange(rows.start, rows.stop, device=device)
    return cols - rows.start, cols


def upper_mask(rows: slice, n: int, device: torch.device) -> torch.Tensor:
    """Boolean mask of the strict upper triangle (j > i) inside the row block `rows`."""
    i = torch.arange(rows.start, rows.stop, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    return j > i
