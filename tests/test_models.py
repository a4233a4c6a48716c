"""Model registry: hook output vs manual forward, local weights, seeded random init, offline,
resolution of the seed model table, and bad entries."""

import json
from pathlib import Path

import pytest
import torch

from pysim.config import load_models
from pysim.errors import InputError
from pysim.models import load_model, resolve, resolve_report
from pysim.models.ssl_table import resnet50_state_dict

SEED_TABLE = Path(__file__).parent / "fixtures" / "seed" / "models_config_wo_alignment.json"
DEMO_TABLE = Path(__file__).parents[1] / "assets" / "demo" / "models.json"
TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 2}
CLS = {"extract_cls_token": True, "token_extraction": "cls_token"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def table(tmp_path, entries, name="models.json"):
    path = tmp_path / name
    path.write_text(json.dumps(entries))
    return path


def entry(tmp_path, **fields):
    base = {"model_name": "vit_tiny_patch16_224", "source": "timm", "module_name": "norm",
            "model_parameters": {**CLS, "model_kwargs": TINY_VIT, "input_size": 32},
            "pretrained": False}
    base.update(fields)
    return load_models(table(tmp_path, {"m": base}))["m"]


def images(n=3, size=32, seed=1):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_timm_hook_is_the_named_module_output(tmp_path):
    model, preprocess, extractor = load_model(entry(tmp_path))
    x = images()
    with torch.inference_mode():
        manual = model.forward_features(x)  # ViT forward_features ends with `norm`
        raw = extractor.module_output(x)
        feats = extractor(x)
    assert torch.equal(raw, manual)
    assert torch.equal(feats, manual[:, 0])
    assert extractor.provenance["preprocessing"]["crop"] == [32, 32]


def test_avg_pool_tokens_and_unknown_module(tmp_path):
    params = {"token_extraction": "cls_token+avg_pool", "model_kwargs": TINY_VIT}
    model, _, extractor = load_model(entry(tmp_path, model_parameters=params))
    x = images()
    with torch.inference_mode():
        tokens = model.forward_features(x)
        feats = extractor(x)
    n = model.num_prefix_tokens
    assert torch.equal(feats, torch.cat([tokens[:, 0], tokens[:, n:].mean(1)], dim=1))
    with pytest.raises(InputError, match="module 'blocks.99' not found"):
        load_model(entry(tmp_path, module_name="blocks.99"))


def test_torchvision_hook_matches_manual_forward(tmp_path):
    e = entry(tmp_path, model_name="resnet18", source="torchvision", module_name="layer3",
              model_parameters={"weights": "DEFAULT", "input_size": 32})
    model, _, extractor = load_model(e)
    x = images()
    with torch.inference_mode():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        manual = model.layer3(model.layer2(model.layer1(h)))
        feats = extractor(x)
    assert torch.equal(feats, manual.reshape(3, -1))


def test_open_clip_visual_is_encode_image(tmp_path):
    e = load_models(DEMO_TABLE)["openclip_tiny_rn"]
    model, _, extractor = load_model(e)
    x = images()
    with torch.inference_mode():
        assert torch.equal(extractor(x), model.encode_image(x))


def test_random_init_is_seeded(tmp_path):
    a = load_model(entry(tmp_path))[2].provenance["weights_sha256"]
    b = load_model(entry(tmp_path))[2].provenance["weights_sha256"]
    other = load_model(entry(tmp_path, model_parameters={"model_kwargs": {**TINY_VIT, "depth": 3}}))
    assert a == b != other[2].provenance["weights_sha256"]


def _saved(model, path):
    torch.manual_seed(123)  # weights different from the seeded random init
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(state, path)
    return state


def _assert_loaded(model, state):
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_timm_local_weights_relative_to_real_table_dir(tmp_path):
    real, link_dir = tmp_path / "real", tmp_path / "elsewhere"
    real.mkdir()
    link_dir.mkdir()
    model, _, _ = load_model(entry(tmp_path))
    state = _saved(model, real / "w.pth")
    spec = {"model_name": "vit_tiny_patch16_224", "source": "timm", "module_name": "norm",
            "model_parameters": {**CLS, "model_kwargs": TINY_VIT}, "weights": "w.pth"}
    (link_dir / "models.json").symlink_to(table(real, {"m": spec}))
    e = load_models(link_dir / "models.json")["m"]
    loaded, _, extractor = load_model(e, base_dir=(link_dir / "models.json").resolve().parent)
    _assert_loaded(loaded, state)
    assert extractor.provenance["weights_hash_of"] == "file"
    assert extractor.provenance["weight_source"] == f"file:{real / 'w.pth'}"
    with pytest.raises(InputError, match="weights file .* not found"):
        load_model(e, base_dir=link_dir)


def test_torchvision_and_open_clip_local_weights(tmp_path):
    e = entry(tmp_path, model_name="resnet18", source="torchvision", module_name="avgpool",
              model_parameters={"weights": "DEFAULT"})
    state = _saved(load_model(e)[0], tmp_path / "r18.pth")
    tv = load_models(table(tmp_path, {"m": {**e.raw, "weights": str(tmp_path / "r18.pth"),
                                            "pretrained": True}}))["m"]
    _assert_loaded(load_model(tv)[0], state)

    oc = load_models(DEMO_TABLE)["openclip_tiny_rn"]
    state = _saved(load_model(oc)[0], tmp_path / "clip.pt")
    oc_file = load_models(table(tmp_path, {"m": {**oc.raw, "weights": str(tmp_path / "clip.pt"),
                                                 "pretrained": True}}))["m"]
    _assert_loaded(load_model(oc_file)[0], state)


def test_ssl_resnet50_checkpoint_conversion(tmp_path):
    import torchvision

    ref = torchvision.models.resnet50()
    ref.fc = torch.nn.Identity()
    state = _saved(ref, tmp_path / "unused.pth")
    vissl = {"classy_state_dict": {"base_model": {"model": {"trunk": {
        f"_feature_blocks.{k}": v for k, v in state.items()}}}}}
    moco = {"state_dict": {**{f"module.encoder_q.{k}": v for k, v in state.items()},
                           "module.encoder_q.fc.0.weight": torch.zeros(2, 2)}}
    for ckpt in (vissl, moco):
        converted = resnet50_state_dict(ckpt)
        assert set(converted) == set(state)
    torch.save(moco, tmp_path / "moco.pth")
    e = entry(tmp_path, model_name="mocov2-rn50", source="ssl", module_name="avgpool",
              model_parameters={}, weights=str(tmp_path / "moco.pth"), pretrained=True)
    _assert_loaded(load_model(e)[0], state)


def test_offline_missing_weights_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty weight cache
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # offline mode sets it; undo after
    e = entry(tmp_path, model_name="resnet18", source="torchvision", pretrained=True,
              module_name="avgpool", model_parameters={"weights": "IMAGENET1K_V1"})
    with pytest.raises(InputError) as err:
        load_model(e, offline=True)
    message = str(err.value)
    assert "\n" not in message and "not available offline" in message
    assert "resnet18-f37072fd.pth" in message


def test_resolve_seed_table_without_download():
    models = load_models(SEED_TABLE)
    assert len(models) == 64
    lines = resolve_report(models).splitlines()  # transformers (ALIGN) is a dependency
    assert lines[0] == "resolve: 64/64 models"
    loaders = {m: resolve(e).loader for m, e in models.items()}
    assert loaders["dinov2-vit-giant-p14"] == "ssl_hub"
    assert loaders["mae-vit-huge-p14"] == "ssl_vit"
    assert loaders["simclr-rn50"] == "resnet50"
    assert loaders["dino-xcit-small-12-p16"] == "hub"
    assert loaders["OpenCLIP_EVA02-B-16_merged2b_s8b_b131k"] == "open_clip"
    assert loaders["vgg16"] == "torchvision"
    assert loaders["Kakaobrain_Align"] == "transformers"
    # an untagged timm name records the tag this timm version resolves it to
    assert resolve(models["vit_base_patch16_224"]).tag


@pytest.mark.parametrize("fields, reason", [
    ({"model_name": "no_such_arch"}, "timm has no architecture 'no_such_arch'"),
    ({"source": "ssl", "model_name": "nope-rn50"}, "unknown self-supervised model"),
    ({"source": "torchvision", "model_name": "resnet18",
      "model_parameters": {"weights": "BOGUS"}}, "has no weights 'BOGUS'"),
    ({"source": "custom", "model_name": "OpenCLIP", "pretrained": True,
      "model_parameters": {"variant": "RN50", "dataset": "nope"}}, "no pretrained tag"),
    ({"source": "custom", "model_name": "Mystery"}, "no loader for source 'custom'"),
])
def test_unresolvable_entries_name_model_and_reason(tmp_path, fields, reason):
    e = entry(tmp_path, **fields)
    with pytest.raises(InputError, match=reason):
        resolve(e)
    with pytest.raises(InputError, match="1 of 1 models cannot be resolved: m"):
        resolve_report({"m": e})


def test_fetch_weights_reports_each_model_and_offline_gaps(tmp_path, monkeypatch):
    from pysim.models.fetch import fetch_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty weight cache
    lines = list(fetch_weights(DEMO_TABLE, ["tv_resnet18"], offline=True))
    assert lines == ['tv_resnet18: random init ("pretrained": false), nothing to fetch']
    (tmp_path / "w.pth").write_bytes(b"")
    path = table(tmp_path, {
        "local": {"model_name": "resnet18", "source": "torchvision", "module_name": "avgpool",
                  "weights": "w.pth"},
        "hub": {"model_name": "resnet18", "source": "torchvision", "module_name": "avgpool",
                "model_parameters": {"weights": "IMAGENET1K_V1"}}})
    lines = []
    with pytest.raises(InputError, match="1 models have no cached weights .*: hub"):
        for line in fetch_weights(path, offline=True):
            lines.append(line)
    assert lines == [f"local: local file {tmp_path / 'w.pth'}",
                     "hub: MISSING url:https://download.pytorch.org/models/resnet18-f37072fd.pth"]
