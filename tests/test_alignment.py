"""gLocal alignment (thingsvision 2.6.10's align()) and the model table's entry keys.

The expected aligned features are re-derived here in float64 from thingsvision's published
formula, features <- ((features - mean) / std) @ weights (+ bias), applied to the plain model's
features; the transform file is made locally in the gLocal repository's format (an .npz with
float32 `weights` d x d', `bias` d', and 0-d `mean`, `std`).
"""

import importlib.util
import json
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import SEED, assert_bad_input, run_cli
from pysim.config import load_models
from pysim.errors import InputError
from pysim.features.extract import ExtractOptions, extract
from pysim.io import read_attrs, read_features

ROOT = Path(__file__).parents[1]
DEMO_TABLE = json.loads((ROOT / "assets" / "demo" / "models.json").read_text())
OPTS = ExtractOptions(num_workers=0, progress=False, threads=1)
GLOCAL = "https://raw.githubusercontent.com/LukasMut/gLocal/main/transforms/"

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def write_transform(path: Path, d_in: int, d_out: int, seed: int = 3, bias: bool = True) -> dict:
    """A transform file in the gLocal repository's exact format; returns its arrays."""
    rng = np.random.default_rng(seed)
    arrays = {"weights": rng.standard_normal((d_in, d_out)).astype(np.float32) / np.sqrt(d_in),
              "mean": np.array(0.37, dtype=np.float32), "std": np.array(1.9, dtype=np.float32)}
    if bias:
        arrays["bias"] = rng.standard_normal(d_out).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return arrays


def thingsvision_align(features: np.ndarray, t: dict) -> np.ndarray:
    """thingsvision.utils.alignment.gLocal.apply_transform, re-derived in float64."""
    out = (features.astype(np.float64) - np.float64(t["mean"])) / np.float64(t["std"])
    out = out @ t["weights"].astype(np.float64)
    if "bias" in t:
        out = out + t["bias"].astype(np.float64)
    return out


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def aligned_table(tmp_path: Path) -> Path:
    vit = DEMO_TABLE["timm_vit_tiny"]
    table = {"plain": vit, "plain_gLocal": {**vit, "alignment": "gLocal"},
             "resnet": DEMO_TABLE["tv_resnet18"],
             "resnet_gLocal": {**DEMO_TABLE["tv_resnet18"], "alignment": "gLocal",
                               "pretrained": False}}
    table["resnet"] = {**table["resnet"], "pretrained": False}
    path = tmp_path / "models.json"
    path.write_text(json.dumps(table))
    return path


