"""The metric-family interface (DESIGN §4) and the pieces the families share.

A family is one class registered in pysim.registry.METRICS under its `sim_method`. It owns
its metric-list keys (`parse`), its metric id and stored parameters, its size check, and the
computation of one kind, on which alone the engine branches:

- STACKED: similarity = <A_a, A_b> / (|A_a| |A_b|) of per-model n x n matrices A (centred
  kernels, centred RDMs, neighbour indicators). `observe` collects per-model statistics in pass
  1, `block` gives row blocks of A in pass 2 (`centred` the whole A when everything fits).
- RANKED: the Pearson correlation of per-model int32 rank vectors (`ranks`), stored, spilled to
  disk or recomputed per column slice.
- PAIRWISE: `model` reduces each model's column-centred float64 features to small statistics
  (a thin SVD, neighbour lists, ...); `pairs` turns the statistics of all models into the
  m x m matrix with one small product per pair.

Gram rows handed to a family are those of the column-centred features (centred in float64
before the float32 product, so a large common mean costs no precision); `ModelInfo.raw` adds
back the mean for families that are not translation invariant.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pysim.config import MetricSpec
from pysim.errors import InputError

if TYPE_CHECKING:
    import torch
else:
    class _LazyTorch:
        """The torch module, imported on first use: a metric list is parsed (pysim.config,
        pysim-validate) by the family classes without paying for importing torch."""

        def __getattr__(self, name: str) -> Any:
            import torch as module
            return getattr(module, name)

    torch = _LazyTorch()


class Kind(enum.Enum):
    """How the engine computes a family's matrix (see the module docstring)."""

    STACKED = "stacked"
    RANKED = "ranked"
    PAIRWISE = "pairwise"


@dataclass
class ModelInfo:
    """Per-sample statistics of one model's (prepared) features, float64, length n.

    The Gram matrix G the engine hands out is that of the column-centred features Xc = X - 1 c^T
    (c the float64 column mean); the raw Gram is G + u 1^T + 1 u^T + |c|^2 with u = Xc c.
    Without a mean (c = 0) the Gram given is the raw one.
    """

    d: int
    sq: torch.Tensor    # raw squared norms, the diagonal of `raw` (so self-distances are 0)
    norm: torch.Tensor  # sqrt(sq)
    mu: torch.Tensor    # mean over features of each sample
    var: torch.Tensor   # sum over features of (x - mu)^2, exact in float64
    csq: torch.Tensor | None = None  # squared norms of the centred rows (the Gram diagonal)
    u: torch.Tensor | None = None    # Xc c (None: the Gram is the raw one)
    cc: float = 0.0                  # |c|^2

    @classmethod
    def from_features(cls, x: torch.Tensor, gram_diag: torch.Tensor,
                      mean: torch.Tensor | None = None) -> ModelInfo:
        """Statistics of raw features x (n x d) given the diagonal of the Gram matrix formed,
        of x itself, or with `mean` (float64 column mean) of the centred features x - mean."""
        x64 = x.double()
        mu = x64.mean(dim=1)
        var = ((x64 - mu[:, None]) ** 2).sum(dim=1)
        csq = gram_diag.double()
        info = cls(d=x.shape[1], sq=csq, norm=csq.sqrt(), mu=mu, var=var, csq=csq)
        if mean is not None:
            info.u = (x64 - mean) @ mean
            info.cc = float(mean @ mean)
            info.sq = info.raw(slice(0, x.shape[0]), csq[:, None], diagonal=True)[:, 0]
            info.norm = info.sq.sqrt()
        return info

    def raw(self, rows: slice, gram_rows: torch.Tensor, diagonal: bool = False) -> torch.Tensor:
        """Float64 rows of the raw Gram matrix from rows of the centred one (a new tensor);
        with `diagonal`, gram_rows is a column of diagonal entries (i, i) for i in rows."""
        out = gram_rows.double().clone()
        if self.u is None:
            return out
        out += self.u[rows, None]
        out += self.u[rows, None] if diagonal else self.u[None, :]
        out += self.cc
        return out


