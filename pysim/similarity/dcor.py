"""Distance correlation (Szekely, Rizzo & Bakirov 2007), STACKED: the double-centred Euclidean
distance matrices A = H D H play the part of CKA's centred kernels, so
dCor^2 = <A_X, A_Y> / (|A_X| |A_Y|) comes from the same all-pairs product; the matrix holds
dCor = sqrt(dCor^2). Invariant to orthogonal maps, translation and isotropic scaling (not to
general linear maps); range [0, 1], 0 only for independent X and Y (in the population).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pysim.config import MetricSpec
from pysim.similarity.base import ModelInfo, torch
from pysim.similarity.cka import CKAMetric


class DistanceCorrelationMetric(CKAMetric):
    """CKA's biased centring applied to Euclidean distance rows (from the centred Gram)."""

    method = "distance_correlation"

    @classmethod
    def parse(cls, entry: dict[str, Any], where: str) -> MetricSpec:
        return MetricSpec("distance_correlation", unbiased=False)

    @staticmethod
    def metric_id(spec: MetricSpec) -> str:
        return "distance_correlation"

    @staticmethod
    def params(spec: MetricSpec) -> dict[str, Any]:
        return {"sim_method": "distance_correlation"}

    def __init__(self, spec: MetricSpec, n: int):
        super().__init__(MetricSpec("distance_correlation", unbiased=False), n)

    def _kernel(self, a: int, rows: slice, gram_rows: torch.Tensor,
                info: ModelInfo) -> torch.Tensor:
        d2 = gram_rows * -2.0
        d2 += info.csq[rows, None]
        d2 += info.csq[None, :]
        return d2.clamp_min_(0.0).sqrt_()

    def _width(self, a: int, gram: torch.Tensor, info: ModelInfo, chunk: int) -> str | None:
        return None

    def finish(self, matrix: np.ndarray) -> np.ndarray:
        return np.sqrt(np.clip(matrix, 0.0, None))
