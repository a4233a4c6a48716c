"""One registry per extension point (pysim.registry): the validation lists are derived from it
and every entry resolves to real code with the expected interface."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from pysim import config, registry
from pysim.config import MetricSpec, ModelEntry
from pysim.errors import InputError


def test_validation_lists_are_the_registered_names():
    assert config.METRIC_METHODS == tuple(registry.METRICS)
    assert config.METRIC_METHODS[:3] == ("cka", "rsa", "mutual_knn")
    assert config.MODEL_SOURCES == tuple(registry.MODEL_SOURCES)
    assert set(config.MODEL_SOURCES) == {"timm", "torchvision", "custom", "ssl", "open_clip",
                                         "hub"}


def test_config_stays_light(tmp_path):
    # parsing a metric list imports every family class, but not torch (pysim-validate)
    path = tmp_path / "metrics.json"
    path.write_text("[" + ", ".join(f'{{"sim_method": "{m}"}}' for m in registry.METRICS
                                    if m != "cka") + ', {"sim_method": "cka"}]')
    code = ("import sys, pysim.config; ids = [s.id for s in pysim.config.load_metrics("
            f"{str(path)!r})]; print('torch' in sys.modules, len(ids))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", str(len(registry.METRICS))]


def test_every_entry_resolves_to_code_with_the_registry_interface():
    for name in registry.MODEL_SOURCES:
        params = list(inspect.signature(registry.load(registry.MODEL_SOURCES, name)).parameters)
        assert params == ["entry", "wfile"], name
    for name in registry.MODEL_LOADERS:
        params = list(inspect.signature(registry.load(registry.MODEL_LOADERS, name)).parameters)
        assert params == ["entry", "res"], name
    from pysim.similarity.base import Kind, MetricFamily

    needs = {Kind.STACKED: ("observe", "centred", "block"), Kind.RANKED: ("ranks",),
             Kind.PAIRWISE: ("model", "pairs")}
    for method in registry.METRICS:
        family = registry.load(registry.METRICS, method)
        assert issubclass(family, MetricFamily) and family.method == method
        for name in ("parse", "metric_id", "params"):  # the family's own spec handling
            assert getattr(family, name) is not getattr(MetricFamily, name), (method, name)
        metric = family(MetricSpec(method), 10)
        assert isinstance(metric.kind, Kind)
        for name in needs[metric.kind]:  # the methods of its kind are its own
            assert getattr(type(metric), name) is not getattr(MetricFamily, name), (method, name)


def test_resolvers_produce_registered_loaders():
    from pysim.models import resolve

    entries = [ModelEntry("r18", "resnet18", "torchvision", "avgpool", pretrained=False),
               ModelEntry("hub", "m", "hub", "x", {"repo": "o/n:main"}, pretrained=False)]
    for entry in entries:
        assert resolve(entry).loader in registry.MODEL_LOADERS
    with pytest.raises(InputError, match="no loader for source 'nowhere'"):
        resolve(ModelEntry("x", "y", "nowhere", "z"))
