"""The pysim-similarity stage: every metric for every model pair of one dataset -> one file."""

from __future__ import annotations

import os
from collections.abc import Sequence

from pysim.config import load_metrics
from pysim.errors import InputError
from pysim.io import Similarities, write_similarities
from pysim.similarity.calibrate import calibration_matrices
from pysim.similarity.engine import features_dtype, similarities_of_prepared
from pysim.similarity.files import read_dataset_features
from pysim.similarity.memory import current_rss, return_freed_memory


def run_similarity(feature_paths: Sequence[str | os.PathLike], metrics_path: str | os.PathLike,
                   out: str | os.PathLike, subset_path: str | os.PathLike | None = None,
                   normalize: str = "l2", device: str = "cpu", max_memory: int | None = None,
                   progress: bool = True, permutations: int = 0, bootstrap: int = 0,
                   seed: int = 0, calibration_out: str | os.PathLike | None = None
                   ) -> Similarities:
    """Compute the m x m matrix of every metric and write the similarity file atomically.

    `device` is a resolved torch device string. `max_memory` (bytes) bounds GPU memory on
    CUDA; on the CPU it bounds what this stage adds to the resident memory it starts with
    (features and working buffers, beyond the Python/torch runtime): the start-up RSS is
    accounted here, once, turning it into the whole-process cap the engine works with.
    With `permutations` or `bootstrap` (engine passes, seeded by `seed`), the calibration
    matrices (pysim.similarity.calibrate) go to `calibration_out`.
    """
    if (permutations or bootstrap) and calibration_out is None:
        raise InputError("--permutations/--bootstrap need --calibration-out")
    return_freed_memory()
    cap = max_memory
    if max_memory is not None and not device.startswith("cuda"):
        cap = current_rss() + max_memory
    metrics = load_metrics(metrics_path)
    data = read_dataset_features(feature_paths, subset_path, normalize, device,
                                 features_dtype(metrics))
    model_ids = list(data.features)
    n_samples = next(iter(data.features.values())).shape[0]
    features = dict(data.features)  # the engine consumes its dict, not the tensors
    not_computable: dict[str, dict[str, str]] = {}
    matrices = similarities_of_prepared(data.features, metrics, cap, progress,
                                        not_computable=not_computable)
    metric_attrs = {s.id: {**s.params(), "n_samples": n_samples} for s in metrics}
    for metric_id, reasons in not_computable.items():
        if reasons:  # the models whose row and column are NaN, and why (DESIGN §5)
            metric_attrs[metric_id]["not_computable"] = reasons
    sims = Similarities(dataset=data.dataset, model_ids=model_ids, matrices=matrices,
                        metric_attrs=metric_attrs, module_names=data.module_names)
    attrs = {"normalize": normalize, "n_samples": n_samples, "n_total": data.n_total}
    if permutations or bootstrap:
        extra = calibration_matrices(features, metrics, matrices, permutations, bootstrap,
                                     seed, device=device, max_memory=cap, normalize="none")
        write_similarities(calibration_out, Similarities(
            data.dataset, model_ids, extra, {k: metric_attrs[k.rpartition("__")[0]]
                                             for k in extra}, data.module_names),
            {**attrs, "permutations": permutations, "bootstrap": bootstrap, "seed": seed})
    del features
    write_similarities(out, sims, attrs)
    return sims
