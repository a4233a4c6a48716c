"""DreamSim entries of the seed table (thingsvision 2.6.10 custom model, dreamsim 0.1.2).

Small random weights are written in the official file layout under $TORCH_HOME/dreamsim (the
backbone checkpoint, the peft 0.1.0 LoRA adapter folder), the seed's own entries are built
offline through the real loading path, and their features at `model.mlp` are compared with an
independent float64 re-derivation of dreamsim 0.1.2's `PerceptualModel.embed` (read from its
code: DINO-layout ViT, LoRA added to qkv unmerged, cls token / norm(cls) @ proj) after
thingsvision's DreamSim preprocessing (PIL Resize((224, 224), bicubic), ToTensor).
"""

import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import SEED
from pysim.config import load_models
from pysim.errors import InputError

HELPER = Path(__file__).with_name("dreamsim_official.py")
OFFICIAL = ("dreamsim==0.1.2", "peft==0.1.0", "accelerate==1.16.0")  # the study pins the first
DIM, DEPTH, HIDDEN, RANK, ALPHA = 128, 12, 256, 16, 0.5  # ViT width / 64 = heads (2 here)
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# variant -> patch, backbone file, feature, normalisation (dreamsim 0.1.2 config / model.py)
VARIANTS = {"open_clip_vitb32": (32, "open_clip_vitb32_pretrain.pth.tar", "embedding", CLIP),
            "dino_vitb16": (16, "checkpoints/dino_vitbase16_pretrain.pth", "cls", IMAGENET)}