class MetricFamily:
    """One family of measures (registered in pysim.registry.METRICS under `method`).

    Subclasses set `method` and `kind` (or a `kind` property when it depends on the spec),
    implement `parse`, `metric_id`, `params` and the methods of their kind.
    """

    method: ClassVar[str] = ""
    kind: Kind = Kind.STACKED
    symmetric: ClassVar[bool] = True  # False: row a, column b is the score of a given b
    pass1_pair_bytes: int = 0  # extra bytes per sample pair this family holds in pass 1

    def __init__(self, spec: MetricSpec, n: int):
        self.spec, self.n = spec, n

    # --- the spec: parsing, id, stored parameters, sizes (no torch needed) ---

    @classmethod
    def parse(cls, entry: dict[str, Any], where: str) -> MetricSpec:
        """The spec of one metric-list entry of this family; InputError naming `where`."""
        raise NotImplementedError

    @staticmethod
    def metric_id(spec: MetricSpec) -> str:
        """The DESIGN §4 metric id of a spec."""
        raise NotImplementedError

    @staticmethod
    def params(spec: MetricSpec) -> dict[str, Any]:
        """The parameters stored as attributes of the metric's matrix (`sim_method` first)."""
        raise NotImplementedError

    @classmethod
    def size_problem(cls, spec: MetricSpec, n: int) -> str | None:
        """Why n samples are too few for this metric (bad input), or None."""
        return None

    # --- STACKED ---

    def observe(self, a: int, gram: torch.Tensor, info: ModelInfo, chunk: int) -> str | None:
        """Pass 1: per-model statistics from the (float32) Gram; a reason if undefined."""
        raise NotImplementedError

    def centred(self, a: int, gram: torch.Tensor, info: ModelInfo,
                chunk: int) -> torch.Tensor | str:
        """The whole n x n matrix A of model a (float64), or why it is undefined."""
        raise NotImplementedError

    def block(self, a: int, rows: slice, gram_rows: torch.Tensor, info: ModelInfo) -> torch.Tensor:
        """Pass 2: rows `rows` of A of model a (float64) from float64 Gram rows."""
        raise NotImplementedError

    def finish(self, matrix: Any) -> Any:
        """STACKED and RANKED: the final m x m numpy matrix from the normalised products
        (identity; distance correlation takes the square root)."""
        return matrix

    # --- RANKED ---

    def ranks(self, gram: torch.Tensor, info: ModelInfo, chunk: int) -> torch.Tensor | str:
        """The int32 centred rank vector of one model, or why it is undefined."""
        raise NotImplementedError

    # --- PAIRWISE ---

    def model(self, a: int, xc: torch.Tensor, mean: torch.Tensor) -> str | None:
        """Per-model statistics from column-centred float64 features xc (the raw ones are
        xc + mean, for families that are not translation invariant); a reason if undefined."""
        raise NotImplementedError

    def pairs(self, models: list[int]) -> torch.Tensor:
        """The float64 matrix over `models` (rows and columns in that order)."""
        raise NotImplementedError

    def model_bytes(self, n: int, d: int) -> int:
        """PAIRWISE: bytes kept per model of n samples and d features until `pairs` ends."""
        return 0


# --- parsing helpers shared by the families ---

def choice(entry: dict[str, Any], where: str, key: str, allowed: tuple[str, ...],
           default: str) -> str:
    """entry[key] (default when absent), one of `allowed`."""
    value = entry.get(key, default)
    if value not in allowed:
        raise InputError(f"{where}: unknown {key} {value!r} (known: {', '.join(allowed)})")
    return value


def flag(entry: dict[str, Any], where: str, key: str, default: bool) -> bool:
    """entry[key] as true or false."""
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise InputError(f"{where}: '{key}' must be true or false")
    return value


def too_few_for_k(k: int, n: int) -> str | None:
    """Why n samples are too few for k nearest neighbours (self excluded), or None."""
    return f"k={k} needs more than {k} samples, got {n}" if k >= n else None


def positive_int(entry: dict[str, Any], where: str, key: str, default: int, what: str) -> int:
    """entry[key], a positive integer."""
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{where}: {what} needs a positive integer '{key}', got {value!r}")
    return value


def number(entry: dict[str, Any], where: str, key: str, default: float | None, what: str,
           low: float = 0.0, high: float = math.inf, low_open: bool = True) -> float:
    """entry[key], a finite number in (low, high] (or [low, high] without `low_open`)."""
    value = entry.get(key, default)
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) \
        or not math.isfinite(value) or value > high or value < low \
        or (low_open and value == low)
    if bad:
        raise InputError(f"{where}: {what} needs '{key}' in {'(' if low_open else '['}{low:g}, "
                         f"{high:g}], got {value!r}")
    return float(value)


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
