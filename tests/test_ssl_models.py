"""The study's self-supervised models against thingsvision 2.6.10 itself (issue 21, item 1).

thingsvision 2.6.10 (the study's extractor) is installed from its wheel without dependencies into
the pytest cache by a session fixture; only its model modules (DINO's vision_transformer.py,
MAE's vit_mae.py / utils.py, which need torch and timm) are imported, as packages of their own
(its package __init__ pulls in tensorflow). Its SSLExtractor model table and its transform
methods are read from its source with `ast` and run as they are.

For each of the 9 ViT ids of the seed tables (2 DINO, 4 DINOv2, 3 MAE) plus DINO's p8 ids of
pysim's table:
- pysim's transform is thingsvision's transform for that entry (the composed steps' parameters
  and the pixels of odd-sized images);
- random weights saved in the official checkpoint layout in `<TORCH_HOME>/hub/checkpoints/`
  (torch.hub's layout, as pysim-fetch-weights leaves it) are loaded offline through pysim's real
  path (load_model), and pysim's features equal those of thingsvision's own model code (hook on
  `norm`, class token, as its PyTorchExtractor) within 1e-5.
Sizes: dino-vit-small-p16 at its full architecture (12 blocks); DINO base-p16 and MAE base with
2 blocks, the p8 DINOs and MAE large / huge with 1 (`model_kwargs.depth`; the official layouts
hold one key group per block, so fewer blocks is the same format), every other
hyper-parameter read from thingsvision's builders (and checked against pysim's table at full
depth).
Position embeddings: MAE base's checkpoint carries a 12 x 12 grid (resampled to 14 x 14 on load
by both), DINO runs a 160 x 192 input (resampled at run time by both).
DINOv2: thingsvision calls `torch.hub.load("facebookresearch/dinov2", <entry>)`; the test builds
a hub repo in torch.hub's cache layout (`<TORCH_HOME>/hub/facebookresearch_dinov2_main/hubconf.py`
whose entries load `<TORCH_HOME>/hub/checkpoints/dinov2_vit*14_pretrain.pth` by its URL, as the
real repo's do) and shows that pysim's loading and thingsvision's call give identical features.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
from PIL import Image

from pysim.config import load_models
from pysim.errors import InputError
from pysim.models import check_weights, load_model, resolve
from pysim.models.fetch import fetch_weights
from pysim.models.resolve import resolve_report
from pysim.models.ssl_table import SSL_MODELS

TV_VERSION = "2.6.10"
SEED = Path(__file__).parent / "fixtures" / "seed"
SEED_TABLES = (SEED / "models_config_wo_alignment.json",
               SEED / "models_config_with_alignment.json")
CLS = {"extract_cls_token": True, "token_extraction": "cls_token"}
DINO_IDS = ("dino-vit-small-p16", "dino-vit-base-p16", "dino-vit-small-p8", "dino-vit-base-p8")
MAE_IDS = ("mae-vit-base-p16", "mae-vit-large-p16", "mae-vit-huge-p14")
DINOV2_IDS = ("dinov2-vit-small-p14", "dinov2-vit-base-p14", "dinov2-vit-large-p14",
              "dinov2-vit-giant-p14")
FULL_DEPTH = ("dino-vit-small-p16",)
TOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tv_root(request) -> Path:
    """thingsvision 2.6.10 from its wheel, without dependencies, in the pytest cache."""
    root = Path(request.config.cache.mkdir(f"thingsvision-{TV_VERSION}"))
    if not (root / f"thingsvision-{TV_VERSION}.dist-info").is_dir():  # a complete install
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                               "--upgrade",
                               "--disable-pip-version-check", "--target", str(root),
                               f"thingsvision=={TV_VERSION}"], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"thingsvision {TV_VERSION} not installable here: "
                        f"{proc.stderr.strip()[-200:]}")
    return root


def tv_module(root: Path, package: str, name: str) -> types.ModuleType:
    """thingsvision/utils/models/<package>/<name>.py imported without thingsvision/__init__."""
    alias = f"_thingsvision_{TV_VERSION.replace('.', '_')}_{package}"
    if alias not in sys.modules:
        pkg = types.ModuleType(alias)
        pkg.__path__ = [str(root / "thingsvision" / "utils" / "models" / package)]
        sys.modules[alias] = pkg
    return importlib.import_module(f"{alias}.{name}")


def _source(root: Path, rel: str) -> tuple[str, ast.Module]:
    import warnings

    text = (root / "thingsvision" / rel).read_text()
    with warnings.catch_warnings():  # its docstrings hold invalid escapes
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return text, ast.parse(text)


def tv_ssl_table(root: Path) -> dict:
    """SSLExtractor.MODELS of thingsvision/core/extraction/extractors.py (a literal)."""
    _, tree = _source(root, "core/extraction/extractors.py")
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "SSLExtractor":
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and stmt.targets[0].id == "MODELS":
                    return ast.literal_eval(stmt.value)
    raise AssertionError("SSLExtractor.MODELS not found")


def tv_transform(root: Path):
    """thingsvision's own get_transformations / get_default_transformation (base.py, torch.py)
    run as the study calls them: get_transformations(resize_dim=256, crop_dim=224)."""
    from collections.abc import Callable

    from torchvision import transforms as T

    methods = {}
    for rel, name in (("core/extraction/base.py", "get_transformations"),
                      ("core/extraction/torch.py", "get_default_transformation")):
        text, tree = _source(root, rel)
        node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)
        namespace = {"T": T, "List": list, "Callable": Callable}  # its annotations' names
        exec(textwrap.dedent(ast.get_source_segment(text, node)), namespace)  # noqa: S102
        methods[name] = namespace[name]
    extractor = type("TV", (), {**methods, "preprocess": None})()
    return extractor.get_transformations(resize_dim=256, crop_dim=224)


def steps(transform) -> list[tuple]:
    """Each composed step's class and parameters."""
    out = []
    for t in transform.transforms:
        params = {k: v for k, v in vars(t).items() if not k.startswith("_") and k != "training"}
        for key in ("mean", "std"):
            if key in params:
                params[key] = [float(v) for v in params[key]]
        out.append((type(t), params))
    return out


