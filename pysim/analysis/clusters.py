"""Model clusters per dataset and metric (spectral clustering of |S|) and their agreement (ARI)
between datasets: do the same models group together on every dataset?"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd


def cluster_models(similarity: np.ndarray, num_clusters: int, seed: int) -> np.ndarray:
    """Spectral clustering labels with |S| (diagonal 1, non-finite 0) as precomputed affinity."""
    from sklearn.cluster import SpectralClustering  # slow import: only when clustering

    m = similarity.shape[0]
    k = max(1, min(num_clusters, m - 1))
    if k == 1:
        return np.zeros(m, dtype=int)
    affinity = np.abs(np.nan_to_num(similarity, nan=0.0, posinf=0.0, neginf=0.0))
    affinity = (affinity + affinity.T) / 2
    np.fill_diagonal(affinity, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "graph is not fully connected"
        model = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed,
                                   assign_labels="kmeans", n_init=10)
        return model.fit_predict(affinity)


def cluster_table(metric_id: str, datasets: Sequence[str], stack: np.ndarray,
                  model_ids: Sequence[str], num_clusters: int, seed: int) -> pd.DataFrame:
    """Rows (dataset, metric, model_id, cluster) for every dataset of one metric."""
    frames = [pd.DataFrame({"dataset": ds, "metric": metric_id, "model_id": list(model_ids),
                            "cluster": cluster_models(stack[k], num_clusters, seed)})
              for k, ds in enumerate(datasets)]
    return pd.concat(frames, ignore_index=True)


def cluster_agreement(clusters: pd.DataFrame) -> pd.DataFrame:
    """Adjusted Rand index between the clusterings of every dataset pair, per metric."""
    from sklearn.metrics import adjusted_rand_score

    out = []
    for metric_id, sel in clusters.groupby("metric", sort=True):
        by_ds = {ds: g.set_index("model_id")["cluster"] for ds, g in sel.groupby("dataset")}
        names = sorted(by_ds)
        for a, ds1 in enumerate(names):
            for ds2 in names[a + 1:]:
                common = by_ds[ds1].index.intersection(by_ds[ds2].index)
                out.append({"metric": metric_id, "dataset_1": ds1, "dataset_2": ds2,
                            "n_models": len(common),
                            "ari": adjusted_rand_score(by_ds[ds1][common], by_ds[ds2][common])})
    return pd.DataFrame(out, columns=["metric", "dataset_1", "dataset_2", "n_models", "ari"])
