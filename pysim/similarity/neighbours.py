"""Neighbourhood measures (PAIRWISE): each model's k nearest neighbours by cosine similarity
(self excluded, ordered by decreasing similarity) once; per pair, vectorised comparisons of the
two n x k lists (n x k x k), so all pairs cost m^2 n k^2, not m^2 n^2.

jaccard: mean_i |N_X(i) & N_Y(i)| / |N_X(i) | N_Y(i)| (ReSi, Klabunde et al. 2024).
rank_similarity (Wang et al. 2020): mean_i of sum over j in N_X(i) & N_Y(i) of
2 / ((1 + |r_X(i,j) - r_Y(i,j)|) (r_X(i,j) + r_Y(i,j))), r the rank 1..k, divided by
sum_{t=1}^{K_i} 1/t with K_i = |N_X(i) & N_Y(i)| (0 when the sets are disjoint).
second_order_cosine (Hamilton et al. 2016): mean_i of the cosine between the vectors of cosine
similarities of sample i to the samples of N_X(i) | N_Y(i), in X and in Y.
cycle_knn (Huh et al. 2024, platonic-rep): row a, column b: the fraction of samples i found
among model a's neighbours of some neighbour of i in model b. **Asymmetric**, and below 1 on
the diagonal (a model's own cycle consistency).
All are invariant to orthogonal maps and isotropic scaling (not translation: cosine);
range [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

from pysim.config import MetricSpec
from pysim.similarity.base import (
    Kind,
    MetricFamily,
    choice,
    positive_int,
    row_blocks,
    too_few_for_k,
    torch,
)

MEASURES = ("jaccard", "rank_similarity", "second_order_cosine", "cycle_knn")
ROWS = 2048  # samples compared at once per pair (bounds the n x k x k temporaries)


class NeighbourhoodMetric(MetricFamily):
    """Per model: the sorted k-NN list (and unit rows for second_order_cosine)."""

    method = "neighbourhood"
    kind = Kind.PAIRWISE

    @classmethod
    def parse(cls, entry: dict[str, Any], where: str) -> MetricSpec:
        measure = choice(entry, where, "measure", MEASURES, "jaccard")
        return MetricSpec.of("neighbourhood", measure=measure,
                             k=positive_int(entry, where, "k", 10, "neighbourhood"))

    @staticmethod
    def metric_id(spec: MetricSpec) -> str:
        return f"neighbourhood_{spec.option('measure', 'jaccard')}_k_{spec.option('k', 10)}"

    @staticmethod
    def params(spec: MetricSpec) -> dict[str, Any]:
        out = {"sim_method": "neighbourhood", "measure": spec.option("measure", "jaccard"),
               "k": spec.option("k", 10)}
        if out["measure"] == "cycle_knn":
            out["symmetric"] = False
            out["diagonal"] = math.nan  # below 1 on the diagonal: not checked by the analyses
        return out

    @classmethod
    def size_problem(cls, spec: MetricSpec, n: int) -> str | None:
        return too_few_for_k(spec.option("k", 10), n)

    def __init__(self, spec: MetricSpec, n: int):
        super().__init__(spec, n)
        self.measure = spec.option("measure", "jaccard")
        self.k = spec.option("k", 10)
        self.symmetric = self.measure != "cycle_knn"
        self.lists: dict[int, torch.Tensor] = {}
        self.units: dict[int, torch.Tensor] = {}

    def model(self, a: int, xc: torch.Tensor, mean: torch.Tensor) -> str | None:
        x = xc + mean
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        if bool((norm <= 0).any()):
            return "a sample has zero norm, so its cosine neighbours are undefined"
        unit = x / norm
        idx = torch.empty(self.n, self.k, dtype=torch.int64, device=x.device)
        for rows in row_blocks(self.n, ROWS):
            cos = unit[rows] @ unit.T
            cos[torch.arange(rows.stop - rows.start), torch.arange(rows.start, rows.stop)] = \
                -float("inf")
            idx[rows] = torch.topk(cos, self.k, dim=1, sorted=True).indices
        self.lists[a] = idx
        if self.measure == "second_order_cosine":
            self.units[a] = unit
        return None

    def model_bytes(self, n: int, d: int) -> int:
        return 8 * n * self.k + (8 * n * d if self.measure == "second_order_cosine" else 0)

    def pairs(self, models: list[int]) -> torch.Tensor:
        m = len(models)
        out = torch.empty(m, m, dtype=torch.float64)
        for i, a in enumerate(models):
            for j in range(0 if not self.symmetric else i, m):
                # a model with itself: 1 by definition, but for cycle_knn (its own
                # neighbours' neighbours need not include a sample)
                value = 1.0 if i == j and self.symmetric else self._pair(a, models[j])
                out[i, j] = value
                if self.symmetric:
                    out[j, i] = value
        return out

    def _pair(self, a: int, b: int) -> float:
        total = 0.0
        for rows in row_blocks(self.n, ROWS):
            total += float(self._rows(a, b, rows).sum())
        return total / self.n

    def _rows(self, a: int, b: int, rows: slice) -> torch.Tensor:
        """Per-sample scores of the samples in `rows` (float64)."""
        na, nb = self.lists[a][rows], self.lists[b][rows]
        if self.measure == "cycle_knn":
            found = self.lists[a][nb] == torch.arange(rows.start, rows.stop,
                                                      device=na.device)[:, None, None]
            return found.flatten(1).any(dim=1).double()
        eq = na[:, :, None] == nb[:, None, :]  # eq[i, p, q]: a's p-th neighbour is b's q-th
        inter = eq.sum(dim=(1, 2)).double()
        if self.measure == "jaccard":
            return inter / (2 * self.k - inter)
        if self.measure == "rank_similarity":
            r = torch.arange(1, self.k + 1, dtype=torch.float64, device=na.device)
            weight = 2.0 / ((1.0 + (r[:, None] - r[None, :]).abs()) * (r[:, None] + r[None, :]))
            score = (eq * weight).sum(dim=(1, 2))
            harmonic = torch.cumsum(1.0 / r, 0)
            norm = harmonic[(inter.long() - 1).clamp_min(0)]
            return torch.where(inter > 0, score / norm, torch.zeros_like(score))
        union = torch.cat([na, nb], dim=1)  # b's neighbours already in a's list are masked
        keep = torch.cat([torch.ones_like(na, dtype=torch.bool), ~eq.any(dim=1)], dim=1)
        ua, ub = self.units[a], self.units[b]
        sa = torch.einsum("nd,nkd->nk", ua[rows], ua[union]) * keep
        sb = torch.einsum("nd,nkd->nk", ub[rows], ub[union]) * keep
        return (sa * sb).sum(1) / (torch.linalg.vector_norm(sa, dim=1)
                                   * torch.linalg.vector_norm(sb, dim=1))
