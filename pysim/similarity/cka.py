"""CKA (linear or RBF kernel, biased or unbiased HSIC) as an inner product of centred kernels.

Unbiased: U-centring (Szekely & Rizzo 2014), whose inner product is n(n-3) HSIC_u; biased:
HKH. CKA is then <Kc, Lc> / (|Kc| |Lc|), so all pairs follow from one product across models.
"""

from __future__ import annotations

import math
from typing import Any

from pysim.config import MetricSpec
from pysim.similarity.base import (  # torch: imported on first use
    Kind,
    MetricFamily,
    ModelInfo,
    choice,
    diag_index,
    flag,
    number,
    row_blocks,
    torch,
    upper_mask,
)

# an RBF kernel whose mean off-diagonal value is this close to 1 is constant to float64
# precision after centring (fewer than ~6 significant digits left): not computable
RBF_CONSTANT_TOLERANCE = 1e-10


def rbf_from_gram(rows: slice, gram_rows: torch.Tensor, info: ModelInfo,
                  sigma: float) -> torch.Tensor:
    """RBF kernel rows exp(-|x_i - x_j|^2 / (2 sigma^2)) from float64 (centred) Gram rows."""
    d2 = gram_rows * -2.0
    d2 += info.csq[rows, None]
    d2 += info.csq[None, :]
    return d2.clamp_min_(0.0).mul_(-0.5 / sigma / sigma).exp_()  # sigma**2 may overflow