def backbone_sd(patch: int, open_clip: bool, gen: torch.Generator) -> dict:
    """A DINO-layout ViT state_dict (dreamsim's vision_transformer.VisionTransformer keys)."""
    def r(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    sd = {"cls_token": r(1, 1, DIM, scale=0.5),
          "pos_embed": r(1, (224 // patch) ** 2 + 1, DIM, scale=0.5),
          "patch_embed.proj.weight": r(DIM, 3, patch, patch, scale=(3 * patch * patch) ** -0.5),
          "patch_embed.proj.bias": r(DIM, scale=0.1)}
    if open_clip:
        sd.update({"pos_drop.weight": 1 + r(DIM, scale=0.1), "pos_drop.bias": r(DIM, scale=0.1)})
    for i in range(DEPTH):
        b = f"blocks.{i}."
        sd.update({b + "norm1.weight": 1 + r(DIM, scale=0.1), b + "norm1.bias": r(DIM, scale=0.1),
                   b + "attn.qkv.weight": r(3 * DIM, DIM, scale=DIM ** -0.5),
                   b + "attn.qkv.bias": r(3 * DIM, scale=0.1),
                   b + "attn.proj.weight": r(DIM, DIM, scale=DIM ** -0.5),
                   b + "attn.proj.bias": r(DIM, scale=0.1),
                   b + "norm2.weight": 1 + r(DIM, scale=0.1), b + "norm2.bias": r(DIM, scale=0.1),
                   b + "mlp.fc1.weight": r(HIDDEN, DIM, scale=DIM ** -0.5),
                   b + "mlp.fc1.bias": r(HIDDEN, scale=0.1),
                   b + "mlp.fc2.weight": r(DIM, HIDDEN, scale=HIDDEN ** -0.5),
                   b + "mlp.fc2.bias": r(DIM, scale=0.1)})
    sd.update({"norm.weight": 1 + r(DIM, scale=0.1), "norm.bias": r(DIM, scale=0.1)})
    return sd


def write_variant(root, variant: str, seed: int = 0) -> dict:
    """The files of one variant in the official layout; returns what the reference needs."""
    patch, backbone, feature, _ = VARIANTS[variant]
    gen = torch.Generator().manual_seed(seed)
    sd = backbone_sd(patch, feature == "embedding", gen)
    path = root / backbone
    path.parent.mkdir(parents=True, exist_ok=True)
    proj = None
    if feature == "embedding":  # load_open_clip_as_dino: torch.load(...)['state_dict'], pop proj
        proj = torch.randn(DIM, 64, generator=gen) * DIM ** -0.5
        torch.save({"state_dict": {**sd, "proj": proj}}, path)
    else:  # DINO's hub checkpoint: a plain state_dict
        torch.save(sd, path)
    if feature == "cls":  # the release archive's DINO training checkpoint (dreamsim reads its
        # head for the unused projection): tiny tensors under the keys it reads
        torch.save({"student": {f"module.head.mlp.{k}.{w}": torch.zeros(2, 2) for k in (0, 2, 4)
                                for w in ("weight", "bias")}
                    | {"module.head.last_layer.weight": torch.zeros(2, 2)}},
                   root / "dino_vitb16_pretrain.pth")
    lora_dir = root / f"{variant}_single_lora"
    lora_dir.mkdir(parents=True)
    # peft 0.1.0 LoraConfig as get_peft_model leaves it for one target module (MergedLinear,
    # q and v enabled) and save_pretrained writes it
    (lora_dir / "adapter_config.json").write_text(json.dumps({
        "base_model_name_or_path": "", "bias": "none", "enable_lora": [True, False, True],
        "fan_in_fan_out": True, "inference_mode": True, "lora_alpha": ALPHA,
        "lora_dropout": 0.3, "merge_weights": False, "modules_to_save": None,
        "peft_type": "LORA", "r": RANK, "target_modules": ["qkv"], "task_type": None}))
    lora = {}
    adapter = {}
    for i in range(DEPTH):
        a = torch.randn(2 * RANK, DIM, generator=gen)  # MergedLinear lora_A: Linear(d, 2r)
        b = torch.randn(2 * DIM, RANK, 1, generator=gen) * 0.5  # Conv1d(2r, 2d, 1, groups=2)
        lora[i] = (a, b)
        # PeftModel(ViTModel(vit)).state_dict() names (the blocks under model.blocks and
        # blocks), prefixed 'base_model.model.' by dreamsim's training code on saving
        for prefix in ("base_model.model.base_model.model.model.",
                       "base_model.model.base_model.model."):
            adapter[f"{prefix}blocks.{i}.attn.qkv.lora_A.weight"] = a
            adapter[f"{prefix}blocks.{i}.attn.qkv.lora_B.weight"] = b
    torch.save(adapter, lora_dir / "adapter_model.bin")
    return {"sd": sd, "proj": proj, "lora": lora}


def reference_embed(files: dict, variant: str, x: torch.Tensor, use_lora: bool = True):
    """dreamsim 0.1.2 PerceptualModel.embed for one single-backbone variant, float64."""
    patch, _, feature, (mean, std) = VARIANTS[variant]
    sd = {k: v.double() for k, v in files["sd"].items()}
    x = (x.double() - torch.tensor(mean).double().view(1, 3, 1, 1)) \
        / torch.tensor(std).double().view(1, 3, 1, 1)
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch)
    t = t.flatten(2).transpose(1, 2)
    t = torch.cat([sd["cls_token"].expand(t.shape[0], -1, -1), t], dim=1) + sd["pos_embed"]
    eps = 1e-6
    if feature == "embedding":  # pos_drop is a LayerNorm; every LayerNorm eps = 1e-5
        eps = 1e-5
        t = F.layer_norm(t, (DIM,), sd["pos_drop.weight"], sd["pos_drop.bias"], eps)
    heads = DIM // 64
    scaling = ALPHA / RANK
    for i in range(DEPTH):
        b = f"blocks.{i}."
        h = F.layer_norm(t, (DIM,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], eps)
        qkv = h @ sd[b + "attn.qkv.weight"].T + sd[b + "attn.qkv.bias"]
        if use_lora:  # peft 0.1.0 MergedLinear, eval, not merged: + zero_pad(B(A(x))) * scaling
            a, conv = (m.double() for m in files["lora"][i])
            after_a = h @ a.T  # n x t x 2r
            after_b = F.conv1d(after_a.transpose(-2, -1), conv, groups=2).transpose(-2, -1)
            padded = torch.zeros_like(qkv)  # enable_lora [q, k, v] = [True, False, True]
            padded[..., :DIM], padded[..., 2 * DIM:] = after_b[..., :DIM], after_b[..., DIM:]
            qkv = qkv + padded * scaling
        n, tokens, _ = qkv.shape
        qkv = qkv.reshape(n, tokens, 3, heads, DIM // heads).permute(2, 0, 3, 1, 4)
        attn = (qkv[0] @ qkv[1].transpose(-2, -1) * (DIM // heads) ** -0.5).softmax(dim=-1)
        o = (attn @ qkv[2]).transpose(1, 2).reshape(n, tokens, DIM)
        t = t + o @ sd[b + "attn.proj.weight"].T + sd[b + "attn.proj.bias"]
        h = F.layer_norm(t, (DIM,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], eps)
        h = F.gelu(h @ sd[b + "mlp.fc1.weight"].T + sd[b + "mlp.fc1.bias"])
        t = t + h @ sd[b + "mlp.fc2.weight"].T + sd[b + "mlp.fc2.bias"]
        if feature == "cls" and i == 11:  # _extract_cls: block 11's output (hooked), token 0
            return t[:, 0]
    cls = F.layer_norm(t, (DIM,), sd["norm.weight"], sd["norm.bias"], eps)[:, 0]
    return cls @ files["proj"].double()  # _extract_embedding: model(x) @ proj


def reference_preprocess(img: Image.Image) -> torch.Tensor:
    """thingsvision DreamSim: Resize((224, 224), BICUBIC) on the PIL image, ToTensor."""
    array = np.asarray(img.convert("RGB").resize((224, 224), Image.BICUBIC), dtype=np.float64)
    return torch.from_numpy(array / 255.0).permute(2, 0, 1)


def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            for h, w in ((40, 64), (300, 200), (224, 224))]


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.mark.parametrize("model_id, variant, dim", [
    ("DreamSim_open_clip_vitb32", "open_clip_vitb32", 64),
    ("DreamSim_dino_vitb16", "dino_vitb16", DIM)])
def test_seed_dreamsim_entry_matches_dreamsim_embed(torch_home, one_thread, model_id, variant,
                                                   dim):
    from pysim.models import load_model, resolve

    entry = load_models(SEED / "models_config_with_alignment.json")[model_id]
    assert resolve(entry).cached() is False
    files = write_variant(torch_home / "dreamsim", variant)
    res = resolve(entry)
    assert res.cached() and res.loader == "dreamsim"
    model, preprocess, extractor = load_model(entry, offline=True)
    assert extractor.module_name == "model.mlp"
    imgs = images()
    batch = torch.stack([preprocess(img) for img in imgs])
    expected_in = torch.stack([reference_preprocess(img) for img in imgs])
    np.testing.assert_allclose(batch.numpy(), expected_in.numpy(), atol=1e-6)
    feats = extractor(batch)
    assert feats.shape == (len(imgs), dim)
    expected = reference_embed(files, variant, batch)
    np.testing.assert_allclose(feats.double().numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    # planted: without the LoRA adapter the features differ clearly
    plain = reference_embed(files, variant, batch, use_lora=False)
    assert (plain - expected).abs().max() > 1e-2
    prov = extractor.provenance
    assert prov["loader"] == "dreamsim" and prov["alignment"] == ""
    assert prov["weights_file"] == str(torch_home / "dreamsim" / f"{variant}_single_lora"
                                       / "adapter_model.bin")
    assert "mean" not in prov["preprocessing"] and prov["preprocessing"]["resize"] == [224, 224]


def test_dreamsim_missing_offline_is_one_line(torch_home):
    from pysim.models import check_weights, load_model

    models = load_models(SEED / "models_config_with_alignment.json")
    entry = models["DreamSim_dino_vitb16"]
    with pytest.raises(InputError, match="model 'DreamSim_dino_vitb16': weights not available "
                                         "offline: url:https://github.com/ssundaram21"):
        load_model(entry, offline=True)
    write_variant(torch_home / "dreamsim", "dino_vitb16")
    (torch_home / "dreamsim" / "checkpoints" / "dino_vitbase16_pretrain.pth").unlink()
    with pytest.raises(InputError, match="DreamSim_dino_vitb16 .*dino_vitbase16_pretrain.pth"):
        check_weights({"DreamSim_dino_vitb16": entry})


def test_dreamsim_unknown_variant_and_architecture(torch_home):
    from dataclasses import replace

    from pysim.models import resolve
    from pysim.models.resolve import architecture_modules

    entry = load_models(SEED / "models_config_with_alignment.json")["DreamSim_open_clip_vitb32"]
    with pytest.raises(InputError, match="DreamSim variant 'ensemble' is not implemented"):
        resolve(replace(entry, model_parameters={"variant": "ensemble"}))
    names, owner = architecture_modules(entry)  # random init on the meta device: ViT-B/32
    assert owner == "DreamSimModel" and "model.mlp" in names
    assert sum(n.startswith("model.vit.blocks.") and n.count(".") == 3 for n in names) == 12


@pytest.fixture(scope="module")
def official_packages(request, tmp_path_factory) -> Path:
    """dreamsim 0.1.2 (the version the study pins), peft 0.1.0 (its pin) and accelerate, unpacked
    from PyPI without dependencies into the pytest cache; skipped where PyPI is unreachable."""
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    target = Path(cache.mkdir("dreamsim-0.1.2-official")) if cache is not None \
        else tmp_path_factory.mktemp("dreamsim-0.1.2-official")
    if all((target / name).is_dir() for name in ("dreamsim", "peft", "accelerate")):
        return target
    download = target / "download"
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                           str(download), *OFFICIAL], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot download {', '.join(OFFICIAL)}: {proc.stderr.strip()[-200:]}")
    for path in download.iterdir():
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                wheel.extractall(target)
        elif path.name.endswith(".tar.gz"):
            with tarfile.open(path) as sdist:
                sdist.extractall(download, filter="data")
            shutil.copytree(download / path.name.removesuffix(".tar.gz") / "dreamsim",
                            target / "dreamsim")
    return target


@pytest.fixture(scope="module")
def official_run(official_packages, tmp_path_factory):
    """Both variants' files in one cache folder and dreamsim 0.1.2's output for them."""
    tmp = tmp_path_factory.mktemp("dreamsim_official")
    root = tmp / "torch" / "dreamsim"
    for variant in VARIANTS:
        write_variant(root, variant, seed=7)
    np.savez(tmp / "images.npz", **{f"{i:02d}": np.asarray(im) for i, im in enumerate(images())})
    proc = subprocess.run([sys.executable, str(HELPER), str(official_packages), str(root),
                           str(DIM), str(DEPTH), str(HIDDEN), str(tmp / "images.npz"), str(tmp),
                           *VARIANTS], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return tmp


@pytest.mark.parametrize("model_id, variant", [
    ("DreamSim_open_clip_vitb32", "open_clip_vitb32"), ("DreamSim_dino_vitb16", "dino_vitb16")])
def test_seed_dreamsim_entry_equals_dreamsim_012_own_code(official_run, monkeypatch, one_thread,
                                                         model_id, variant):
    from pysim.models import load_model

    monkeypatch.setenv("TORCH_HOME", str(official_run / "torch"))
    expected = np.load(official_run / f"{variant}.npy")
    entry = load_models(SEED / "models_config_with_alignment.json")[model_id]
    _, preprocess, extractor = load_model(entry, offline=True)
    feats = extractor(torch.stack([preprocess(img) for img in images()]))
    assert feats.shape == expected.shape
    np.testing.assert_allclose(feats.double().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_fetch_weights_downloads_dreamsim_files_and_a_glocal_transform(tmp_path, torch_home,
                                                                       monkeypatch):
    """The real download code, served from file:// URLs laid out like the release archives,
    DINO's checkpoint URL and the gLocal repository."""
    import dataclasses

    import pysim.models.alignment as alignment
    import pysim.models.dreamsim as dreamsim
    from pysim.models import check_weights
    from pysim.models.fetch import fetch_weights

    serve = tmp_path / "serve"
    serve.mkdir()
    for variant in VARIANTS:
        staged = tmp_path / "staged" / variant
        write_variant(staged, variant)
        with zipfile.ZipFile(serve / f"dreamsim_{variant}_checkpoint.zip", "w") as archive:
            for path in staged.rglob("*"):
                if path.is_file() and path.parent.name != "checkpoints":
                    archive.write(path, path.relative_to(staged).as_posix())
    dino = tmp_path / "staged" / "dino_vitb16" / "checkpoints" / "dino_vitbase16_pretrain.pth"
    monkeypatch.setattr(dreamsim, "RELEASE", serve.as_uri() + "/")
    monkeypatch.setitem(dreamsim.VARIANTS, "dino_vitb16", dataclasses.replace(
        dreamsim.VARIANTS["dino_vitb16"], backbone_url=dino.as_uri()))
    glocal = tmp_path / "glocal"
    from test_alignment import write_transform

    write_transform(glocal / "DreamSim_open_clip_vitb32" / "model.mlp" / "transform.npz", 64, 5)
    monkeypatch.setattr(alignment, "GLOCAL_URL", glocal.as_uri() + "/")
    seed = json.loads((SEED / "models_config_with_alignment.json").read_text())
    table = {"ds_gLocal": {**seed["DreamSim_open_clip_vitb32"], "alignment": "gLocal"},
             "ds_dino": seed["DreamSim_dino_vitb16"]}
    models = tmp_path / "models.json"
    models.write_text(json.dumps(table))
    with pytest.raises(InputError, match="ds_gLocal.*ds_dino|2 of 2"):
        check_weights(load_models(models))
    lines = list(fetch_weights(models, offline=False))
    assert lines[0].startswith("ds_gLocal: fetched gLocal transform file://")
    assert lines[1].startswith("ds_gLocal: fetched url:file://") and "ds_dino: fetched" in lines[2]
    root = torch_home / "dreamsim"
    assert (root / "open_clip_vitb32_single_lora" / "adapter_model.bin").is_file()
    assert (root / "checkpoints" / "dino_vitbase16_pretrain.pth").read_bytes() == \
        dino.read_bytes()
    assert (torch_home / "glocal" / "DreamSim_open_clip_vitb32" / "model.mlp"
            / "transform.npz").is_file()
    assert "weights: all 2 pretrained models available offline" in check_weights(
        load_models(models))
    assert list(fetch_weights(models, offline=True))[0].startswith("ds_gLocal: cached gLocal")
