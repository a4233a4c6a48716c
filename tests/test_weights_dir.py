"""One weights dir for every cache: variables, real cache layouts loaded offline, and the
offline weight checks of pysim-validate --check-weights and pysim-fetch-weights --offline."""

import dataclasses
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import FIXTURES, SEED, assert_bad_input, run_cli
from pysim.config import load_models
from pysim.errors import InputError
from pysim.models import check_weights, load_model
from pysim.models.caches import (
    OPENCLIP_CACHE_ENV,
    OPENCLIP_DEFAULT_CACHE,
    open_clip_cache_dir,
    use_weights_dir,
    weights_dir_env,
)
from weights_cache import perturbed_state, place_pretrained_weights

TABLE = FIXTURES / "pretrained_models.json"
IDS = ["timm_vit_tiny_hf", "openclip_vit_hf", "tv_resnet18_hub"]
CACHE_VARS = ("HF_HOME", "TORCH_HOME", OPENCLIP_CACHE_ENV, "HF_HUB_CACHE", "HF_HUB_OFFLINE",
              "PYSIM_WEIGHTS_DIR")


@pytest.fixture(autouse=True)
def restore_caches():
    """Undo use_weights_dir: the environment and huggingface_hub's import-time constants."""
    import importlib

    import huggingface_hub.constants

    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)
    importlib.reload(huggingface_hub.constants)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """The three fixture models' perturbed weights, placed once in a weights dir."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("weights")
    placed = place_pretrained_weights(TABLE, IDS, root)
    torch.set_num_threads(threads)
    return root, placed


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any cache variable (a subprocess sees only what a test gives)."""
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}
    return {**env, **extra}


def test_weights_dir_env_and_open_clip_default(tmp_path, monkeypatch):
    env = weights_dir_env(tmp_path)
    assert env == {"HF_HOME": str(tmp_path / "huggingface"), "TORCH_HOME": str(tmp_path / "torch"),
                   "PYSIM_OPENCLIP_CACHE": str(tmp_path / "open_clip")}
    monkeypatch.setenv(OPENCLIP_CACHE_ENV, str(tmp_path / "oc"))
    assert open_clip_cache_dir() == tmp_path / "oc"
    monkeypatch.delenv(OPENCLIP_CACHE_ENV)
    from open_clip import pretrained

    # the fallback is open_clip's own default folder
    source = inspect.getsource(pretrained.download_pretrained_from_url)
    assert f'os.path.expanduser("{OPENCLIP_DEFAULT_CACHE}")' in source
    assert open_clip_cache_dir() == Path(OPENCLIP_DEFAULT_CACHE).expanduser()


