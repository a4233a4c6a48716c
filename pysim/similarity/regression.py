"""Linear regression R^2 (PAIRWISE, asymmetric): how much of model b's centred features a
least-squares map from model a's features (with intercept) explains.

R^2(a -> b) = |P_a Y_b|_F^2 / |Y_b|_F^2 with P_a the projection on the column space of a's
centred features, computed as |U_a^T U_b diag(s_b)|_F^2 / sum s_b^2 from one thin SVD per
model. Row a, column b of the matrix is R^2 of predicting b from a (`symmetric: false` is
stored with it). Invariant to invertible linear maps of a, orthogonal maps and isotropic
scaling of b, translation of either; range [0, 1]; with n - 1 <= rank(a) it is 1.
"""

from __future__ import annotations

import math
from typing import Any

from pysim.config import MetricSpec
from pysim.similarity.base import Kind, MetricFamily, torch
from pysim.similarity.spectral import Spectrum, thin_svd


class LinearRegressionMetric(MetricFamily):
    """Per model: a thin SVD; per ordered pair: one r_a x r_b product."""

    method = "linear_regression"
    kind = Kind.PAIRWISE
    symmetric = False

    @classmethod
    def parse(cls, entry: dict[str, Any], where: str) -> MetricSpec:
        return MetricSpec.of("linear_regression")

    @staticmethod
    def metric_id(spec: MetricSpec) -> str:
        return "linear_regression_r2"

    @staticmethod
    def params(spec: MetricSpec) -> dict[str, Any]:
        return {"sim_method": "linear_regression", "symmetric": False,
                "direction": "row predicts column", "value_range": [-math.inf, 1.0]}

    def __init__(self, spec: MetricSpec, n: int):
        super().__init__(spec, n)
        self.spectra: dict[int, Spectrum] = {}

    def model(self, a: int, xc: torch.Tensor, mean: torch.Tensor) -> str | None:
        spectrum = thin_svd(xc)
        if isinstance(spectrum, str):
            return spectrum
        self.spectra[a] = spectrum
        return None

    def model_bytes(self, n: int, d: int) -> int:
        return 8 * n * min(n, d)

    def pairs(self, models: list[int]) -> torch.Tensor:
        m = len(models)
        out = torch.empty(m, m, dtype=torch.float64)
        for i, a in enumerate(models):
            for j, b in enumerate(models):
                x, y = self.spectra[a], self.spectra[b]
                explained = ((x.u.T @ y.u) * y.s[None, :]).square().sum()
                out[i, j] = 1.0 if i == j else min(1.0, float(explained / y.s.square().sum()))
        return out
