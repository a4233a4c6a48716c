"""Shape metrics (PAIRWISE; Williams et al. 2021) and the normalised Bures similarity.

Per model, the column-centred features are partially whitened, X_alpha = alpha X + (1 - alpha)
X (X^T X)^{-1/2} (alpha = 1: none, the Procrustes case; alpha = 0: fully whitened, the CCA
case), which on the thin SVD X = U diag(s) V^T only maps s -> alpha s + (1 - alpha), and
scaled to unit Frobenius norm. Per pair, c = |X_alpha^T Y_alpha|_* (nuclear norm: the
singular values of diag(s'_X) U_X^T U_Y diag(s'_Y)) is the cosine of the angle left after the
best rotation. Scores: `cosine` c (at alpha = 1 the normalised Bures similarity, Harvey et al.
2024; range [0, 1]), `angular` arccos c (Williams et al.'s metric, radians in [0, pi/2], 0 on
the diagonal), `procrustes` sqrt(2 - 2 c), the orthogonal Procrustes distance of the
unit-norm representations (min over rotations R of |X - Y R|_F; range [0, sqrt 2]).
"""

from __future__ import annotations

import math
from typing import Any

from pysim.config import MetricSpec
from pysim.similarity.base import Kind, MetricFamily, choice, number, torch
from pysim.similarity.spectral import thin_svd

SCORES = ("cosine", "angular", "procrustes")


class ShapeMetric(MetricFamily):
    """Per model: the scaled singular vectors U diag(s'); per pair: one nuclear norm."""

    method = "shape"
    kind = Kind.PAIRWISE

    @classmethod
    def parse(cls, entry: dict[str, Any], where: str) -> MetricSpec:
        alpha = number(entry, where, "alpha", 1.0, "shape", low=0.0, high=1.0, low_open=False)
        return MetricSpec.of("shape", alpha=alpha,
                             score=choice(entry, where, "score", SCORES, "cosine"))

    @staticmethod
    def metric_id(spec: MetricSpec) -> str:
        return f"shape_alpha_{spec.option('alpha', 1.0):g}_{spec.option('score', 'cosine')}"

    @staticmethod
    def params(spec: MetricSpec) -> dict[str, Any]:
        out = {"sim_method": "shape", "alpha": spec.option("alpha", 1.0),
               "score": spec.option("score", "cosine")}
        if out["score"] != "cosine":  # distances: 0 on the diagonal (read by the analyses)
            out["value_range"] = [0.0, math.pi / 2 if out["score"] == "angular" else math.sqrt(2)]
            out["diagonal"] = 0.0
        return out

    def __init__(self, spec: MetricSpec, n: int):
        super().__init__(spec, n)
        self.alpha = float(spec.option("alpha", 1.0))
        self.score = spec.option("score", "cosine")
        self.factors: dict[int, torch.Tensor] = {}

    def model(self, a: int, xc: torch.Tensor, mean: torch.Tensor) -> str | None:
        spectrum = thin_svd(xc)
        if isinstance(spectrum, str):
            return spectrum
        s = self.alpha * spectrum.s + (1.0 - self.alpha)
        s = s / torch.linalg.vector_norm(s)  # unit Frobenius norm
        self.factors[a] = spectrum.u * s[None, :]
        return None

    def model_bytes(self, n: int, d: int) -> int:
        return 8 * n * min(n, d)

    def pairs(self, models: list[int]) -> torch.Tensor:
        m = len(models)
        out = torch.empty(m, m, dtype=torch.float64)
        for i, a in enumerate(models):
            for j in range(i, m):
                c = self.factors[a].T @ self.factors[models[j]]
                value = min(1.0, float(torch.linalg.svdvals(c).sum()))
                out[i, j] = out[j, i] = self._score(value if j != i else 1.0)
        return out

    def _score(self, c: float) -> float:
        if self.score == "angular":
            return math.acos(c)
        if self.score == "procrustes":
            return math.sqrt(max(0.0, 2.0 - 2.0 * c))
        return c