def images() -> list[Image.Image]:
    gen = torch.Generator().manual_seed(3)
    return [Image.fromarray(torch.randint(0, 256, (h, w, 3), generator=gen,
                                          dtype=torch.uint8).numpy())
            for h, w in ((300, 257), (240, 320))]


def perturb(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The model's state with every tensor shifted by seeded noise (biases and norms too)."""
    gen = torch.Generator().manual_seed(seed)
    return {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in
            model.state_dict().items()}


def builder_args(module, builder: str, **kwargs) -> dict:
    """The keyword arguments a thingsvision builder passes to its VisionTransformer."""
    seen: dict = {}
    real = module.VisionTransformer
    module.VisionTransformer = lambda **a: seen.update(a)
    try:
        getattr(module, builder)(**kwargs)
    finally:
        module.VisionTransformer = real
    return seen


def tv_features(model: torch.nn.Module, batch: torch.Tensor, forward=None) -> torch.Tensor:
    """As thingsvision's PyTorchExtractor: a forward hook on `norm`, the forward, the class
    token of the hooked output."""
    acts = {}
    module = dict(model.named_modules())["norm"]
    handle = module.register_forward_hook(lambda m, i, o: acts.update(norm=o.clone().detach()))
    model.eval()
    with torch.no_grad():
        (forward or model)(batch)
    handle.remove()
    return acts["norm"][:, 0, :]


def pysim_entry(tmp_path: Path, model_id: str, depth: int | None, **params) -> object:
    kwargs = {"model_kwargs": {"depth": depth}} if depth else {}
    table = {model_id: {"model_name": model_id, "source": "ssl", "module_name": "norm",
                        "model_parameters": {**CLS, **kwargs, **params}}}
    path = tmp_path / "models.json"
    path.write_text(json.dumps(table))
    return load_models(path)[model_id]


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """A weights dir's torch folder as TORCH_HOME (pysim.models.caches layout), offline."""
    home = tmp_path / "weights" / "torch"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # load_model(offline=True) sets it; undo after
    return home


def checkpoint_path(home: Path, url: str) -> Path:
    return home / "hub" / "checkpoints" / os.path.basename(url)


def assert_same_transform(model_id: str, preprocess, tv) -> None:
    assert steps(preprocess) == steps(tv), model_id
    for image in images():
        assert torch.equal(preprocess(image), tv(image)), model_id


def pysim_features(extractor, preprocess) -> tuple[torch.Tensor, torch.Tensor]:
    batch = torch.stack([preprocess(image) for image in images()])
    return batch, extractor(batch)


def test_table_urls_and_ids_are_thingsvisions(tv_root):
    tv = tv_ssl_table(tv_root)
    ids = {m.model_name for t in SEED_TABLES for m in load_models(t).values() if m.source == "ssl"}
    assert ids <= set(SSL_MODELS) <= set(tv)
    vits = sorted(i for i in ids if "-vit-" in i)
    assert vits == sorted(("dino-vit-small-p16", "dino-vit-base-p16", *DINOV2_IDS, *MAE_IDS))
    for model_id, spec in SSL_MODELS.items():
        ref = tv[model_id]
        url = ref.get("checkpoint_url") or ref.get("url")
        if url:  # DINO / MAE ViTs, VISSL and checkpoint_url ResNets: the same file
            assert spec.url == url, model_id
        if ref["type"] == "hub" and not url:  # DINOv2, XCiT, dino-rn50: hub entry points
            if spec.kind in ("dinov2_hub", "hub"):
                assert spec.repo.split(":")[0] == ref["repository"].split(":")[0]
                assert spec.entry == ref["arch"], model_id


def test_resnet_and_xcit_transform_is_thingsvisions(tv_root, tmp_path):
    """The other ssl ids: the transform their builders return (build_resnet50, build_hub)."""
    from pysim.models.loaders import _transform

    tv = tv_transform(tv_root)
    for model_id, spec in SSL_MODELS.items():
        if spec.kind in ("resnet50", "hub"):
            entry = pysim_entry(tmp_path, model_id, None)
            assert_same_transform(model_id, _transform(entry, resolve(entry)), tv)


@pytest.mark.parametrize("model_id", DINO_IDS)
def test_dino_vit_equals_thingsvision(tv_root, tmp_path, torch_home, model_id):
    vt = tv_module(tv_root, "dino", "vision_transformer")
    size, patch = model_id.split("-")[2], int(model_id.split("-p")[-1])
    args = builder_args(vt, {"small": "vit_small", "base": "vit_base"}[size], patch_size=patch)
    assert {k: args[k] for k in ("patch_size", "embed_dim", "depth", "num_heads")} == \
        SSL_MODELS[model_id].vit_kwargs
    depth = None if model_id in FULL_DEPTH else 2 if patch == 16 else 1
    torch.manual_seed(0)
    source = vt.VisionTransformer(**{**args, "depth": depth or args["depth"]})
    url = SSL_MODELS[model_id].url
    torch.save(perturb(source, 1), checkpoint_path(torch_home, url))  # a plain state_dict

    # thingsvision: its builder's model, the checkpoint loaded strictly (SSLExtractor, hub DINO)
    torch.manual_seed(5)
    ref = vt.VisionTransformer(**{**args, "depth": depth or args["depth"]})
    ref.load_state_dict(torch.load(checkpoint_path(torch_home, url), map_location="cpu"),
                        strict=True)
    # pysim: the real path, offline, from <TORCH_HOME>/hub/checkpoints
    model, preprocess, extractor = load_model(pysim_entry(tmp_path, model_id, depth),
                                              offline=True)
    assert extractor.provenance["weights_file"] == str(checkpoint_path(torch_home, url))
    assert_same_transform(model_id, preprocess, tv_transform(tv_root))
    batch, ours = pysim_features(extractor, preprocess)
    theirs = tv_features(ref, batch)
    assert ours.shape == theirs.shape == (2, args["embed_dim"])
    print(f"{model_id}: max |pysim - thingsvision| {(ours - theirs).abs().max():.2e}")
    assert (ours - theirs).abs().max() <= TOL
    # DINO resamples its position embeddings at run time for another (non-square) grid
    odd = torch.randn(2, 3, 160, 192, generator=torch.Generator().manual_seed(2))
    diff = (extractor(odd) - tv_features(ref, odd)).abs().max()
    print(f"{model_id} 160 x 192: max |pysim - thingsvision| {diff:.2e}")
    assert diff <= TOL


@pytest.mark.parametrize("model_id", MAE_IDS)
def test_mae_vit_equals_thingsvision(tv_root, tmp_path, torch_home, model_id):
    vm = tv_module(tv_root, "mae", "vit_mae")
    mae_utils = tv_module(tv_root, "mae", "utils")
    builder = {"mae-vit-base-p16": "vit_base_patch16", "mae-vit-large-p16": "vit_large_patch16",
               "mae-vit-huge-p14": "vit_huge_patch14"}[model_id]
    args = builder_args(vm, builder, num_classes=0, drop_rate=0.0)  # as SSLExtractor calls it
    assert {k: args[k] for k in ("patch_size", "embed_dim", "depth", "num_heads")} == \
        SSL_MODELS[model_id].vit_kwargs
    args["depth"] = depth = 2 if model_id == "mae-vit-base-p16" else 1
    torch.manual_seed(0)
    state = perturb(vm.VisionTransformer(**args), 1)
    if model_id == "mae-vit-base-p16":  # a checkpoint with another grid: resampled on load
        state["pos_embed"] = 0.05 * torch.randn(1, 1 + 12 * 12, args["embed_dim"],
                                                generator=torch.Generator().manual_seed(4))
    state["decoder_pos_embed"] = torch.zeros(1, 3, 8)  # pretraining leftovers: ignored by both
    state["mask_token"] = torch.zeros(1, 1, 8)
    url = SSL_MODELS[model_id].url
    torch.save({"model": state}, checkpoint_path(torch_home, url))  # MAE's layout

    # thingsvision: builder, checkpoint["model"], interpolate_pos_embed, non-strict load
    torch.manual_seed(5)
    ref = vm.VisionTransformer(**args)
    checkpoint_model = torch.load(checkpoint_path(torch_home, url), map_location="cpu")["model"]
    mae_utils.interpolate_pos_embed(ref, checkpoint_model)
    ref.load_state_dict(checkpoint_model, strict=False)
    model, preprocess, extractor = load_model(pysim_entry(tmp_path, model_id, depth), offline=True)
    assert_same_transform(model_id, preprocess, tv_transform(tv_root))
    assert torch.equal(model.pos_embed, ref.pos_embed)
    batch, ours = pysim_features(extractor, preprocess)
    # its forward_features override (the study's timm called it from forward; timm 1.0's
    # forward passes it an attn_mask argument that the override predates)
    theirs = tv_features(ref, batch, ref.forward_features)
    assert ours.shape == theirs.shape == (2, args["embed_dim"])
    print(f"{model_id}: max |pysim - thingsvision| {(ours - theirs).abs().max():.2e}")
    assert (ours - theirs).abs().max() <= TOL


def test_mae_checkpoint_without_an_encoder_key_is_refused(tmp_path, torch_home):
    from pysim.models.ssl_models import reference_vit

    spec = SSL_MODELS["mae-vit-base-p16"]
    state = reference_vit("mae_vit", {**spec.vit_kwargs, "depth": 1}).state_dict()
    del state["norm.weight"]
    torch.save({"model": state}, checkpoint_path(torch_home, spec.url))
    with pytest.raises(InputError, match="lacks encoder keys norm.weight"):
        load_model(pysim_entry(tmp_path, "mae-vit-base-p16", 1), offline=True)


HUBCONF = '''
"""Stand-in for facebookresearch/dinov2's hubconf.py: its entry names and checkpoint URLs."""
import torch
from timm.models.vision_transformer import VisionTransformer

dependencies = ["torch"]
_DINOV2_BASE_URL = "https://dl.fbaipublicfiles.com/dinov2"


def _make(letter, pretrained=True, **kwargs):
    model = VisionTransformer(img_size=518, patch_size=14, embed_dim=32, depth=1, num_heads=2,
                              num_classes=0, dynamic_img_size=True, **kwargs)
    if pretrained:
        name = f"dinov2_vit{letter}14"
        url = f"{_DINOV2_BASE_URL}/{name}/{name}_pretrain.pth"
        model.load_state_dict(torch.hub.load_state_dict_from_url(url, map_location="cpu"))
    return model


def dinov2_vits14(*, pretrained=True, **kwargs):
    return _make("s", pretrained, **kwargs)


def dinov2_vitb14(*, pretrained=True, **kwargs):
    return _make("b", pretrained, **kwargs)


def dinov2_vitl14(*, pretrained=True, **kwargs):
    return _make("l", pretrained, **kwargs)


def dinov2_vitg14(*, pretrained=True, **kwargs):
    return _make("g", pretrained, **kwargs)
'''


@pytest.mark.parametrize("model_id", DINOV2_IDS)
def test_dinov2_hub_entry_equals_thingsvisions_call(tv_root, tmp_path, torch_home, model_id):
    from timm.models.vision_transformer import VisionTransformer

    ref_cfg = tv_ssl_table(tv_root)[model_id]
    spec = SSL_MODELS[model_id]
    repo = torch_home / "hub" / "facebookresearch_dinov2_main"  # torch.hub's cached-repo folder
    entry = pysim_entry(tmp_path, model_id, None)
    with pytest.raises(InputError, match="not available offline"):  # nothing fetched yet
        load_model(entry, offline=True)
    repo.mkdir()
    (repo / "hubconf.py").write_text(HUBCONF)
    with pytest.raises(InputError, match="not available offline"):  # repo, no checkpoint
        load_model(entry, offline=True)
    torch.manual_seed(0)
    source = VisionTransformer(img_size=518, patch_size=14, embed_dim=32, depth=1, num_heads=2,
                               num_classes=0, dynamic_img_size=True)
    torch.save(perturb(source, 1), checkpoint_path(torch_home, spec.url))
    assert "all 1 pretrained models available offline" in check_weights({model_id: entry})
    lines = list(fetch_weights(tmp_path / "models.json", offline=True))
    assert lines == [f"{model_id}: cached {resolve(entry).weight_source}"]

    model, preprocess, extractor = load_model(entry, offline=True)
    # thingsvision's SSLExtractor: torch.hub.load(repository, arch), nothing else (offline:
    # torch.hub finds the default branch in its cache)
    theirs_model = torch.hub.load(ref_cfg["repository"], ref_cfg["arch"])
    assert_same_transform(model_id, preprocess, tv_transform(tv_root))
    batch, ours = pysim_features(extractor, preprocess)
    theirs = tv_features(theirs_model, batch)
    assert torch.equal(ours, theirs)
    assert extractor.provenance["architecture_source"].startswith(
        "torch.hub facebookresearch/dinov2:main " + ref_cfg["arch"])


def test_resolve_report_shows_architecture_and_transform():
    models = load_models(SEED_TABLES[0])
    lines = resolve_report({m: e for m, e in models.items() if e.source == "ssl"}).splitlines()
    by_id = {line.split(" -> ")[0].strip(): line for line in lines[1:]}
    assert "architecture pysim ReferenceViT on timm VisionTransformer = facebookresearch/mae " \
        "models_vit.py" in by_id["mae-vit-huge-p14"]
    assert "architecture torch.hub facebookresearch/dinov2:main dinov2_vitg14" in \
        by_id["dinov2-vit-giant-p14"]
    for line in by_id.values():
        assert line.endswith("transform thingsvision 2.6.10 default: Resize(256, bilinear) "
                             "CenterCrop(224) ToTensor Normalize(ImageNet mean/std)")


def test_timm_variant_is_an_explicit_option(tmp_path):
    default = resolve(pysim_entry(tmp_path, "dino-vit-base-p16", None))
    assert default.loader == "ssl_vit" and "thingsvision" in default.transform_source
    res = resolve(pysim_entry(tmp_path, "dino-vit-base-p16", None, ssl_impl="timm"))
    assert res.loader == "timm" and res.name == "vit_base_patch16_224.dino"
    assert "not the study's" in res.architecture_source
    with pytest.raises(InputError, match="ssl_impl must be one of thingsvision, timm"):
        resolve(pysim_entry(tmp_path, "dino-vit-base-p16", None, ssl_impl="hf"))
    with pytest.raises(InputError, match="no timm equivalent of 'simclr-rn50'"):
        resolve(pysim_entry(tmp_path, "simclr-rn50", None, ssl_impl="timm"))
