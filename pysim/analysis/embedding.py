"""A 2-D map of the models per dataset (the paper's Section 4.3): t-SNE on the distance 1 - S.

scikit-learn's TSNE with metric="precomputed", init="random", perplexity 5 and random_state 42.
t-SNE needs perplexity < number of points, so with fewer than 6 models the perplexity is clipped
to m - 1 (a warning says so).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PERPLEXITY = 5.0
TSNE_SEED = 42
COLUMNS = ["dataset", "model_id", "x", "y"]


def effective_perplexity(m: int, perplexity: float = PERPLEXITY) -> float:
    """The perplexity used for m models: clipped below m (t-SNE's requirement)."""
    return float(min(perplexity, m - 1))


def similarity_distance(similarity: np.ndarray) -> np.ndarray:
    """1 - S made a valid distance: symmetric, zero diagonal, non-negative, NaN -> largest."""
    sym = (similarity + similarity.T) / 2
    dist = 1.0 - sym
    finite = dist[np.isfinite(dist)]
    dist = np.nan_to_num(dist, nan=finite.max() if finite.size else 1.0)
    dist = np.maximum(dist, 0.0)
    np.fill_diagonal(dist, 0.0)
    return dist


def embed_models(similarity: np.ndarray, perplexity: float = PERPLEXITY,
                 seed: int = TSNE_SEED) -> np.ndarray:
    """m x 2 t-SNE coordinates of the models of one similarity matrix."""
    from sklearn.manifold import TSNE  # slow import: only when embedding

    m = similarity.shape[0]
    model = TSNE(n_components=2, metric="precomputed", init="random",
                 perplexity=effective_perplexity(m, perplexity), random_state=seed,
                 method="exact")
    return model.fit_transform(similarity_distance(similarity))


def embedding_table(metric_id: str, datasets: Sequence[str], stack: np.ndarray,
                    model_ids: Sequence[str], perplexity: float = PERPLEXITY) -> pd.DataFrame:
    """Rows (dataset, model_id, x, y) of every dataset's map for one metric (D x m x m stack)."""
    m = len(model_ids)
    if m < 3:
        log.warning("metric '%s': %d models, too few for a t-SNE map", metric_id, m)
        return pd.DataFrame(columns=COLUMNS)
    if effective_perplexity(m, perplexity) < perplexity:
        log.warning("metric '%s': t-SNE perplexity clipped from %g to %g (%d models)",
                    metric_id, perplexity, effective_perplexity(m, perplexity), m)
    frames = []
    for k, dataset in enumerate(datasets):
        xy = embed_models(stack[k], perplexity)
        frames.append(pd.DataFrame({"dataset": dataset, "model_id": list(model_ids),
                                    "x": xy[:, 0], "y": xy[:, 1]}))
    return pd.concat(frames, ignore_index=True)[COLUMNS]
