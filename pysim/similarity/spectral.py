"""Per-model thin SVD of the column-centred float64 features, shared by the PAIRWISE families
(CCA, SVCCA, PWCCA, shape metrics, linear regression).

Rank is decided like numpy's matrix_rank: singular values above max(n, d) eps sigma_max count.
"""

from __future__ import annotations

from dataclasses import dataclass

from pysim.similarity.base import torch


@dataclass
class Spectrum:
    """X_c = U diag(s) V^T restricted to its rank r (U: n x r, s: r, V: d x r), float64."""

    u: torch.Tensor
    s: torch.Tensor
    v: torch.Tensor

    @property
    def rank(self) -> int:
        return int(self.s.numel())


def thin_svd(xc: torch.Tensor) -> Spectrum | str:
    """The spectrum of column-centred float64 features, or why it is undefined (rank 0)."""
    u, s, vh = torch.linalg.svd(xc, full_matrices=False)
    if s.numel() == 0 or not s[0] > 0:
        return "the centred features are all zero (every sample the same)"
    keep = int((s > s[0] * max(xc.shape) * torch.finfo(torch.float64).eps).sum())
    return Spectrum(u[:, :keep].contiguous(), s[:keep].clone(), vh[:keep].T.contiguous())


def pair_svd(qa: torch.Tensor, qb: torch.Tensor, vectors: bool = False):
    """Singular values (descending, clipped to [0, 1]) of qa^T qb; with `vectors`, (A, rho, B)."""
    c = qa.T @ qb
    if not vectors:
        return torch.linalg.svdvals(c).clamp_(0.0, 1.0)
    a, rho, bh = torch.linalg.svd(c, full_matrices=False)
    return a, rho.clamp_(0.0, 1.0), bh.T
