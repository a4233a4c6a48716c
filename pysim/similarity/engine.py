"""All-pairs engine: every metric for every model pair of one dataset in two streamed passes.

It branches only on each metric family's kind (pysim.similarity.base.Kind). Pass 1 (per
model): the features are centred per column in float64, one Gram matrix XcXc^T gives the
statistics each STACKED family needs (kernel row sums, RDM means, neighbour lists), the rank
vectors of the RANKED ones and the small per-model statistics of the PAIRWISE ones. Pass 2
(per row block): the STACKED blocks of all models are stacked and multiplied into m x m
float64 inner products.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pysim.config import MetricSpec
from pysim.errors import InputError
from pysim.similarity.base import Kind, MetricFamily, ModelInfo, overflow_reason, row_blocks
from pysim.similarity.memory import working_budget
from pysim.similarity.prepare import invalid_reason, prepare_features

log = logging.getLogger("pysim.similarity")


@dataclass
class MemoryPlan:
    """How the engine fits the budget: chunk sizes and what it may keep between passes."""

    chunk: int          # rows per float64 chunk inside pass 1
    block: int          # rows per stacked block in pass 2
    cache_grams: bool   # keep every model's Gram matrix for pass 2
    spill_ranks: bool   # Spearman rank vectors go to temporary files instead of memory
    columns: int = 1 << 22  # vector entries per chunk when multiplying stored vectors
    store: bool = False  # keep every model's whole centred matrices (float32): no pass 2
    rank_slices: int = 1  # > 1: Spearman ranks recomputed per column slice, never stored


def plan_memory(budget: int, m: int, n: int, n_stacked: int, n_spearman: int,
                median: bool, recompute_ranks: bool = False) -> MemoryPlan:
    """Choose block sizes so that the engine's own allocations stay within `budget` bytes.

    A fifth of the budget is left as headroom for allocator overhead and small temporaries.
    Spearman rank vectors that do not fit are spilled to temporary files, or with
    `recompute_ranks` (on a GPU, where ranking is cheap and local disk small) recomputed for
    each column slice of the m x pairs rank matrix that fits.
    """
    budget = int(budget * 0.8)
    pairs = n * (n - 1) // 2
    gram = 4 * n * n
    chunk = int(np.clip(budget // 10 // (n * 8 * 8), 1, n))
    pass1 = gram + chunk * n * 64 + (28 * pairs if n_spearman else 0) \
        + (16 * pairs if median else 0)
    row_bytes = n * (8 * m * n_stacked + 64)
    min_pass2 = min(n, 16) * row_bytes if n_stacked else 0
    if budget < pass1 + min_pass2 + 1024 * m * 12:
        need = (pass1 + min_pass2 + 1024 * m * 12) / 2**20
        raise InputError(f"--max-memory is too small for {n} samples and {m} models: the "
                         f"engine needs at least {need:.0f} MiB beyond what is already in use "
                         f"({budget / 2**20:.0f} MiB available)")
    rank_all = 4 * pairs * m * n_spearman
    spill = pass1 + rank_all > budget
    if spill and recompute_ranks:
        return _recompute_plan(budget, m, n, pass1, pairs, chunk, row_bytes, n_stacked)
    columns = int(np.clip((budget - (0 if spill else rank_all)) // 4 // (m * 12), 1024, 1 << 20))
    stored = 4 * n * n * m * n_stacked
    store = n_stacked > 0 and pass1 + 32 * n * n + stored + (0 if spill else rank_all) \
        + columns * m * 12 <= budget
    cache = m * gram
    cache_grams = not store and pass1 + cache + (0 if spill else rank_all) <= budget \
        and cache + min_pass2 <= budget // 2
    left = budget - (cache if cache_grams else 0)
    block = int(np.clip(left // row_bytes, 1, n)) if n_stacked else n
    return MemoryPlan(chunk=chunk, block=block, cache_grams=cache_grams, spill_ranks=spill,
                      columns=columns, store=store)


def _recompute_plan(budget: int, m: int, n: int, pass1: int, pairs: int, chunk: int,
                    row_bytes: int, n_stacked: int) -> MemoryPlan:
    """Spearman ranks recomputed per column slice: two thirds of what pass 1 leaves hold one
    slice of every model's ranks (int32), a third the float64 product buffer; nothing cached."""
    room = budget - pass1
    width = max(1024, room * 2 // 3 // (4 * m))
    columns = int(np.clip(room // 3 // (8 * m), 1024, 1 << 20))
    block = int(np.clip(room // row_bytes, 1, n)) if n_stacked else n
    return MemoryPlan(chunk=chunk, block=block, cache_grams=False, spill_ranks=False,
                      columns=columns, store=False, rank_slices=-(-pairs // width))


def _normalised_products(acc: torch.Tensor) -> np.ndarray:
    """acc_ab / sqrt(acc_aa acc_bb), symmetrised, clipped to [-1, 1], NaN where a norm is 0."""
    acc = acc.double().cpu()
    diag = acc.diagonal().clone()
    scale = torch.where(diag > 0, diag.sqrt(), torch.full_like(diag, float("nan")))
    sims = acc / scale[:, None] / scale[None, :]
    sims = ((sims + sims.T) / 2).clamp_(-1.0, 1.0).numpy()
    ok = np.isfinite(np.diag(sims))
    np.fill_diagonal(sims, np.where(ok, 1.0, np.nan))
    sims[~ok, :] = np.nan
    sims[:, ~ok] = np.nan
    return sims


class _Engine:
    """The two passes over the valid models of one dataset."""

    def __init__(self, xs: list[torch.Tensor], specs: list[MetricSpec], budget: int,
                 progress: bool, plan: MemoryPlan | None = None):
        self.xs, self.m, self.n = xs, len(xs), xs[0].shape[0]
        self.device = xs[0].device
        self.progress = progress
        families = {s.id: s.family(s, self.n) for s in specs}
        self.stacked = _of_kind(families, Kind.STACKED)
        self.ranked = _of_kind(families, Kind.RANKED)
        self.pairwise = _of_kind(families, Kind.PAIRWISE)
        median = any(f.pass1_pair_bytes for f in families.values())
        budget -= self._pairwise_bytes(budget)
        self.plan = plan or plan_memory(budget, self.m, self.n, len(self.stacked),
                                        len(self.ranked), median,
                                        recompute_ranks=self.device.type == "cuda")
        log.info("memory plan: %s", self.plan)
        self.infos: list[ModelInfo] = []
        self.grams: list[torch.Tensor] = []
        self.bad: dict[str, set[int]] = {s.id: set() for s in specs}
        self.reasons: dict[tuple[str, int], str] = {}
        self.stage_times: dict[str, float] = {}

    def _pairwise_bytes(self, budget: int) -> int:
        """What the PAIRWISE families keep for all models, plus one model's float64 features
        and thin SVD while it is reduced; InputError when that alone exceeds the budget."""
        if not self.pairwise:
            return 0
        widths = [x.shape[1] for x in self.xs]
        kept = sum(f.model_bytes(self.n, d) for f in self.pairwise.values() for d in widths)
        need = kept + 8 * self.n * max(widths) * 3
        if need > budget * 0.8:
            raise InputError(f"--max-memory is too small for the per-model statistics of "
                             f"{', '.join(self.pairwise)}: they need {need / 2**20:.0f} MiB "
                             f"({budget * 0.8 / 2**20:.0f} MiB available)")
        return need

    def gram(self, a: int, rows: slice | None = None) -> torch.Tensor:
        """Gram rows of model a (float32): from the cache or recomputed (bit-identical)."""
        if self.grams:
            return self.grams[a] if rows is None else self.grams[a][rows]
        x = self.xs[a]
        return x @ x.T if rows is None else x[rows] @ x.T

    def _stage(self, name: str, start: float) -> float:
        """Log the wall time of a stage (after the device has finished it)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        log.info("stage %s: %.2f s", name, now - start)
        self.stage_times[name] = now - start
        return now

    def run(self) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="pysim-ranks-") as spill_dir:
            vectors = self.pass1(Path(spill_dir))
            start = self._stage("per-model statistics", start)
            out = {key: self.products(vectors.pop(key)) for key in list(vectors)}
            start = self._stage("products of stored vectors", start)
        if self.plan.rank_slices > 1:
            out.update({key: self.recomputed_rank_products(key) for key in self.ranked})
            start = self._stage("products of recomputed ranks", start)
        if self.pairwise:
            out.update(self.pair_matrices())
            start = self._stage("pairwise families", start)
        if not self.plan.store:
            out.update(self.pass2())
            self._stage("streamed pair products", start)
        for metric_id, family in {**self.stacked, **self.ranked}.items():
            out[metric_id] = family.finish(out[metric_id])
        for metric_id, bad in self.bad.items():
            for a in bad:
                out[metric_id][a, :] = np.nan
                out[metric_id][:, a] = np.nan
        return out

    def _centre(self, a: int) -> tuple[ModelInfo, torch.Tensor, tuple | None]:
        """Centre model a's columns in float64 (self.xs[a] becomes the float32 centred
        features); its statistics, its centred Gram, and (the float64 centred features, the
        column mean) when a PAIRWISE family needs them."""
        x64 = self.xs[a].to(torch.float64, copy=True)
        mean = x64.mean(dim=0)
        x64 -= mean
        xc = x64.float()
        g = xc @ xc.T
        info = ModelInfo.from_features(self.xs[a], g.diagonal(), mean)
        self.xs[a] = xc
        return info, g, ((x64, mean) if self.pairwise else None)

    def pass1(self, spill_dir: Path) -> dict[str, list]:
        """Per model: centred Gram matrix, statistics of every family, rank vectors, PAIRWISE
        statistics (and with plan.store the whole STACKED matrices, flattened to float32)."""
        recompute = self.plan.rank_slices > 1
        vectors: dict[str, list] = {} if recompute else {key: [] for key in self.ranked}
        if self.plan.store:
            vectors.update({key: [] for key in self.stacked})
        for a in tqdm(range(self.m), desc="per-model statistics", disable=not self.progress):
            info, g, centred = self._centre(a)
            for metric_id, family in self.pairwise.items():
                self._flag(metric_id, a, family.model(a, *centred))
            del centred
            self.infos.append(info)
            if self.plan.cache_grams:
                self.grams.append(g)
            if self.plan.store:
                g = g.double()  # one conversion shared by every metric
            overflow = overflow_reason(info)
            for metric_id, metric in self.stacked.items():
                reason = overflow
                if self.plan.store:
                    centred = reason or metric.centred(a, g, info, self.plan.chunk)
                    if isinstance(centred, str):
                        reason = centred
                        centred = torch.zeros(self.n * self.n, device=self.device)
                    vectors[metric_id].append(centred.flatten().float())
                    del centred
                elif not reason:
                    reason = metric.observe(a, g, info, self.plan.chunk)
                self._flag(metric_id, a, reason)
            for k, metric_id in enumerate([] if recompute else self.ranked):
                r = self._ranks(metric_id, a, g)
                if self.plan.spill_ranks:
                    path = spill_dir / f"{k}_{a}.int32"
                    r.cpu().numpy().tofile(path)
                    r = path
                vectors[metric_id].append(r)
                del r
            del g
        return vectors

    def _flag(self, metric_id: str, a: int, reason: str | None) -> None:
        """Record that model a has no value for the metric (NaN row and column), and why."""
        if reason:
            self.bad[metric_id].add(a)
            self.reasons[(metric_id, a)] = reason

    def _ranks(self, metric_id: str, a: int, g: torch.Tensor) -> torch.Tensor:
        r = overflow_reason(self.infos[a]) or self.ranked[metric_id].ranks(g, self.infos[a],
                                                                            self.plan.chunk)
        if isinstance(r, str):
            self._flag(metric_id, a, r)
            return torch.zeros(self.n * (self.n - 1) // 2, dtype=torch.int32, device=self.device)
        return r

    def pair_matrices(self) -> dict[str, np.ndarray]:
        """The PAIRWISE families' matrices over the models each could describe."""
        out = {}
        for metric_id, family in self.pairwise.items():
            ok = [a for a in range(self.m) if a not in self.bad[metric_id]]
            mat = np.full((self.m, self.m), np.nan)
            if ok:
                mat[np.ix_(ok, ok)] = family.pairs(ok).double().cpu().numpy()
            out[metric_id] = mat
        return out

    def products(self, vectors: list) -> np.ndarray:
        """Inner products of all models' stored vectors (in memory or files), over column
        chunks, accumulated in float64."""
        first = vectors[0]
        count = len(first) if isinstance(first, torch.Tensor) else self.n * (self.n - 1) // 2
        acc = torch.zeros(self.m, self.m, dtype=torch.float64, device=self.device)
        self._accumulate(acc, vectors, count)
        return _normalised_products(acc)

    def recomputed_rank_products(self, metric_id: str) -> np.ndarray:
        """Spearman products without storing every rank vector: for each column slice, every
        model's ranks are recomputed from its Gram matrix and the slice is kept."""
        pairs = self.n * (self.n - 1) // 2
        width = -(-pairs // self.plan.rank_slices)
        acc = torch.zeros(self.m, self.m, dtype=torch.float64, device=self.device)
        part = torch.empty(self.m, width, dtype=torch.int32, device=self.device)
        slices = range(0, pairs, width)
        for lo in tqdm(slices, desc=f"{metric_id} rank slices", disable=not self.progress):
            hi = min(lo + width, pairs)
            for a in range(self.m):
                part[a, :hi - lo] = self._ranks(metric_id, a, self.gram(a))[lo:hi]
            self._accumulate(acc, list(part[:, :hi - lo]), hi - lo)
        return _normalised_products(acc)

    def _accumulate(self, acc: torch.Tensor, vectors: list, count: int) -> None:
        """acc += V V^T of the m vectors (tensors or int32 files of `count` entries), over
        column chunks converted to float64."""
        step = min(self.plan.columns, count)
        buf = torch.empty(self.m, step, dtype=torch.float64, device=self.device)
        for start in range(0, count, step):
            width = min(step, count - start)
            part = buf[:, :width]
            for a, vec in enumerate(vectors):
                if isinstance(vec, Path):
                    vec = torch.from_numpy(np.fromfile(vec, dtype=np.int32, count=width,
                                                       offset=4 * start))
                    part[a].copy_(vec)
                else:
                    part[a].copy_(vec[start:start + width])
            acc += part @ part.T

    def pass2(self) -> dict[str, np.ndarray]:
        if not self.stacked:
            return {}
        m, n = self.m, self.n
        acc = {k: torch.zeros(m, m, dtype=torch.float64, device=self.device) for k in self.stacked}
        blocks = list(row_blocks(n, self.plan.block))
        for rows in tqdm(blocks, desc="pair products", disable=not self.progress):
            width = rows.stop - rows.start
            bufs = {k: torch.empty(m, width, n, dtype=torch.float64, device=self.device)
                    for k in self.stacked}
            for a in range(m):
                g = self.gram(a, rows).double()
                for metric_id, metric in self.stacked.items():
                    if a not in self.bad[metric_id]:
                        bufs[metric_id][a] = metric.block(a, rows, g, self.infos[a])
                    else:
                        bufs[metric_id][a].zero_()
                del g
            for metric_id in list(bufs):
                flat = bufs.pop(metric_id).view(m, -1)  # freed right after its product
                acc[metric_id] += flat @ flat.T
                del flat
        return {k: _normalised_products(v) for k, v in acc.items()}


def _of_kind(families: dict[str, MetricFamily], kind: Kind) -> dict[str, MetricFamily]:
    return {key: f for key, f in families.items() if f.kind is kind}


def features_dtype(metrics: list[MetricSpec]) -> torch.dtype:
    """float64 when a PAIRWISE family is asked for (CCA-type whitening magnifies the float32
    rounding of the prepared features: 7e-3 on anisotropic features), else float32."""
    pairwise = any(getattr(s.family, "kind", None) is Kind.PAIRWISE for s in metrics)
    return torch.float64 if pairwise else torch.float32


def check_sizes(n: int, metrics: list[MetricSpec]) -> None:
    """Bad input: too few samples for a metric (unbiased HSIC needs 4, kNN needs k < n)."""
    if n < 4:
        raise InputError(f"need at least 4 samples to compare models, got {n}")
    for spec in metrics:
        problem = spec.family.size_problem(spec, n)
        if problem:
            raise InputError(f"metric {spec.id}: {problem}")


def compute_similarities(features: Mapping[str, np.ndarray | torch.Tensor],
                         metrics: list[MetricSpec], device: str | torch.device = "cpu",
                         max_memory: int | None = None, normalize: str = "l2",
                         progress: bool = False,
                         plan: MemoryPlan | None = None) -> dict[str, np.ndarray]:
    """One float64 m x m matrix per metric id (rows in the order of `features`), diagonal 1.

    Prepares every model's features (float32 on `device`, a resolved torch device, normalised
    as asked; float64 with a PAIRWISE family: `features_dtype`) and runs
    `similarities_of_prepared` on them; see there for `max_memory`.
    """
    dtype = features_dtype(metrics)
    xs = {mid: prepare_features(f, normalize, str(device), dtype) for mid, f in features.items()}
    return similarities_of_prepared(xs, metrics, max_memory, progress, plan)


def similarities_of_prepared(xs: dict[str, torch.Tensor], metrics: list[MetricSpec],
                             max_memory: int | None = None, progress: bool = False,
                             plan: MemoryPlan | None = None,
                             not_computable: dict[str, dict[str, str]] | None = None
                             ) -> dict[str, np.ndarray]:
    """The matrices of features already prepared by `prepare_features` (all on one device).

    A model with NaN/inf, constant or overflowing features, or whose kernel or RDM is
    degenerate under a metric, gets a NaN row and column and a logged warning; the reasons go
    into `not_computable` (if given) as {metric id: {model id: reason}}. A metric under which
    no model is computable (of several) is bad input.
    `max_memory` (bytes) caps the whole process's resident memory on the CPU, GPU memory on
    CUDA (see `working_budget`); `plan` overrides the engine's block sizes. `xs` is consumed.
    """
    if not xs:
        raise InputError("no models given")
    ids = list(xs)
    sizes = {x.shape[0] for x in xs.values()}
    if len(sizes) != 1:
        raise InputError(f"models have different numbers of samples: {sorted(sizes)}")
    n = sizes.pop()
    check_sizes(n, metrics)
    budget = working_budget(str(next(iter(xs.values())).device), max_memory)
    valid, reasons = [], {}
    for mid in ids:
        reasons[mid] = invalid_reason(xs[mid])
        if reasons[mid]:
            log.warning("model %s: %s; its row and column are NaN", mid, reasons[mid])
        else:
            valid.append(mid)
    out = {s.id: np.full((len(ids), len(ids)), np.nan) for s in metrics}
    if not valid:
        if len(ids) > 1:
            raise InputError(f"no model has usable features (e.g. model {ids[0]}: "
                             f"{reasons[ids[0]]})")
        return out
    if not_computable is not None:
        for spec in metrics:
            not_computable[spec.id] = {mid: r for mid, r in reasons.items() if r}
    engine = _Engine([xs[mid] for mid in valid], metrics, budget, progress, plan)
    xs.clear()
    sub = engine.run()
    for metric_id, matrix in sub.items():  # a zero (or overflowing) centred matrix
        for a in np.flatnonzero(np.isnan(np.diag(matrix))):
            engine.reasons.setdefault((metric_id, int(a)), "its similarity to itself is "
                                      "undefined (degenerate kernel or RDM)")
    for (metric_id, a), reason in sorted(engine.reasons.items()):
        log.warning("model %s: %s: %s; its row and column are NaN", valid[a], metric_id, reason)
        if not_computable is not None:
            not_computable[metric_id][valid[a]] = reason
    pos = np.array([ids.index(mid) for mid in valid])
    for metric_id, matrix in sub.items():
        out[metric_id][np.ix_(pos, pos)] = matrix
        if len(ids) > 1 and np.isnan(np.diag(out[metric_id])).all():
            a, reason = min((a, r) for (k, a), r in engine.reasons.items() if k == metric_id)
            raise InputError(f"metric {metric_id}: no model has a defined similarity (e.g. "
                             f"model {valid[a]}: {reason})")
    return out
