"""Mutual k-nearest-neighbour alignment (Huh et al. 2024): neighbour lists once per model.

The score of a pair is the inner product of the two n x n neighbour-indicator matrices divided
by n k, i.e. the mean over samples of |N_k^X(i) & N_k^Y(i)| / k.
"""

from __future__ import annotations

from typing import Any

from pysim.config import MetricSpec
from pysim.similarity.base import (  # torch: imported on first use
    Kind,
    MetricFamily,
    ModelInfo,
    diag_index,
    positive_int,
    row_blocks,
    too_few_for_k,
    torch,
)


class MutualKNNMetric(MetricFamily):
    """Row blocks of each model's neighbour-indicator matrix (cosine, self excluded)."""

    method = "mutual_knn"
    kind = Kind.STACKED

    @classmethod
    def parse(cls, entry: dict[str, Any], where: str) -> MetricSpec:
        return MetricSpec("mutual_knn", k=positive_int(entry, where, "k", 10, "mutual_knn"))

    @staticmethod
    def metric_id(spec: MetricSpec) -> str:
        return f"mutual_knn_k_{spec.k}"

    @staticmethod
    def params(spec: MetricSpec) -> dict[str, Any]:
        return {"sim_method": "mutual_knn", "k": spec.k}

    @classmethod
    def size_problem(cls, spec: MetricSpec, n: int) -> str | None:
        return too_few_for_k(spec.k, n)

    def __init__(self, spec: MetricSpec, n: int):
        super().__init__(spec, n)
        self.neighbours: dict[int, torch.Tensor] = {}

    def observe(self, a: int, gram: torch.Tensor, info: ModelInfo, chunk: int) -> str | None:
        """Pass 1: the k nearest neighbours of every sample by cosine similarity."""
        if bool((info.norm <= 0).any()):
            return "a sample has zero norm, so its cosine neighbours are undefined"
        idx = torch.empty(self.n, self.spec.k, dtype=torch.int64, device=gram.device)
        for rows in row_blocks(self.n, chunk):
            cos = info.raw(rows, gram[rows]) / (info.norm[rows, None] * info.norm[None, :])
            cos[diag_index(rows, cos.device)] = -float("inf")
            idx[rows] = torch.topk(cos, self.spec.k, dim=1, sorted=False).indices
        self.neighbours[a] = idx
        return None

    def centred(self, a: int, gram: torch.Tensor, info: ModelInfo,
                chunk: int) -> torch.Tensor | str:
        """The whole neighbour-indicator matrix of model a, or why it is undefined."""
        reason = self.observe(a, gram, info, chunk)
        return reason or self.block(a, slice(0, self.n), gram, info)

    def block(self, a: int, rows: slice, gram_rows: torch.Tensor, info: ModelInfo) -> torch.Tensor:
        """Pass 2: rows of the 0/1 neighbour-indicator matrix of model a (float64)."""
        z = torch.zeros(rows.stop - rows.start, self.n, dtype=torch.float64,
                        device=gram_rows.device)
        return z.scatter_(1, self.neighbours[a][rows], 1.0)
