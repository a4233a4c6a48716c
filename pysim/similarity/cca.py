"""CCA family (PAIRWISE): canonical correlations rho_i = singular values of Q_X^T Q_Y, Q the
orthonormal basis of each model's centred features (one thin SVD per model).

mean: sum rho / min(r_X, r_Y) (mean canonical correlation, Raghu et al. 2017's rho-bar);
r2: sum rho^2 / min(r_X, r_Y) (R^2_CCA, Kornblith et al. 2019); yanai: sum rho^2 /
sqrt(r_X r_Y) (Yanai's generalised coefficient of determination, Ramsay et al. 1984); pillai:
sum rho^2 (Pillai's trace, unnormalised: range [0, min(r_X, r_Y)]); svcca: mean canonical
correlation after keeping each model's top singular directions (a variance fraction, default
0.99, or a fixed number `dims`; Raghu et al. 2017); pwcca: canonical correlations weighted by
how much of X's columns each canonical variate of X accounts for, sum_j |<h_i, x_j>| (Morcos
et al. 2018; asymmetric: row a uses model a's weights). SVD-based, so PWCCA has no iterative
solver to fail to converge; rank-deficient features (n < d, constant columns) use their rank.
"""

from __future__ import annotations

from typing import Any

from pysim.config import MetricSpec
from pysim.similarity.base import Kind, MetricFamily, choice, number, positive_int, torch
from pysim.similarity.spectral import Spectrum, pair_svd, thin_svd

CCA_METHODS = ("mean", "r2", "yanai", "pillai", "svcca", "pwcca")


class CCAMetric(MetricFamily):
    """Per model: a thin SVD; per pair: the singular values of Q_a^T Q_b."""

    method = "cca"
    kind = Kind.PAIRWISE

    @classmethod
    def parse(cls, entry: dict[str, Any], where: str) -> MetricSpec:
        variant = choice(entry, where, "cca_method", CCA_METHODS, "mean")
        if variant != "svcca":
            return MetricSpec.of("cca", cca_method=variant)
        if "dims" in entry:
            return MetricSpec.of("cca", cca_method=variant,
                                 dims=positive_int(entry, where, "dims", 0, "svcca"))
        fraction = number(entry, where, "variance", 0.99, "svcca", high=1.0)
        return MetricSpec.of("cca", cca_method=variant, variance=fraction)

    @staticmethod
    def metric_id(spec: MetricSpec) -> str:
        variant = spec.option("cca_method", "mean")
        if variant != "svcca":
            return f"cca_method_{variant}"
        dims = spec.option("dims")
        return (f"cca_method_svcca_dims_{dims}" if dims else
                f"cca_method_svcca_variance_{spec.option('variance', 0.99):g}")

    @staticmethod
    def params(spec: MetricSpec) -> dict[str, Any]:
        out = {"sim_method": "cca", **dict(spec.options)}
        out.setdefault("cca_method", "mean")
        if out["cca_method"] == "pwcca":
            out["symmetric"] = False
        return out

    def __init__(self, spec: MetricSpec, n: int):
        super().__init__(spec, n)
        self.variant = spec.option("cca_method", "mean")
        self.symmetric = self.variant != "pwcca"
        self.spectra: dict[int, Spectrum] = {}

    def model(self, a: int, xc: torch.Tensor, mean: torch.Tensor) -> str | None:
        spectrum = thin_svd(xc)
        if isinstance(spectrum, str):
            return spectrum
        if self.variant == "svcca":
            dims = self.spec.option("dims")
            if dims is None:
                energy = torch.cumsum(spectrum.s**2, 0) / (spectrum.s**2).sum()
                fraction = self.spec.option("variance", 0.99)
                dims = int((energy < fraction - 1e-12).sum()) + 1
            elif dims > spectrum.rank:
                return f"SVCCA keeps {dims} directions but the features have rank {spectrum.rank}"
            spectrum = Spectrum(spectrum.u[:, :dims], spectrum.s[:dims], spectrum.v[:, :dims])
        self.spectra[a] = spectrum
        return None

    def model_bytes(self, n: int, d: int) -> int:
        return 8 * n * min(n, d) + 8 * d * min(n, d)

    def pairs(self, models: list[int]) -> torch.Tensor:
        m = len(models)
        out = torch.empty(m, m, dtype=torch.float64)
        for i, a in enumerate(models):
            for j in range(0 if self.variant == "pwcca" else i, m):
                value = self._pair(self.spectra[a], self.spectra[models[j]])
                out[i, j] = value
                if self.variant != "pwcca":
                    out[j, i] = value
        return out

    def _pair(self, x: Spectrum, y: Spectrum) -> float:
        low = min(x.rank, y.rank)
        if self.variant == "pwcca":
            a, rho, _ = pair_svd(x.u, y.u, vectors=True)
            # <h_i, x_j> for canonical variates h_i = U_x a_i and columns x_j = U_x s v_j^T
            weights = (a.T * x.s[None, :] @ x.v.T).abs().sum(dim=1)[:low]
            return float((weights * rho[:low]).sum() / weights.sum())
        rho = pair_svd(x.u, y.u)[:low]
        if self.variant in ("mean", "svcca"):
            return float(rho.sum() / low)
        total = float((rho**2).sum())
        if self.variant == "r2":
            return total / low
        if self.variant == "yanai":
            return total / (x.rank * y.rank) ** 0.5
        return total