def test_use_weights_dir_moves_imported_huggingface_hub(tmp_path, monkeypatch):
    import torch.hub
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))  # would override HF_HOME
    use_weights_dir(tmp_path / "w")
    assert Path(constants.HF_HUB_CACHE) == tmp_path / "w" / "huggingface" / "hub"
    assert Path(torch.hub.get_dir()) == tmp_path / "w" / "torch" / "hub"
    assert open_clip_cache_dir() == tmp_path / "w" / "open_clip"
    assert "HF_HUB_CACHE" not in os.environ
    # a fresh process given only the three variables sees the same folders
    code = ("import torch.hub; from huggingface_hub import constants; "
            "from pysim.models.caches import open_clip_cache_dir; "
            "print(constants.HF_HUB_CACHE, torch.hub.get_dir(), open_clip_cache_dir())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=clean_env(**weights_dir_env(tmp_path / "w"))).stdout.split()
    assert out == [str(tmp_path / "w" / p) for p in ("huggingface/hub", "torch/hub", "open_clip")]


@pytest.mark.parametrize("model_id", IDS)
def test_placed_weights_load_offline_from_the_cache(weights_dir, model_id, one_thread):
    root, placed = weights_dir
    entry = load_models(TABLE)[model_id]
    use_weights_dir(root)
    model, _, extractor = load_model(entry, offline=True)
    expected, loaded = perturbed_state(entry), model.state_dict()
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    random_init = load_model(dataclasses.replace(entry, pretrained=False))[0].state_dict()
    assert not any(torch.equal(random_init[k], expected[k]) for k, _ in model.named_parameters())
    prov = extractor.provenance
    assert prov["weights_file"] == str(placed[model_id])
    assert prov["weights_hash_of"] == "file"
    assert prov["weights_sha256"] == hashlib.sha256(placed[model_id].read_bytes()).hexdigest()


def test_empty_weights_dir_fails_offline_naming_it(tmp_path, one_thread):
    use_weights_dir(tmp_path)
    entry = load_models(TABLE)["timm_vit_tiny_hf"]
    with pytest.raises(InputError, match=f"not available offline.*{tmp_path / 'huggingface/hub'}"):
        load_model(entry, offline=True)


def validate(weights_dir, models=TABLE, *extra):
    return run_cli("pysim-validate", "--models", models,
                   "--datasets", SEED / "webdatasets_w_in1k.txt",
                   "--metrics", SEED / "similarity_metric_config_local_global.json",
                   "--check-weights", "--weights-dir", weights_dir, *extra, env=clean_env())


def test_check_weights_passes_and_names_every_missing_model(weights_dir, tmp_path):
    root, placed = weights_dir
    proc = validate(root)
    assert proc.returncode == 0, proc.stderr
    assert "weights: all 3 pretrained models available offline" in proc.stdout
    assert proc.stdout.count("(cached)") == 3

    copy = tmp_path / "w"
    shutil.copytree(root, copy, symlinks=True)
    (copy / placed["tv_resnet18_hub"].relative_to(root)).unlink()
    shutil.rmtree(copy / "huggingface/hub/models--timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k")
    proc = validate(copy)
    assert_bad_input(proc, "weights missing for 2 of 3 models (offline)",
                     f"tv_resnet18_hub (url:https://download.pytorch.org/models/resnet18-f37072fd"
                     f".pth: not in {copy / 'torch/hub/checkpoints'})",
                     "timm_vit_tiny_hf (hf-hub:timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k: "
                     f"not in {copy / 'huggingface/hub'})")
    assert "openclip_vit_hf" not in proc.stderr


def test_check_weights_with_the_three_variables_only(weights_dir):
    """How a workflow task sees the weights dir: HF_HOME, TORCH_HOME, PYSIM_OPENCLIP_CACHE."""
    root, _ = weights_dir
    proc = run_cli("pysim-validate", "--models", TABLE,
                   "--datasets", SEED / "webdatasets_w_in1k.txt",
                   "--metrics", SEED / "similarity_metric_config_local_global.json",
                   "--check-weights", env=clean_env(**weights_dir_env(root)))
    assert proc.returncode == 0, proc.stderr
    assert "weights: all 3 pretrained models available offline" in proc.stdout


def test_check_weights_local_file_and_unresolvable(tmp_path):
    (tmp_path / "here.pth").write_bytes(b"")
    table = {"ok": {"model_name": "resnet18", "source": "torchvision", "module_name": "avgpool",
                    "weights": "here.pth"},
             "gone": {"model_name": "resnet18", "source": "torchvision", "module_name": "avgpool",
                      "weights": "gone.pth"},
             "bad": {"model_name": "no_such_arch", "source": "timm", "module_name": "norm"},
             "rand": {"model_name": "resnet18", "source": "torchvision",
                      "module_name": "avgpool", "pretrained": False}}
    path = tmp_path / "models.json"
    path.write_text(json.dumps(table))
    with pytest.raises(InputError) as err:
        check_weights(load_models(path), base_dir=tmp_path)
    assert str(err.value) == (
        f"weights missing for 1 of 4 models (offline): gone (file:{tmp_path / 'gone.pth'}: "
        "not found); 1 of 4 models cannot be resolved: bad (timm has no architecture "
        f"'no_such_arch' (timm {__import__('timm').__version__}))")
    del table["gone"], table["bad"]
    path.write_text(json.dumps(table))
    assert check_weights(load_models(path), base_dir=tmp_path).endswith(
        "weights: all 1 pretrained models available offline")


def test_fetch_weights_offline_reports_cached(weights_dir):
    root, _ = weights_dir
    proc = run_cli("pysim-fetch-weights", "--models", TABLE, "--offline", "--weights-dir", root,
                   env=clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "timm_vit_tiny_hf: cached hf-hub:timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k",
        "openclip_vit_hf: cached hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K/",
        "tv_resnet18_hub: cached url:https://download.pytorch.org/models/resnet18-f37072fd.pth"]


def test_weights_dir_option_defaults_to_pysim_weights_dir(tmp_path):
    (tmp_path / "a_file").write_text("")
    for cmd in (["pysim-validate", "--datasets", "x", "--metrics", "x"], ["pysim-fetch-weights"]):
        proc = run_cli(*cmd, "--models", TABLE,
                       env=clean_env(PYSIM_WEIGHTS_DIR=str(tmp_path / "a_file")))
        assert_bad_input(proc, "--weights-dir", "a_file", "is a file")
