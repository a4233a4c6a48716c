"""Layer-wise analyses (DESIGN §5): per model pair the layer x layer block of each metric, the
best-matching layer of one model for each layer of another, and how well the layer x layer
structure agrees between datasets.

A representation id is `<model_id>` (primary module) or `<model_id>@<module>`; a model's
layers are ordered as its table lists them (a pattern's matches in natural order, blocks.2
before blocks.10), and relative depth is position / (#layers - 1).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pysim.config import LAYER_SEP, ModelEntry, module_matches
from pysim.io import Similarities

MATRIX_COLUMNS = ["dataset", "metric", "model_1", "module_1", "depth_1", "model_2", "module_2",
                  "depth_2", "value"]
CORRESPONDENCE_COLUMNS = ["dataset", "metric", "model_1", "module_1", "model_2",
                          "best_module_2", "value"]
CONSISTENCY_COLUMNS = ["metric", "model_1", "model_2", "dataset_1", "dataset_2", "n_cells",
                       "pearson_r", "same_best"]


@dataclass(frozen=True)
class Layers:
    """One model's representations in depth order: ids, module names, relative depths."""

    model_id: str
    ids: list[str]
    modules: list[str]

    @property
    def depths(self) -> list[float]:
        """Relative depth of each layer (0 first, 1 last; a single layer is 1)."""
        n = len(self.ids)
        return [1.0] if n == 1 else [k / (n - 1) for k in range(n)]


def primary_only(sims: Similarities) -> Similarities:
    """The rows of primary representations (ids without '@') of a similarity file."""
    keep = [k for k, m in enumerate(sims.model_ids) if LAYER_SEP not in m]
    return Similarities(sims.dataset, [sims.model_ids[k] for k in keep],
                        {k: v[np.ix_(keep, keep)] for k, v in sims.matrices.items()},
                        sims.metric_attrs)


def has_layers(sims: Similarities) -> bool:
    """True when the file holds any `<model_id>@<module>` row."""
    return any(LAYER_SEP in m for m in sims.model_ids)


def _natural(name: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                 for p in re.split(r"(\d+)", name) if p)


def _order_key(entry: ModelEntry | None, module: str | None) -> tuple:
    """Sort key of a module of an entry: its list position (pattern: first match), then name."""
    if module is None:
        return (-1,)
    listed = entry.modules if entry else ()
    pos = next((k for k, p in enumerate(listed) if module_matches(module, p)), len(listed))
    return (pos, _natural(module))


def group_layers(ids: Sequence[str], models: Mapping[str, ModelEntry],
                 module_names: Mapping[str, str] | None = None) -> dict[str, Layers]:
    """Every model of `ids` with its representations in depth order (primary first). A
    primary is labelled with its extracted module (`module_names`, from the similarity
    files), else with its table entry (which may be a pattern)."""
    found: dict[str, list[tuple[str | None, str]]] = {}
    for rep in ids:
        base, sep, module = rep.partition(LAYER_SEP)
        found.setdefault(base, []).append((module if sep else None, rep))
    out = {}
    for base, reps in found.items():
        entry = models.get(base)
        reps = sorted(reps, key=lambda r: _order_key(entry, r[0]))
        primary = (module_names or {}).get(base) or (entry.modules[0] if entry else base)
        out[base] = Layers(base, [r for _, r in reps], [m or primary for m, _ in reps])
    return out


def model_pairs(groups: Mapping[str, Layers]) -> list[tuple[Layers, Layers]]:
    """Unordered pairs of distinct models where at least one has several layers."""
    return [(a, b) for a, b in itertools.combinations(groups.values(), 2)
            if len(a.ids) > 1 or len(b.ids) > 1]


def block(sims: Similarities, metric: str, a: Layers, b: Layers) -> np.ndarray:
    """The layer x layer block (rows: layers of a, columns: layers of b) of one metric."""
    pos = {m: k for k, m in enumerate(sims.model_ids)}
    return sims.matrices[metric][np.ix_([pos[i] for i in a.ids], [pos[i] for i in b.ids])]


