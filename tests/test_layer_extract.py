"""Layer-wise extraction: module lists and patterns in the model table, one forward pass per
batch, one features file per representation equal (bit for bit) to a single-module run."""

import json
import math

import numpy as np
import pytest

from conftest import run_cli
from pysim.config import load_models, module_matches
from pysim.errors import InputError
from pysim.features.extract import ExtractOptions, extract
from pysim.io import read_attrs, read_features

DATASET = "wds/demo_digits"
BATCH = 16
OPTS = ExtractOptions(num_workers=0, progress=False, threads=1, batch_size=BATCH)
VIT = {"model_name": "vit_tiny_patch16_224", "source": "timm", "pretrained": False,
       "model_parameters": {"token_extraction": "cls_token", "input_size": 32,
                            "model_kwargs": {"img_size": 32, "patch_size": 8, "depth": 4}}}
CNN = {"model_name": "resnet18", "source": "torchvision", "pretrained": False,
       "model_parameters": {"input_size": 32}}

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def _table(tmp_path, **entries) -> str:
    path = tmp_path / "models.json"
    path.write_text(json.dumps(entries))
    return str(path)


def _split(path, split="train") -> np.ndarray:
    return read_features(path, split).features


def test_table_accepts_module_lists_and_rejects_bad_ones(tmp_path):
    models = load_models(_table(tmp_path, a={**VIT, "module_name": "norm"},
                                b={**VIT, "module_name": ["blocks.0", "norm"], "pooling": "mean"},
                                c={**VIT, "module_name": "blocks.*"}))
    assert models["a"].modules == ("norm",) and not models["a"].multi
    assert models["b"].module_name == "blocks.0" and models["b"].modules == ("blocks.0", "norm")
    assert models["b"].multi and models["b"].pooling == "mean" and models["c"].multi
    for bad, match in ((["norm", "norm"], "twice"), ([], "non-empty"), (["a@b"], "'@'"),
                       ([3], "non-empty")):
        with pytest.raises(InputError, match=match):
            load_models(_table(tmp_path, x={**VIT, "module_name": bad}))
    assert module_matches("blocks.3", "blocks.*")
    assert module_matches("layer2.1.conv2", "layer*.1.conv2")
    assert not module_matches("blocks.0.attn", "blocks.*")
    with pytest.raises(InputError, match="pooling"):
        load_models(_table(tmp_path, x={**VIT, "module_name": "norm", "pooling": "max"}))


def _count_forwards(monkeypatch) -> list[int]:
    """Count calls of the real model's forward (a forward pre-hook on the loaded model)."""
    import pysim.models

    calls, real = [0], pysim.models.load_model

    def counting(*args, **kwargs):
        model, preprocess, extractor = real(*args, **kwargs)
        model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        return model, preprocess, extractor

    monkeypatch.setattr(pysim.models, "load_model", counting)
    return calls


def test_vit_layers_equal_single_module_runs_in_one_pass(demo_root, tmp_path, monkeypatch):
    modules = ["blocks.0", "blocks.2", "norm"]
    singles = {f"s{k}": {**VIT, "module_name": m, "pooling": "cls"}
               for k, m in enumerate(modules)}
    table = _table(tmp_path, vit={**VIT, "module_name": modules, "pooling": "cls"}, **singles)
    calls = _count_forwards(monkeypatch)
    out = extract(table, "vit", demo_root, DATASET, tmp_path / "vit", OPTS)
    n = {s: len(read_features(out / "vit.h5", s).keys) for s in ("train", "test")}
    assert calls[0] == sum(math.ceil(v / BATCH) for v in n.values())  # one pass per batch
    assert sorted(p.name for p in out.iterdir()) == ["vit.h5", "vit@blocks.2.h5",
                                                      "vit@norm.h5"]
    for k, module in enumerate(modules):
        path = out / ("vit.h5" if k == 0 else f"vit@{module}.h5")
        single = extract(table, f"s{k}", demo_root, DATASET, tmp_path / f"s{k}.h5", OPTS)
        for split in ("train", "test"):
            a, b = read_features(path, split), read_features(single, split)
            assert np.array_equal(a.features, b.features) and a.features.shape[1] == 192
            assert list(a.keys) == list(b.keys)
        attrs = read_attrs(path)
        assert attrs["model_id"] == path.stem and attrs["base_model_id"] == "vit"
        assert attrs["module_name"] == module and attrs["pooling"] == "cls"
        assert list(attrs["modules"]) == modules
    assert not np.array_equal(_split(out / "vit.h5"), _split(out / "vit@norm.h5"))


