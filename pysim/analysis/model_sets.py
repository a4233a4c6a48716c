"""Consistency over custom model-set pairs (the study's "specific model set pairs" analysis).

A model set is built by ordered rules, each adding (`add`) or removing (`remove`) the models
whose category column has a value, or the named model ids; rules apply in order, starting from
the empty set, so `SSL minus MAE` is `add objective Self-Supervised` then `remove` the MAE ids.
A set pair (A, B) holds the unordered model pairs {a, b} with a in A, b in B and a != b: the
pairs within A when A == B, every within-A pair plus the A x (B - A) pairs when A is a subset
of B, the cross pairs when A and B are disjoint. For every metric and dataset pair the
consistency is the Pearson and Spearman r of the two datasets' similarities over those model
pairs; the summary gives, per set pair and correlation, the distribution of r over the
dataset pairs (count, mean, sample std, min, quartiles, max).

Nothing here reads files: the rules arrive as parsed JSON/YAML data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pysim.analysis import statistics as st
from pysim.config import CATEGORY_COLUMNS
from pysim.errors import InputError

RULE_KINDS = ("add", "remove")
MODEL_KEY = "model"
TOP_KEYS = ("sets", "pairs")
COLUMNS = ["metric", "set_1", "set_2", "dataset_1", "dataset_2", "n_models_1", "n_models_2",
           "n_pairs", "pearson_r", "spearman_r"]
SUMMARY_COLUMNS = ["metric", "set_1", "set_2", "correlation", "n_models_1", "n_models_2",
                   "n_pairs", "n_dataset_pairs", "mean", "std", "min", "q25", "median", "q75",
                   "max"]
CORRELATIONS = {"pearson": "pearson_r", "spearman": "spearman_r"}


@dataclass(frozen=True)
class ModelSets:
    """Resolved model sets (members in model-table order) and the set pairs to compare."""

    sets: dict[str, tuple[str, ...]]
    pairs: tuple[tuple[str, str], ...]


def parse_model_sets(spec: Any, categories: Mapping[str, Mapping[str, str]],
                     where: str = "model sets") -> ModelSets:
    """Resolve a model-set spec ({"sets": {name: [rule, ...]}, "pairs": [[a, b], ...]})
    against the model table (model id -> category column -> value, in table order).

    Bad input (unknown key, category, value or model id, an empty set, a pair of unknown sets
    or with fewer than 2 model pairs) raises InputError naming it.
    """
    if not isinstance(spec, dict):
        raise InputError(f"{where}: must be a mapping with keys 'sets' and 'pairs'")
    extra = [k for k in spec if k not in TOP_KEYS]
    if extra or any(k not in spec for k in TOP_KEYS):
        raise InputError(f"{where}: must have exactly the keys 'sets' and 'pairs'"
                         + (f" (unknown: {', '.join(map(str, extra))})" if extra else ""))
    raw_sets = spec["sets"]
    if not isinstance(raw_sets, dict) or not raw_sets:
        raise InputError(f"{where}: 'sets' must be a non-empty mapping of set name to rules")
    sets = {str(name): _resolve(f"{where}: set '{name}'", rules, categories)
            for name, rules in raw_sets.items()}
    pairs = _pairs(where, spec["pairs"], sets)
    return ModelSets(sets, pairs)


def _resolve(where: str, rules: Any, categories: Mapping[str, Mapping[str, str]]
             ) -> tuple[str, ...]:
    """Members of one set: its rules applied in order to the empty set."""
    if not isinstance(rules, list) or not rules:
        raise InputError(f"{where}: must be a non-empty list of rules")
    members: set[str] = set()
    for k, rule in enumerate(rules, start=1):
        kind, matched = _rule(f"{where}, rule {k}", rule, categories)
        members = members | matched if kind == "add" else members - matched
    if not members:
        raise InputError(f"{where}: is empty (no model left after its rules)")
    return tuple(m for m in categories if m in members)


def _rule(where: str, rule: Any, categories: Mapping[str, Mapping[str, str]]
          ) -> tuple[str, set[str]]:
    """(add|remove, the models one rule names)."""
    if not isinstance(rule, dict) or len(rule) != 1 or next(iter(rule)) not in RULE_KINDS:
        raise InputError(f"{where}: must be {{add: {{<column>: <value>}}}} or "
                         f"{{remove: {{<column>: <value>}}}}, got {rule!r}")
    kind, target = next(iter(rule.items()))
    if not isinstance(target, dict) or len(target) != 1:
        raise InputError(f"{where}: '{kind}' must map one category column (or 'model') to a "
                         f"value or a list of values, got {target!r}")
    column, values = next(iter(target.items()))
    values = values if isinstance(values, list) else [values]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise InputError(f"{where}: values of '{column}' must be non-empty strings, "
                         f"got {target[column]!r}")
    if column == MODEL_KEY:
        unknown = [v for v in values if v not in categories]
        if unknown:
            raise InputError(f"{where}: unknown model id '{unknown[0]}' (not in the model table)")
        return kind, set(values)
    if column not in CATEGORY_COLUMNS:
        raise InputError(f"{where}: unknown category '{column}' (known: "
                         f"{', '.join(CATEGORY_COLUMNS)}, or '{MODEL_KEY}' for model ids)")
    matched = set()
    for value in values:
        found = {m for m, cats in categories.items() if cats.get(column) == value}
        if not found:
            raise InputError(f"{where}: no model has {column} '{value}'")
        matched |= found
    return kind, matched


def _pairs(where: str, raw: Any, sets: Mapping[str, Sequence[str]]) -> tuple[tuple[str, str], ...]:
    """The set pairs: each two known set names with at least 2 model pairs, none twice."""
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: 'pairs' must be a non-empty list of [set, set]")
    pairs: list[tuple[str, str]] = []
    for pair in raw:
        if not isinstance(pair, list) or len(pair) != 2:
            raise InputError(f"{where}: each pair must be a list of two set names, got {pair!r}")
        a, b = (str(x) for x in pair)
        unknown = [x for x in (a, b) if x not in sets]
        if unknown:
            raise InputError(f"{where}: pair [{a}, {b}] names an unknown set '{unknown[0]}'")
        if {a, b} in [{x, y} for x, y in pairs]:
            raise InputError(f"{where}: pair [{a}, {b}] is listed twice")
        if len(model_pairs(sets[a], sets[b])) < 2:
            raise InputError(f"{where}: pair [{a}, {b}] has fewer than 2 model pairs")
        pairs.append((a, b))
    return tuple(pairs)


def model_pairs(set_a: Sequence[str], set_b: Sequence[str]) -> set[frozenset[str]]:
    """The unordered model pairs {a, b}, a in A, b in B, a != b."""
    return {frozenset((a, b)) for a in set_a for b in set_b if a != b}


def pair_mask(model_ids: Sequence[str], set_a: Sequence[str], set_b: Sequence[str]
              ) -> np.ndarray:
    """Which upper-triangle (k=1) pairs of model_ids belong to the set pair (A, B)."""
    rows, cols = np.triu_indices(len(model_ids), 1)
    in_a = np.isin(np.asarray(model_ids, dtype=object), list(set_a))
    in_b = np.isin(np.asarray(model_ids, dtype=object), list(set_b))
    return (in_a[rows] & in_b[cols]) | (in_b[rows] & in_a[cols])


def set_pair_rows(metric_id: str, datasets: Sequence[str], stack: np.ndarray,
                  model_ids: Sequence[str], model_sets: ModelSets) -> pd.DataFrame:
    """One metric's rows: every set pair x every dataset pair (i < j) with Pearson and
    Spearman r over the set pair's model pairs present in `model_ids` (stack: D x m x m)."""
    d, m = stack.shape[0], stack.shape[1]
    if d < 2:
        return pd.DataFrame(columns=COLUMNS)
    rows, cols = np.triu_indices(m, 1)
    values = stack[:, rows, cols]
    upper = np.triu_indices(d, 1)
    frames = []
    for a, b in model_sets.pairs:
        present = [[x for x in model_sets.sets[s] if x in model_ids] for s in (a, b)]
        mask = pair_mask(model_ids, *present)
        block = values[:, mask]
        nan = np.full((d, d), np.nan)
        pearson = st.pearson_rows(block) if mask.sum() >= 2 else nan
        spearman = st.spearman_rows(block) if mask.sum() >= 2 else nan
        frames.append(pd.DataFrame({
            "metric": metric_id, "set_1": a, "set_2": b,
            "dataset_1": [datasets[i] for i in upper[0]],
            "dataset_2": [datasets[j] for j in upper[1]],
            "n_models_1": len(present[0]), "n_models_2": len(present[1]),
            "n_pairs": int(mask.sum()), "pearson_r": pearson[upper],
            "spearman_r": spearman[upper]}))
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per (metric, set pair, correlation): the distribution of r over the dataset pairs
    (pandas `describe`: finite values only, std with ddof 1, linear quantiles)."""
    out = []
    keys = ["metric", "set_1", "set_2", "n_models_1", "n_models_2", "n_pairs"]
    for key, group in table.groupby(keys, sort=False):
        for name, column in CORRELATIONS.items():
            r = group[column].to_numpy(dtype=float)
            r = r[np.isfinite(r)]
            q = np.quantile(r, [0.25, 0.5, 0.75]) if len(r) else [np.nan] * 3
            out.append(dict(zip(keys, key, strict=True), correlation=name,
                            n_dataset_pairs=len(r),
                            mean=r.mean() if len(r) else np.nan,
                            std=r.std(ddof=1) if len(r) > 1 else np.nan,
                            min=r.min() if len(r) else np.nan, q25=q[0], median=q[1], q75=q[2],
                            max=r.max() if len(r) else np.nan))
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)