def matrix_rows(sims: Similarities, pairs: Sequence[tuple[Layers, Layers]]) -> pd.DataFrame:
    """layer_matrix.csv rows of one dataset: every cell of every pair's block, every metric."""
    rows = []
    for metric in sims.matrices:
        for a, b in pairs:
            values = block(sims, metric, a, b)
            for (i, mi, di), (j, mj, dj) in itertools.product(
                    zip(range(len(a.ids)), a.modules, a.depths, strict=True),
                    zip(range(len(b.ids)), b.modules, b.depths, strict=True)):
                rows.append((sims.dataset, metric, a.model_id, mi, di, b.model_id, mj, dj,
                             float(values[i, j])))
    return pd.DataFrame(rows, columns=MATRIX_COLUMNS)


def _best(values: np.ndarray) -> np.ndarray:
    """Column of the largest finite value of each row (-1 where a row has none)."""
    finite = np.where(np.isfinite(values), values, -np.inf)
    best = finite.argmax(axis=1)
    return np.where(np.isfinite(values).any(axis=1), best, -1)


def correspondence_rows(sims: Similarities, pairs: Sequence[tuple[Layers, Layers]]
                        ) -> pd.DataFrame:
    """layer_correspondence.csv rows: for each layer of one model the most similar layer of
    the other (both directions of every pair)."""
    rows = []
    for metric in sims.matrices:
        for a, b in pairs:
            values = block(sims, metric, a, b)
            for x, y, vals in ((a, b, values), (b, a, values.T)):
                for i, j in enumerate(_best(vals)):
                    if j >= 0:
                        rows.append((sims.dataset, metric, x.model_id, x.modules[i],
                                     y.model_id, y.modules[j], float(vals[i, j])))
    return pd.DataFrame(rows, columns=CORRESPONDENCE_COLUMNS)


def consistency_rows(files: Sequence[Similarities], pairs: Sequence[tuple[Layers, Layers]]
                     ) -> pd.DataFrame:
    """layer_consistency.csv rows: per metric, model pair and dataset pair, the Pearson r of
    the two layer x layer blocks and the share of layers of model_1 with the same best layer
    of model_2."""
    rows = []
    files = sorted(files, key=lambda s: s.dataset)
    metrics = [k for k in files[0].matrices if all(k in s.matrices for s in files)] \
        if files else []
    for metric, (a, b) in itertools.product(metrics, pairs):
        blocks = [block(s, metric, a, b) for s in files]
        for (s1, x), (s2, y) in itertools.combinations(zip(files, blocks, strict=True), 2):
            ok = np.isfinite(x) & np.isfinite(y)
            r = np.nan
            if ok.sum() >= 3 and x[ok].std() > 0 and y[ok].std() > 0:
                r = float(np.corrcoef(x[ok], y[ok])[0, 1])
            same = float(np.mean(_best(x) == _best(y)))
            rows.append((metric, a.model_id, b.model_id, s1.dataset, s2.dataset,
                         int(ok.sum()), r, same))
    return pd.DataFrame(rows, columns=CONSISTENCY_COLUMNS)


def layer_outputs(files: Sequence[Similarities], models: Mapping[str, ModelEntry]
                  ) -> dict[str, pd.DataFrame]:
    """The three layer tables from every dataset's similarity file (empty without layers)."""
    files = [s for s in files if has_layers(s)]
    if not files:
        return {}
    common = [m for m in files[0].model_ids if all(m in s.model_ids for s in files)]
    names = {m: name for s in files for m, name in s.module_names.items()}
    pairs = model_pairs(group_layers(common, models, names))
    matrices = [matrix_rows(s, pairs) for s in files]
    corr = [correspondence_rows(s, pairs) for s in files]
    return {"layer_matrix.csv": _concat(matrices, MATRIX_COLUMNS),
            "layer_correspondence.csv": _concat(corr, CORRESPONDENCE_COLUMNS),
            "layer_consistency.csv": consistency_rows(files, pairs)}


def _concat(frames: Sequence[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    nonempty = [f for f in frames if not f.empty]
    return pd.concat(nonempty, ignore_index=True) if nonempty else pd.DataFrame(columns=columns)
