"""Anchor models (the paper's Appendix F): how consistent are one model's similarities to the
other models across datasets, split by the category of the other model?

For an anchor a, a category column and one of its groups g (the other models with label g, at
least MIN_OTHERS of them: a correlation needs 2), the consistency of a dataset pair (A, B) is
the Pearson (and Spearman) r between S_A[a, others] and S_B[a, others]. Two groups of one
category are compared by a Wilcoxon rank-sum test (scipy.stats.ranksums, two-sided, normal
approximation) of their Pearson r over the dataset pairs where both are defined.

Correction as the study's Appendix F notebook does it: the p-values of one category, pooled
over every anchor and every family metric, form one family, corrected by Bonferroni (p times
the family size, capped at 1; a test without a p-value still counts). The family metrics are
every metric by default; the notebook's are its two CKA metrics (tests of the other metrics
keep their p-value, with no family size and no adjusted p-value). pysim's earlier variant,
Benjamini-Hochberg within one metric and anchor, stays as the column `p_bh_pysim`.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, ranksums

from pysim.analysis import statistics as st

MIN_OTHERS = 2
COLUMNS = ["metric", "anchor_model", "category", "group", "dataset_1", "dataset_2",
           "n_models", "pearson_r", "spearman_r"]
TEST_COLUMNS = ["metric", "anchor_model", "category", "group_1", "group_2", "n_dataset_pairs",
                "median_r_1", "median_r_2", "statistic", "p_value", "family_size", "p_adjusted",
                "p_bh_pysim"]


def anchor_rows(metric_id: str, datasets: Sequence[str], stack: np.ndarray,
                model_ids: Sequence[str], labels: Mapping[str, Sequence[str | None]],
                anchors: Sequence[str]) -> pd.DataFrame:
    """Consistency of every anchor's row per category group and dataset pair (D x m x m)."""
    upper = np.triu_indices(len(datasets), 1)
    frames = []
    for anchor in anchors:
        a = list(model_ids).index(anchor)
        for category, labs in labels.items():
            for group in sorted({lab for lab in labs if lab is not None}):
                others = [j for j, lab in enumerate(labs) if lab == group and j != a]
                if len(others) < MIN_OTHERS or len(datasets) < 2:
                    continue
                row = stack[:, a, others]
                frames.append(pd.DataFrame({
                    "metric": metric_id, "anchor_model": anchor, "category": category,
                    "group": group, "dataset_1": [datasets[i] for i in upper[0]],
                    "dataset_2": [datasets[j] for j in upper[1]], "n_models": len(others),
                    "pearson_r": st.pearson_rows(row)[upper],
                    "spearman_r": st.spearman_rows(row)[upper]}))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def group_test(x: pd.Series, y: pd.Series) -> dict[str, float]:
    """Rank-sum test of two groups' r, on the dataset pairs where both are finite."""
    both = pd.concat([x, y], axis=1, keys=["x", "y"]).dropna()
    if len(both) == 0:
        return {"n_dataset_pairs": 0, "median_r_1": np.nan, "median_r_2": np.nan,
                "statistic": np.nan, "p_value": np.nan}
    result = ranksums(both["x"].to_numpy(), both["y"].to_numpy())
    return {"n_dataset_pairs": len(both), "median_r_1": float(both["x"].median()),
            "median_r_2": float(both["y"].median()), "statistic": float(result.statistic),
            "p_value": float(result.pvalue)}


def anchor_tests(rows: pd.DataFrame,
                 family_metrics: Collection[str] | None = None) -> pd.DataFrame:
    """Rank-sum tests between every two groups of a category, per metric and anchor;
    Bonferroni over each category's tests (every anchor, and every metric of `family_metrics`,
    default all), BH per metric and anchor as pysim's variant."""
    out = []
    rows = rows[rows["category"] != "all"]
    for (metric, anchor), sel in rows.groupby(["metric", "anchor_model"], sort=True):
        family = []
        for category, cat in sel.groupby("category", sort=False):
            by_group = {g: s.set_index(["dataset_1", "dataset_2"])["pearson_r"]
                        for g, s in cat.groupby("group", sort=True)}
            for g1, g2 in itertools.combinations(sorted(by_group), 2):
                family.append({"metric": metric, "anchor_model": anchor, "category": category,
                               "group_1": g1, "group_2": g2,
                               **group_test(by_group[g1], by_group[g2])})
        out += with_adjusted(family)
    table = pd.DataFrame(out, columns=[c for c in TEST_COLUMNS
                                       if c not in ("family_size", "p_adjusted")])
    return with_bonferroni(table, family_metrics)[TEST_COLUMNS]


def with_bonferroni(tests: pd.DataFrame,
                    family_metrics: Collection[str] | None = None) -> pd.DataFrame:
    """The tests with `family_size` (tests of the same category whose metric is a family
    metric; default every metric) and Bonferroni `p_adjusted`; both are empty (NA) for a test
    of a metric outside the family."""
    member = (tests["metric"].isin(list(family_metrics)) if family_metrics is not None
              else pd.Series(True, index=tests.index))
    size = member.groupby(tests["category"]).transform("sum") if len(tests) else member
    family_size = pd.Series(size, index=tests.index, dtype="Int64").where(member, pd.NA)
    p = tests["p_value"].to_numpy(dtype=float)
    adjusted = np.where(member, np.minimum(p * size.to_numpy(dtype=float), 1.0), np.nan)
    return tests.assign(family_size=family_size, p_adjusted=adjusted)


def with_adjusted(family: list[dict]) -> list[dict]:
    """The family's rows with Benjamini-Hochberg adjusted p-values in `p_bh_pysim` (NaN p
    stays NaN)."""
    p = np.array([row["p_value"] for row in family], dtype=float)
    adjusted = np.full_like(p, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = false_discovery_control(p[finite], method="bh")
    return [{**row, "p_bh_pysim": float(q)} for row, q in zip(family, adjusted, strict=True)]