def test_cnn_pattern_avg_pools_spatial_maps(demo_root, tmp_path):
    table = _table(tmp_path, cnn={**CNN, "module_name": ["layer1", "layer*.1.conv2"]},
                   flat={**CNN, "module_name": "layer1"})
    out = extract(table, "cnn", demo_root, DATASET, tmp_path / "cnn", OPTS)
    names = sorted(p.stem for p in out.iterdir())
    assert names == ["cnn", *[f"cnn@layer{k}.1.conv2" for k in (1, 2, 3, 4)]]
    assert read_attrs(out / "cnn.h5")["pooling"] == "avg"
    flat = _split(extract(table, "flat", demo_root, DATASET, tmp_path / "flat.h5", OPTS))
    pooled = _split(out / "cnn.h5")
    channels = pooled.shape[1]
    expect = flat.astype(np.float64).reshape(len(flat), channels, -1).mean(axis=2)
    np.testing.assert_allclose(pooled, expect, rtol=1e-5, atol=1e-6)


def test_single_module_entry_keeps_its_file_and_attributes(demo_root, tmp_path):
    table = _table(tmp_path, one={**VIT, "module_name": "norm"})
    out = extract(table, "one", demo_root, DATASET, tmp_path / "one.h5", OPTS)
    attrs = read_attrs(out)
    assert out.is_file() and attrs["model_id"] == "one" and attrs["module_name"] == "norm"
    assert "pooling" not in attrs and "modules" not in attrs


def test_bad_pattern_and_pooling_are_bad_input(demo_root, tmp_path):
    table = _table(tmp_path, p={**VIT, "module_name": ["norm", "nothing.*"]},
                   q={**CNN, "module_name": ["layer1", "fc"], "pooling": "cls"})
    with pytest.raises(InputError, match="matches no module"):
        extract(table, "p", demo_root, DATASET, tmp_path / "p", OPTS)
    with pytest.raises(InputError, match="pooling 'cls'"):
        extract(table, "q", demo_root, DATASET, tmp_path / "q", OPTS)
    assert not list((tmp_path / "q").glob("*.h5"))


def test_entry_point_writes_a_folder(demo_root, tmp_path):
    table = _table(tmp_path, vit={**VIT, "module_name": ["blocks.1", "norm"]})
    proc = run_cli("pysim-extract", "--models", table, "--model-id", "vit", "--dataset-root",
                   demo_root, "--dataset", DATASET, "--out", tmp_path / "f", "--num-workers",
                   "0", "--threads", "1", "--quiet", "--batch-size", "64")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["vit.h5", "vit@norm.h5"]


def test_resolve_lists_the_representations(tmp_path):
    from pysim.models.resolve import resolve_report

    models = load_models(_table(tmp_path, v={**VIT, "module_name": ["norm", "blocks.*"]},
                                one={**VIT, "module_name": "norm"}))
    lines = resolve_report(models).splitlines()
    reps = [line for line in lines if "representations:" in line]
    assert len(reps) == 1  # the pattern is expanded against the architecture (depth 4)
    depth = VIT["model_parameters"]["model_kwargs"]["depth"]
    expected = ["v"] + [f"v@blocks.{k}" for k in range(depth)]
    assert reps[0].strip() == "representations: " + ", ".join(expected)


def test_resolve_fails_on_a_pattern_that_matches_no_module(tmp_path):
    from pysim.models.resolve import resolve_report

    models = load_models(_table(tmp_path, v={**VIT, "module_name": ["norm", "stages.*"]},
                                ok={**VIT, "module_name": ["norm", "blocks.1"]}))
    with pytest.raises(InputError, match=r"1 of 2 models cannot be resolved: v$"):
        resolve_report(models)
