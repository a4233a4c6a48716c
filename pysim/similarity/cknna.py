"""CKNNA (Huh et al. 2024, platonic-rep's definition): CKA restricted to shared neighbours.

K = XX^T and L = YY^T of the (prepared) features; M_K(i, j) = 1 when j is among the k largest
K(i, .) (self excluded), M = M_K * M_L. CKNNA = HSIC_u(M o K, M o L) /
sqrt(HSIC_u(M_K o K, M_K o K) HSIC_u(M_L o L, M_L o L)), HSIC_u Song et al.'s unbiased
estimator applied to these non-symmetric masked matrices (platonic-rep adds 1e-6 to the
denominator; pysim does not). PAIRWISE: each model keeps its k neighbours and their kernel
values (n x k); a pair needs only the shared entries, so the three HSIC terms cost n k^2
(sum(A o B^T) through a sorted search for the transposed entries), never n^2. Invariant to
orthogonal maps and isotropic scaling; NaN for a model whose own masked HSIC is not positive.
**Asymmetric** (slightly): the masked matrices are not symmetric, so the HSIC term
sum(A B) = colsum(A) . rowsum(B) changes when the two models swap; row a, column b is
platonic-rep's cknna(feats_A = a, feats_B = b).
"""

from __future__ import annotations

import math
from typing import Any

from pysim.config import MetricSpec
from pysim.similarity.base import Kind, MetricFamily, positive_int, row_blocks, too_few_for_k, torch

ROWS = 2048


class CKNNAMetric(MetricFamily):
    """Per model: top-k neighbour lists by inner product and the kernel values there."""

    method = "cknna"
    kind = Kind.PAIRWISE
    symmetric = False

    @classmethod
    def parse(cls, entry: dict[str, Any], where: str) -> MetricSpec:
        k = positive_int(entry, where, "k", 10, "cknna")
        if k < 2:
            from pysim.errors import InputError
            raise InputError(f"{where}: cknna needs 'k' >= 2, got {k}")
        return MetricSpec.of("cknna", k=k)

    @staticmethod
    def metric_id(spec: MetricSpec) -> str:
        return f"cknna_k_{spec.option('k', 10)}"

    @staticmethod
    def params(spec: MetricSpec) -> dict[str, Any]:
        return {"sim_method": "cknna", "k": spec.option("k", 10), "symmetric": False}

    @classmethod
    def size_problem(cls, spec: MetricSpec, n: int) -> str | None:
        return too_few_for_k(spec.option("k", 10), n)

    def __init__(self, spec: MetricSpec, n: int):
        super().__init__(spec, n)
        self.k = spec.option("k", 10)
        self.lists: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.self_hsic: dict[int, float] = {}

    def model_bytes(self, n: int, d: int) -> int:
        return 16 * n * self.k

    def model(self, a: int, xc: torch.Tensor, mean: torch.Tensor) -> str | None:
        x = xc + mean
        idx = torch.empty(self.n, self.k, dtype=torch.int64, device=x.device)
        val = torch.empty(self.n, self.k, dtype=torch.float64, device=x.device)
        for rows in row_blocks(self.n, ROWS):
            k = x[rows] @ x.T
            k[torch.arange(rows.stop - rows.start), torch.arange(rows.start, rows.stop)] = \
                -float("inf")
            top = torch.topk(k, self.k, dim=1)
            idx[rows], val[rows] = top.indices, top.values
        self.lists[a], self.values[a] = idx, val
        own = torch.ones_like(val, dtype=torch.bool)
        hsic = self._hsic(idx, own, val, val)
        if not hsic > 0:
            return "its neighbour-masked HSIC with itself is not positive"
        self.self_hsic[a] = hsic
        return None

    def _hsic(self, idx: torch.Tensor, keep: torch.Tensor, kv: torch.Tensor,
              lv: torch.Tensor) -> float:
        """Unbiased HSIC of A, B: n x n, nonzero only at (i, idx[i, p]) where keep, with values
        kv (A) and lv (B) there; both kernels symmetric, so B_ji = lv at (i, j) when (j, i) is
        kept too."""
        n = self.n
        kv, lv = kv * keep, lv * keep
        rows = torch.arange(n, device=idx.device)[:, None].expand_as(idx)
        keys = (rows * n + idx)[keep]
        order = torch.sort(keys)
        flipped = (idx * n + rows)[keep]
        pos = torch.searchsorted(order.values, flipped).clamp_max_(max(keys.numel() - 1, 0))
        both = order.values[pos] == flipped if keys.numel() else flipped.bool()
        t1 = float((kv[keep] * lv[keep] * both).sum())
        t2 = float(kv.sum()) * float(lv.sum()) / ((n - 1) * (n - 2))
        colsum = torch.zeros(n, dtype=torch.float64, device=idx.device)
        colsum.scatter_add_(0, idx.flatten(), kv.flatten())
        t3 = 2.0 / (n - 2) * float(colsum @ lv.sum(dim=1))
        return (t1 + t2 - t3) / (n * (n - 3))

    def pairs(self, models: list[int]) -> torch.Tensor:
        m = len(models)
        out = torch.empty(m, m, dtype=torch.float64)
        for i, a in enumerate(models):
            for j, b in enumerate(models):
                if i == j:
                    out[i, j] = 1.0
                    continue
                eq = self.lists[a][:, :, None] == self.lists[b][:, None, :]
                keep = eq.any(dim=2)  # a's p-th neighbour is also one of b's
                lv = (eq * self.values[b][:, None, :]).sum(dim=2)  # L there
                hsic = self._hsic(self.lists[a], keep, self.values[a], lv)
                out[i, j] = hsic / math.sqrt(self.self_hsic[a] * self.self_hsic[b])
        return out
