"""Consistency summarised by dataset-domain pair (e.g. Natural (single-domain) x Structured):
which kinds of datasets agree on the similarity structure and which do not."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from pysim.config import dataset_key

UNKNOWN = "unknown"
COLUMNS = ["metric", "category", "group_1", "group_2", "domain_1", "domain_2",
           "n_dataset_pairs", "pearson_r_mean", "pearson_r_std", "spearman_r_mean"]


def dataset_field(info: Mapping[str, Mapping[str, str]] | None, dataset: str, field: str,
                  default: str) -> str:
    """A field of the info table for a dataset given by id or output key (else the default)."""
    info = info or {}
    entry = info.get(dataset)
    if entry is None:
        entry = next((v for k, v in info.items() if dataset_key(k) == dataset_key(dataset)), {})
    return entry.get(field) or default


def domain_map(datasets: Iterable[str], info: Mapping[str, Mapping[str, str]] | None
               ) -> dict[str, str]:
    """Dataset id -> domain (`unknown` where the info table has none)."""
    return {ds: dataset_field(info, ds, "domain", UNKNOWN) for ds in datasets}


def domain_summary(table: pd.DataFrame, domains: Mapping[str, str]) -> pd.DataFrame:
    """Mean/std of r over the dataset pairs of each unordered domain pair, per metric and group."""
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame = table.copy()
    d1 = frame["dataset_1"].map(domains).fillna(UNKNOWN)
    d2 = frame["dataset_2"].map(domains).fillna(UNKNOWN)
    frame["domain_1"] = [min(a, b) for a, b in zip(d1, d2, strict=True)]
    frame["domain_2"] = [max(a, b) for a, b in zip(d1, d2, strict=True)]
    keys = ["metric", "category", "group_1", "group_2", "domain_1", "domain_2"]
    out = frame.groupby(keys, sort=True).agg(
        n_dataset_pairs=("pearson_r", "size"), pearson_r_mean=("pearson_r", "mean"),
        pearson_r_std=("pearson_r", lambda r: r.std(ddof=0)),
        spearman_r_mean=("spearman_r", "mean")).reset_index()
    return out[COLUMNS]
