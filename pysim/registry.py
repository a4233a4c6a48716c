"""The extension points, one registry each: adding a model source, a loader or a metric is one
entry here. Entries are "module:attribute" strings resolved on first use, so that importing
this module (and pysim.config, whose validation lists derive from it) stays free of torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# model-table `source` -> resolver (entry, weights file or None) -> pysim.models.Resolution
MODEL_SOURCES: dict[str, str] = {
    "timm": "pysim.models.resolve:resolve_timm",
    "torchvision": "pysim.models.resolve:resolve_torchvision",
    "custom": "pysim.models.resolve:resolve_custom",
    "ssl": "pysim.models.resolve:resolve_ssl",
    "open_clip": "pysim.models.resolve:resolve_open_clip",
    "hub": "pysim.models.resolve:resolve_hub",
}

# Resolution.loader (the build code a resolver chose) -> builder (entry, resolution) -> Built
MODEL_LOADERS: dict[str, str] = {
    "timm": "pysim.models.loaders:build_timm",
    "torchvision": "pysim.models.loaders:build_torchvision",
    "open_clip": "pysim.models.loaders:build_open_clip",
    "resnet50": "pysim.models.loaders:build_resnet50",
    "hub": "pysim.models.loaders:build_hub",
    "ssl_vit": "pysim.models.ssl_models:build_ssl_vit",
    "ssl_hub": "pysim.models.ssl_models:build_dinov2",
    "transformers": "pysim.models.loaders:build_align",
    "dreamsim": "pysim.models.dreamsim:build_dreamsim",
}

# metric-list `sim_method` -> metric family (pysim.similarity.base.MetricFamily): its spec
# parsing, ids and parameters, and its computation of one kind for the engine
METRICS: dict[str, str] = {
    "cka": "pysim.similarity.cka:CKAMetric",
    "rsa": "pysim.similarity.rsa:RSAMetric",
    "mutual_knn": "pysim.similarity.knn:MutualKNNMetric",
    "cca": "pysim.similarity.cca:CCAMetric",
    "shape": "pysim.similarity.shape:ShapeMetric",
    "linear_regression": "pysim.similarity.regression:LinearRegressionMetric",
    "distance_correlation": "pysim.similarity.dcor:DistanceCorrelationMetric",
    "neighbourhood": "pysim.similarity.neighbours:NeighbourhoodMetric",
    "cknna": "pysim.similarity.cknna:CKNNAMetric",
}


def load(registry: dict[str, str], name: str) -> Any:
    """The object registered under `name` (imported now); KeyError for an unknown name."""
    module, _, attr = registry[name].partition(":")
    return getattr(import_module(module), attr)
