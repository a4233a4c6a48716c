"""Feature extraction on the demo data: every demo model, file layout, shard order, fp32
determinism, corrupt samples, and the pysim-extract entry point (success, offline error)."""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from pysim.config import load_models
from pysim.data import index_split
from pysim.errors import InputError
from pysim.features.extract import ExtractOptions, extract
from pysim.io import read_attrs, read_features

ROOT = Path(__file__).parents[1]
DEMO_TABLE = ROOT / "assets" / "demo" / "models.json"
DATASET = "wds/demo_digits"
OPTS = ExtractOptions(num_workers=0, progress=False, threads=1)


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.mark.parametrize("model_id", list(load_models(DEMO_TABLE)))
def test_every_demo_model_extracts_in_shard_order(demo_root, tmp_path, model_id):
    out = extract(DEMO_TABLE, model_id, demo_root, DATASET, tmp_path / "f.h5", OPTS)
    attrs = read_attrs(out)
    assert attrs["model_id"] == model_id and attrs["dataset"] == DATASET
    assert attrs["module_name"] == load_models(DEMO_TABLE)[model_id].module_name
    assert attrs["pysim_version"] and attrs["weights_sha256"] and attrs["package_versions"]
    assert attrs["feature_dtype"] == "float32" and attrs["batch_size"] == OPTS.batch_size
    assert {"resize", "crop", "mean", "std"} <= set(attrs["preprocessing"])
    assert attrs["architecture_source"] and attrs["transform_source"]
    assert attrs["transform"].startswith(("Compose(", "ImageClassification("))
    if load_models(DEMO_TABLE)[model_id].source == "ssl":  # the study's code and transform
        assert attrs["architecture_source"].startswith("pysim ReferenceViT on timm")
        assert attrs["transform_source"].startswith("thingsvision 2.6.10 default")
        assert "Resize(size=32, interpolation=bilinear" in attrs["transform"]
    for split in ("train", "test"):
        feats = read_features(out, split)
        index = index_split(demo_root / "wds_demo_digits" / split)
        assert list(feats.keys) == index.keys
        assert feats.targets.tolist() == index.label
        assert feats.features.dtype == np.float32 and np.isfinite(feats.features).all()
        assert feats.features.shape[0] == len(index) and feats.features.std(0).max() > 0
    assert not list(tmp_path.glob(".*tmp"))


def test_fp32_cpu_runs_are_identical_across_worker_counts(demo_root, tmp_path):
    a = extract(DEMO_TABLE, "timm_vit_tiny", demo_root, "wds/demo_shapes", tmp_path / "a.h5", OPTS)
    opts = ExtractOptions(num_workers=2, progress=False, threads=1)
    b = extract(DEMO_TABLE, "timm_vit_tiny", demo_root, "wds/demo_shapes", tmp_path / "b.h5", opts)
    for split in ("train", "test"):
        fa, fb = read_features(a, split), read_features(b, split)
        assert np.array_equal(fa.features, fb.features)
        assert np.array_equal(fa.keys, fb.keys)


def test_corrupt_sample_skipped_and_recorded_or_strict(demo_root, tmp_path):
    import tarfile

    root = tmp_path / "root"
    shutil.copytree(demo_root / "wds_demo_digits", root / "wds_demo_digits")
    shard = root / "wds_demo_digits" / "test" / "0.tar"
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    bad_key = members[4][0].name.split(".")[0]
    with tarfile.open(shard, "w") as tar:
        for member, data in members:
            if member.name == f"{bad_key}.png":
                data = data[:40]  # a truncated PNG: header fine, pixels missing
                member.size = len(data)
            tar.addfile(member, __import__("io").BytesIO(data))
    out = extract(DEMO_TABLE, "tv_resnet18", root, DATASET, tmp_path / "f.h5", OPTS)
    test = read_features(out, "test")
    assert read_attrs(out)["n_skipped_test"] == 1
    assert bad_key not in set(test.keys) and len(test) == len(members) // 2 - 1
    strict = ExtractOptions(num_workers=0, progress=False, threads=1, strict=True)
    with pytest.raises(InputError, match=bad_key):
        extract(DEMO_TABLE, "tv_resnet18", root, DATASET, tmp_path / "g.h5", strict)
    assert not (tmp_path / "g.h5").exists()


def test_dataset_without_test_split_writes_train_only(demo_root, tmp_path):
    from pysim.io import has_split

    shutil.copytree(demo_root / "wds_demo_shapes" / "train", tmp_path / "wds_demo_shapes" / "train")
    out = extract(DEMO_TABLE, "mae_vit_base_p16", tmp_path, "wds/demo_shapes", tmp_path / "f.h5",
                  OPTS)
    assert has_split(out, "train") and not has_split(out, "test")


def test_bad_inputs_are_input_errors(demo_root, tmp_path):
    with pytest.raises(InputError, match="no model 'nope'"):
        extract(DEMO_TABLE, "nope", demo_root, DATASET, tmp_path / "f.h5", OPTS)
    with pytest.raises(InputError, match="directory .*wds_missing not found"):
        extract(DEMO_TABLE, "tv_resnet18", demo_root, "wds/missing", tmp_path / "f.h5", OPTS)


def _cli(*args, env=None):
    bindir = str(ROOT / "bin")
    env = {**os.environ, **(env or {}),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), bindir,
                                    os.environ["PATH"]])}
    return run_cli(*args, env=env)


def test_cli_extract_matches_library(demo_root, tmp_path):
    model_id = "tv_resnet18"  # torchvision only: the cheapest import for a subprocess
    proc = _cli("pysim-extract", "--models", str(DEMO_TABLE), "--model-id", model_id,
                "--dataset-root", str(demo_root), "--dataset", DATASET, "--out",
                str(tmp_path / "cli.h5"), "--device", "cpu", "--threads", "1",
                "--num-workers", "1")
    assert proc.returncode == 0, proc.stderr
    lib = extract(DEMO_TABLE, model_id, demo_root, DATASET, tmp_path / "lib.h5", OPTS)
    assert np.array_equal(read_features(tmp_path / "cli.h5").features,
                          read_features(lib).features)


def test_cli_offline_missing_weights_exit_2_one_line(demo_root, tmp_path):
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"r18": {"model_name": "resnet18", "source": "torchvision",
                                          "module_name": "avgpool",
                                          "model_parameters": {"weights": "IMAGENET1K_V1"}}}))
    proc = _cli("pysim-extract", "--models", str(models), "--model-id", "r18",
                "--dataset-root", str(demo_root), "--dataset", DATASET, "--out",
                str(tmp_path / "f.h5"), env={"HF_HUB_OFFLINE": "1",
                                             "TORCH_HOME": str(tmp_path / "torch")})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not available offline" in lines[0]
    assert "resnet18-f37072fd.pth" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "f.h5").exists()