def median_distance(gram: torch.Tensor, info: ModelInfo, chunk: int) -> float:
    """Median of the pairwise Euclidean distances |x_i - x_j| over all pairs i < j."""
    n = gram.shape[0]
    parts = []
    for rows in row_blocks(n, chunk):
        g = gram[rows].double()
        d2 = (info.csq[rows, None] + info.csq[None, :] - 2.0 * g).clamp_min_(0.0)
        parts.append(d2[upper_mask(rows, n, gram.device)])
    values = torch.cat(parts)
    count = values.numel()
    lo = torch.kthvalue(values, (count + 1) // 2).values.sqrt()
    hi = torch.kthvalue(values, count // 2 + 1).values.sqrt()
    return float((lo + hi) / 2)


class CKAMetric(MetricFamily):
    """Row blocks of each model's centred kernel; pass 1 stores the row sums centring needs.

    Translation invariant (both kernels), so it works on the centred Gram rows directly.
    """

    method = "cka"
    kind = Kind.STACKED

    @classmethod
    def parse(cls, entry: dict[str, Any], where: str) -> MetricSpec:
        kernel = choice(entry, where, "sim_kernel", ("linear", "rbf"), "linear")
        unbiased = flag(entry, where, "unbiased", True)
        if kernel == "linear":
            return MetricSpec("cka", "linear", unbiased)
        sigma = number(entry, where, "sigma", None, "rbf kernel")
        mode = choice(entry, where, "sigma_mode", ("absolute", "median"), "absolute")
        return MetricSpec("cka", "rbf", unbiased, sigma, mode)

    @staticmethod
    def metric_id(spec: MetricSpec) -> str:
        est = "unbiased" if spec.unbiased else "biased"
        if spec.kernel == "linear":
            return f"cka_kernel_linear_{est}"
        suffix = "_median" if spec.sigma_mode == "median" else ""
        return f"cka_kernel_rbf_{est}_sigma_{spec.sigma:g}{suffix}"

    @staticmethod
    def params(spec: MetricSpec) -> dict[str, Any]:
        out = {"sim_method": "cka", "sim_kernel": spec.kernel, "unbiased": spec.unbiased}
        if spec.kernel == "rbf":
            out.update(sigma=spec.sigma, sigma_mode=spec.sigma_mode)
        return out

    def __init__(self, spec: MetricSpec, n: int):
        super().__init__(spec, n)
        if spec.kernel == "rbf" and spec.sigma_mode == "median":
            self.pass1_pair_bytes = 16  # the pairwise distances whose median is taken
        self.sums: dict[int, torch.Tensor] = {}
        self.sigmas: dict[int, float] = {}

    def _kernel(self, a: int, rows: slice, gram_rows: torch.Tensor,
                info: ModelInfo) -> torch.Tensor:
        if self.spec.kernel == "linear":
            k = gram_rows.clone()
        else:
            k = rbf_from_gram(rows, gram_rows, info, self.sigmas[a])
        if self.spec.unbiased:
            k[diag_index(rows, k.device)] = 0.0
        return k

    def _width(self, a: int, gram: torch.Tensor, info: ModelInfo, chunk: int) -> str | None:
        if self.spec.kernel == "rbf":
            sigma = self.spec.sigma
            if self.spec.sigma_mode == "median":
                sigma = sigma * median_distance(gram, info, chunk)
                if not sigma > 0:
                    return "median pairwise distance is 0"
            if not math.isfinite(0.5 / sigma / sigma):
                return f"RBF sigma {sigma:g} is too small to compute the kernel"
            self.sigmas[a] = sigma
        return None

    def _degenerate(self, a: int, sums: torch.Tensor) -> str | None:
        """Why model a's RBF kernel carries no information at its sigma (from its row sums),
        or None: every off-diagonal value 0 (underflow) or all of them 1 to 10 digits."""
        if self.spec.kernel != "rbf" or self.n < 2:
            return None
        off = sums - (0.0 if self.spec.unbiased else 1.0)  # off-diagonal row sums
        if float(off.max()) == 0.0:
            return (f"RBF sigma {self.sigmas[a]:g} is too small for these features: every "
                    "off-diagonal kernel value underflows to 0")
        if float(off.sum()) / (self.n * (self.n - 1)) > 1.0 - RBF_CONSTANT_TOLERANCE:
            return (f"RBF sigma {self.sigmas[a]:g} is too large for these features: the kernel is "
                    "constant (every value 1 to 10 digits)")
        return None

    def centred(self, a: int, gram: torch.Tensor, info: ModelInfo,
                chunk: int) -> torch.Tensor | str:
        """The whole centred kernel of model a (float64), or the reason it is undefined."""
        reason = self._width(a, gram, info, chunk)
        if reason:
            return reason
        rows = slice(0, self.n)
        k = self._kernel(a, rows, gram.double(), info)
        self.sums[a] = k.sum(dim=1)
        return self._degenerate(a, self.sums[a]) or self._centre(k, rows, self.sums[a])

    def observe(self, a: int, gram: torch.Tensor, info: ModelInfo, chunk: int) -> str | None:
        """Pass 1: kernel width (median mode) and kernel row sums; a reason if unusable."""
        reason = self._width(a, gram, info, chunk)
        if reason:
            return reason
        sums = torch.empty(self.n, dtype=torch.float64, device=gram.device)
        for rows in row_blocks(self.n, chunk):
            sums[rows] = self._kernel(a, rows, gram[rows].double(), info).sum(dim=1)
        self.sums[a] = sums
        return self._degenerate(a, sums)

    def block(self, a: int, rows: slice, gram_rows: torch.Tensor, info: ModelInfo) -> torch.Tensor:
        """Pass 2: rows `rows` of the centred kernel of model a (float64)."""
        return self._centre(self._kernel(a, rows, gram_rows, info), rows, self.sums[a])

    def _centre(self, k: torch.Tensor, rows: slice, s: torch.Tensor) -> torch.Tensor:
        n, total = self.n, s.sum()
        if self.spec.unbiased:
            k -= s[rows, None] / (n - 2)
            k -= s[None, :] / (n - 2)
            k += total / ((n - 1) * (n - 2))
            k[diag_index(rows, k.device)] = 0.0
        else:
            k -= s[rows, None] / n
            k -= s[None, :] / n
            k += total / n**2
        return k