@pytest.mark.parametrize("plain, aligned, name, module, dim, bias", [
    ("plain", "plain_gLocal", "vit_tiny_patch16_224", "norm", 192, True),
    ("resnet", "resnet_gLocal", "resnet18", "avgpool", 512, False),
])
def test_glocal_features_are_the_plain_features_transformed(demo_root, tmp_path, torch_home,
                                                            plain, aligned, name, module, dim,
                                                            bias):
    table = aligned_table(tmp_path)
    path = torch_home / "glocal" / name / module / "transform.npz"
    t = write_transform(path, dim, 7, bias=bias)
    a = extract(table, plain, demo_root, "wds/demo_digits", tmp_path / "a.h5", OPTS)
    b = extract(table, aligned, demo_root, "wds/demo_digits", tmp_path / "b.h5", OPTS)
    for split in ("train", "test"):
        fa, fb = read_features(a, split), read_features(b, split)
        assert fa.features.shape[1] == dim and fb.features.shape[1] == 7
        assert np.array_equal(fa.keys, fb.keys)
        expected = thingsvision_align(fa.features, t)
        np.testing.assert_allclose(fb.features, expected, rtol=1e-5, atol=1e-5)
        assert np.abs(expected).max() > 0.1
    attrs, plain_attrs = read_attrs(b), read_attrs(a)
    assert plain_attrs["alignment"] == ""
    assert attrs["alignment"] == "gLocal"
    assert attrs["alignment_url"] == f"{GLOCAL}{name}/{module}/transform.npz"
    assert attrs["alignment_file"] == str(path)
    import hashlib

    assert attrs["alignment_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert list(attrs["alignment_dim"]) == [dim, 7]


def test_seed_glocal_entries_use_thingsvision_urls(tmp_path, monkeypatch):
    """thingsvision: os.path.join(gLocal_URL, name, module, 'transform.npz'), where name is the
    model name, OpenCLIP_<variant>_<dataset> for OpenCLIP."""
    from pysim.models import resolve

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    models = load_models(SEED / "models_config_with_alignment.json")
    aligned = {m: e for m, e in models.items() if e.raw.get("alignment") is not None}
    assert len(aligned) == 6 and all(m.endswith("_gLocal") for m in aligned)
    for model_id, entry in aligned.items():
        params = entry.model_parameters
        name = "_".join(("OpenCLIP", params["variant"], params["dataset"])) \
            if entry.model_name == "OpenCLIP" else entry.model_name
        src = resolve(entry).alignment
        assert src.url == os.path.join(GLOCAL, name, entry.module_name, "transform.npz")
        assert src.path == tmp_path / "glocal" / name / entry.module_name / "transform.npz"
        plain = resolve(models[model_id.removesuffix("_gLocal")])
        assert plain.alignment is None and plain.name == resolve(entry).name
    assert {resolve(e).alignment.url.removeprefix(GLOCAL) for e in aligned.values()} == {
        "OpenCLIP_ViT-L-14_laion400m_e32/visual/transform.npz",
        "OpenCLIP_ViT-L-14_laion2b_s32b_b82k/visual/transform.npz",
        "dino-vit-base-p16/norm/transform.npz", "dinov2-vit-large-p14/norm/transform.npz",
        "vgg16/classifier.3/transform.npz", "resnet50/avgpool/transform.npz"}


def write_inputs(tmp_path: Path, table: dict) -> list:
    models = tmp_path / "models.json"
    models.write_text(json.dumps(table))
    return ["--models", models, "--datasets", SEED / "webdatasets_w_in1k.txt",
            "--metrics", SEED / "similarity_metric_config_all.json"]


@pytest.mark.parametrize("key, value", [("alignmnet", "gLocal"), ("notes", "x"),
                                        ("layer", "norm")])
def test_unknown_entry_key_fails_in_validate_naming_it(tmp_path, key, value):
    table = {"ok": DEMO_TABLE["timm_vit_tiny"], "m": {**DEMO_TABLE["tv_resnet18"], key: value}}
    proc = run_cli("pysim-validate", *write_inputs(tmp_path, table))
    assert_bad_input(proc, "model 'm'", f"unknown key '{key}'")


@pytest.mark.parametrize("value", ["global", "GLOCAL", True, ["gLocal"]])
def test_unknown_alignment_is_refused(tmp_path, value):
    table = {"m": {**DEMO_TABLE["tv_resnet18"], "alignment": value}}
    proc = run_cli("pysim-validate", *write_inputs(tmp_path, table))
    assert_bad_input(proc, "model 'm'", "'alignment' must be null or one of 'gLocal'")


def test_alignment_needs_one_module(tmp_path):
    table = {"m": {**DEMO_TABLE["tv_resnet18"], "alignment": "gLocal",
                   "module_name": ["avgpool", "layer4"]}}
    proc = run_cli("pysim-validate", *write_inputs(tmp_path, table))
    assert_bad_input(proc, "model 'm'", "needs a single module_name")


def test_informational_columns_and_null_alignment_load(tmp_path):
    entry = {**DEMO_TABLE["tv_resnet18"], "dataset": "ImageNet1k", "architecture": "ResNet",
             "embedding_dim": 512, "size": 11689512, "size_fmt": "11.7M", "alignment": None}
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"m": entry}))
    model = load_models(path)["m"]
    assert model.alignment is None and model.raw["size_fmt"] == "11.7M"


def test_check_weights_names_a_missing_transform_in_one_line(tmp_path, torch_home):
    table = {"plain_gLocal": {**DEMO_TABLE["timm_vit_tiny"], "alignment": "gLocal"}}
    args = write_inputs(tmp_path, table)
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    proc = run_cli("pysim-validate", *args, "--check-weights", env=env)
    assert_bad_input(proc, "plain_gLocal", "gLocal transform",
                     f"{GLOCAL}vit_tiny_patch16_224/norm/transform.npz")
    write_transform(torch_home / "glocal" / "vit_tiny_patch16_224" / "norm" / "transform.npz",
                    192, 7)
    from pysim.models import check_weights

    report = check_weights(load_models(args[1]))
    assert "alignment: gLocal transform" in report and "(cached)" in report


def test_fetch_offline_reports_missing_transform(tmp_path, torch_home):
    from pysim.models.fetch import fetch_weights

    path = tmp_path / "models.json"
    path.write_text(json.dumps({"a_gLocal": {**DEMO_TABLE["timm_vit_tiny"],
                                             "alignment": "gLocal"}}))
    lines = []
    with pytest.raises(InputError, match="a_gLocal"):
        for line in fetch_weights(path, offline=True):
            lines.append(line)
    assert lines[0] == f"a_gLocal: MISSING gLocal transform " \
                       f"{GLOCAL}vit_tiny_patch16_224/norm/transform.npz"


def test_load_offline_without_transform_is_one_input_error(tmp_path, torch_home):
    from pysim.models import load_model

    path = tmp_path / "models.json"
    path.write_text(json.dumps({"a_gLocal": {**DEMO_TABLE["timm_vit_tiny"],
                                             "alignment": "gLocal"}}))
    with pytest.raises(InputError, match="model 'a_gLocal': gLocal transform not available"):
        load_model(load_models(path)["a_gLocal"], offline=True)


def test_bad_transform_file_is_input_error(tmp_path):
    from pysim.models.alignment import load_glocal

    path = tmp_path / "transform.npz"
    np.savez(path, weights=np.ones((3, 2), np.float32), bias=np.zeros(2, np.float32))
    with pytest.raises(InputError, match="missing mean, std"):
        load_glocal(path)
    path.write_bytes(b"<html>404</html>")
    with pytest.raises(InputError, match="not a readable .npz"):
        load_glocal(path)


def test_all_73_models_of_the_with_alignment_table_resolve():
    proc = run_cli("pysim-validate", "--models", SEED / "models_config_with_alignment.json",
                   "--datasets", SEED / "webdatasets_w_in1k.txt",
                   "--metrics", SEED / "similarity_metric_config_all.json", "--resolve")
    assert proc.returncode == 0, proc.stderr
    assert "resolve: 73/73 models" in proc.stdout
    assert "aligned:  6 (gLocal: " in proc.stdout
    assert proc.stdout.count("alignment: gLocal transform") == 6
    assert "DreamSim_dino_vitb16 -> dreamsim DreamSim dino_vitb16" in proc.stdout
    assert "DreamSim_open_clip_vitb32 -> dreamsim DreamSim open_clip_vitb32" in proc.stdout


def test_paper_assets_hold_the_with_alignment_table_unchanged():
    paper = ROOT / "assets" / "paper" / "models_config_with_alignment.json"
    assert paper.read_bytes() == (SEED / "models_config_with_alignment.json").read_bytes()
    models = load_models(paper)
    assert len(models) == 73
    assert sum(m.alignment == "gLocal" for m in models.values()) == 6
    assert sum(m.model_name == "DreamSim" for m in models.values()) == 2


@pytest.fixture(scope="module")
def thingsvision_transforms(request, tmp_path_factory):
    """thingsvision 2.6.10's own thingsvision/utils/alignment/transforms.py, from its wheel
    (PyPI, no dependencies; cached by pytest), imported alone; skipped without PyPI."""
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("thingsvision-2.6.10-wheel")) if cache is not None \
        else tmp_path_factory.mktemp("thingsvision-2.6.10-wheel")
    source = root / "thingsvision" / "utils" / "alignment" / "transforms.py"
    if not source.is_file():
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                               str(root), "thingsvision==2.6.10"], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot download thingsvision 2.6.10: {proc.stderr.strip()[-200:]}")
        with zipfile.ZipFile(next(root.glob("thingsvision-2.6.10-*.whl"))) as wheel:
            wheel.extract("thingsvision/utils/alignment/transforms.py", root)
    spec = importlib.util.spec_from_file_location("tv_alignment_transforms", source)
    module = importlib.util.module_from_spec(spec)
    stub = "requests" not in sys.modules and importlib.util.find_spec("requests") is None
    if stub:  # imported there for the download only, which the test does not use
        sys.modules["requests"] = types.ModuleType("requests")
    try:
        spec.loader.exec_module(module)
    finally:
        if stub:
            del sys.modules["requests"]
    return module


@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # thingsvision + numpy 2
def test_glocal_equals_thingsvision_apply_transform(demo_root, tmp_path, torch_home,
                                                    thingsvision_transforms):
    """thingsvision's own gLocal.apply_transform (its float32 arithmetic) on the plain features,
    with the transform it would have downloaded (the same file, read by np.load)."""
    import torch

    table = aligned_table(tmp_path)
    path = torch_home / "glocal" / "vit_tiny_patch16_224" / "norm" / "transform.npz"
    write_transform(path, 192, 11, seed=5)
    a = extract(table, "plain", demo_root, "wds/demo_digits", tmp_path / "a.h5", OPTS)
    b = extract(table, "plain_gLocal", demo_root, "wds/demo_digits", tmp_path / "b.h5", OPTS)
    glocal = thingsvision_transforms.gLocal.__new__(thingsvision_transforms.gLocal)
    glocal.transform = np.load(path)  # what load_transform_from_remote returns
    for split in ("train", "test"):
        plain = torch.from_numpy(read_features(a, split).features)
        expected = glocal.apply_transform(plain.to(torch.float32)).numpy()
        np.testing.assert_allclose(read_features(b, split).features, expected,
                                   rtol=1e-5, atol=1e-5)
