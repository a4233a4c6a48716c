"""`pysim-extract --decode gpu` on the CPU: the tensor path (torchvision's JPEG decoder + the
model's transform as tensor ops) against the PIL path it must agree with.

The demo datasets hold PNGs of 32 x 32 px, so the tests write a JPEG WebDataset from the demo
textures at varied sizes (the models' resize and crop then do real work), with one PNG, one
WebP and one grayscale JPEG sample among them. Checks: the preprocessed inputs of the two
paths differ by little per pixel (printed; run pytest -s to see), the features of demo models
from both paths have linear CKA >= 0.99 (computed here in float64 from the definition), and a
transform step with no tensor equivalent is bad input (exit 2, one line naming it).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_bad_input, run_cli
from pysim.config import load_models
from pysim.data import SplitReader, index_split
from pysim.data.decode import (
    EncodedSplitReader,
    TensorCollate,
    TensorPreprocess,
    decode_images,
    tensor_preprocess,
)
from pysim.errors import InputError
from pysim.features.extract import ExtractOptions, extract
from pysim.io import read_attrs, read_features

ROOT = Path(__file__).parents[1]
DEMO_TABLE = ROOT / "assets" / "demo" / "models.json"
DATASET = "wds/demo_jpeg"
SIZES = [(40, 52), (48, 48), (61, 45), (36, 70), (64, 64)]  # (h, w): resize + crop do work
# one demo model per source of preprocessing: timm (bicubic), torchvision weights' preset
# (bilinear), open_clip (bicubic + convert-RGB step)
MODELS = ["timm_vit_tiny", "tv_resnet18", "openclip_tiny_rn"]
OPTS = dict(num_workers=0, progress=False, threads=1, batch_size=32)

pytestmark = [pytest.mark.usefixtures("restore_torch_threads"),
              # torchvision 0.29 deprecates its codecs for TorchCodec, warning on every call
              pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities"
                                         ":DeprecationWarning")]


def _encode(img: np.ndarray, fmt: str, **kwargs) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _jpeg_split(src: Path, dst: Path, extras: bool) -> None:
    """Re-encode a demo split as JPEGs of varied sizes (and, with extras, a PNG, a WebP and a
    grayscale JPEG sample), same keys, labels and shards."""
    from PIL import Image

    dst.mkdir(parents=True)
    n = 0
    for shard in sorted(src.glob("*.tar")):
        with tarfile.open(shard) as tin, tarfile.open(dst / shard.name, "w") as tout:
            for member in tin.getmembers():
                data = tin.extractfile(member).read()
                key, ext = member.name.split(".", 1)
                if ext == "cls":
                    _add(tout, member.name, data)
                    continue
                h, w = SIZES[n % len(SIZES)]
                img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")
                                 .resize((w, h), Image.BICUBIC))
                kind = n % 40 if extras else -1
                if kind == 7:
                    _add(tout, f"{key}.png", _encode(img, "PNG"))
                elif kind == 13:
                    _add(tout, f"{key}.webp", _encode(img, "WEBP", quality=90))
                elif kind == 21:
                    _add(tout, f"{key}.jpg", _encode(img.mean(2).astype(np.uint8), "JPEG"))
                else:
                    _add(tout, f"{key}.jpg", _encode(img, "JPEG", quality=90,
                                                     subsampling=n % 3))
                n += 1
    (dst / "nshards.txt").write_text(f"{len(list(dst.glob('*.tar')))}\n")


@pytest.fixture(scope="module")
def jpeg_root(demo_root, tmp_path_factory) -> Path:
    """wds_demo_jpeg: the demo textures as JPEGs of varied sizes, a few PNG/WebP among them."""
    src = demo_root / "wds_demo_textures"
    for split in ("train", "test"):
        assert all(p.suffix == ".png" for p in _members(src / split)), "demo images not PNG"
    root = tmp_path_factory.mktemp("jpeg")
    _jpeg_split(src / "train", root / "wds_demo_jpeg" / "train", extras=True)
    _jpeg_split(src / "test", root / "wds_demo_jpeg" / "test", extras=False)
    return root


def _members(sdir: Path) -> list[Path]:
    names = []
    for shard in sdir.glob("*.tar"):
        with tarfile.open(shard) as tar:
            names.extend(Path(m.name) for m in tar.getmembers() if not m.name.endswith(".cls"))
    return names


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) in float64: ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) of
    the column-centred features."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _preprocess(model_id: str):
    from pysim.models import load_model

    _, preprocess, _ = load_model(load_models(DEMO_TABLE)[model_id], base_dir=DEMO_TABLE.parent,
                                  offline=False)
    return preprocess


def _inputs_both_paths(root: Path, preprocess):
    """Preprocessed inputs of every train sample by the PIL path and by the tensor path."""
    import torch

    index = index_split(root / "wds_demo_jpeg" / "train")
    pil = SplitReader(index, preprocess)
    ref = torch.stack([pil[i][0] for i in range(len(index))])
    enc = EncodedSplitReader(index)
    collate = TensorCollate(tensor_preprocess(preprocess), "cpu")
    images, _, pos, bad = collate([enc[i] for i in range(len(index))])
    assert not bad and pos.tolist() == list(range(len(index)))
    return ref, images


@pytest.mark.parametrize("model_id", MODELS)
def test_tensor_path_inputs_match_pil_path(jpeg_root, model_id, one_thread):
    ref, images = _inputs_both_paths(jpeg_root, _preprocess(model_id))
    assert images.shape == ref.shape and images.dtype == ref.dtype
    diff = (images - ref).abs()
    print(f"\n{model_id}: preprocessed input |tensor - PIL| in normalised units over "
          f"{tuple(ref.shape)}: max {diff.max():.4f}, mean {diff.mean():.6f}, "
          f"share of values differing {(diff > 1e-6).float().mean():.4f}")
    # the JPEG decoders agree bit for bit on the CPU (both libjpeg-turbo); the resize differs by
    # rounding: at most a few uint8 levels (1 level = 1/255/std ~ 0.017 normalised units)
    assert diff.mean() < 0.01
    assert diff.max() < 0.15


@pytest.mark.parametrize("model_id", MODELS)
def test_features_of_both_paths_have_cka_above_099(jpeg_root, tmp_path, model_id):
    cpu = extract(DEMO_TABLE, model_id, jpeg_root, DATASET, tmp_path / "cpu.h5",
                  ExtractOptions(decode="cpu", **OPTS))
    gpu = extract(DEMO_TABLE, model_id, jpeg_root, DATASET, tmp_path / "gpu.h5",
                  ExtractOptions(decode="gpu", **OPTS))
    assert read_attrs(cpu)["decode"] == "cpu" and read_attrs(gpu)["decode"] == "gpu"
    assert any(s.startswith("resize(") for s in read_attrs(gpu)["decode_steps"])
    for split in ("train", "test"):
        a, b = read_features(cpu, split), read_features(gpu, split)
        assert list(a.keys) == list(b.keys) and np.array_equal(a.targets, b.targets)
        cka = linear_cka(a.features, b.features)
        print(f"\n{model_id} {split}: linear CKA(PIL path, tensor path) = {cka:.8f} "
              f"over {a.features.shape}")
        assert cka >= 0.99


def test_linear_cka_reference_values():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(x, 3 * x @ q + 1) == pytest.approx(1.0)  # invariant: rotation, scale, shift
    assert linear_cka(x, rng.normal(size=(50, 8))) < 0.5


def test_workers_and_batches_do_not_change_the_tensor_path(jpeg_root, tmp_path):
    one = extract(DEMO_TABLE, "tv_resnet18", jpeg_root, DATASET, tmp_path / "a.h5",
                  ExtractOptions(decode="gpu", **OPTS))
    opts = {**OPTS, "num_workers": 2, "batch_size": 7}
    two = extract(DEMO_TABLE, "tv_resnet18", jpeg_root, DATASET, tmp_path / "b.h5",
                  ExtractOptions(decode="gpu", **opts))
    for split in ("train", "test"):
        a, b = read_features(one, split), read_features(two, split)
        assert list(a.keys) == list(b.keys)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-4, atol=1e-5)


def test_mixed_sizes_in_one_batch_equal_one_by_one():
    import torch

    from pysim.models.loaders import imagenet_transform

    pipeline = tensor_preprocess(imagenet_transform(32, 40))
    gen = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
              for h, w in [(50, 60), (41, 41), (50, 60), (90, 33)]]
    batch = pipeline(images)
    assert batch.shape == (4, 3, 32, 32)
    for k, image in enumerate(images):
        assert torch.equal(batch[k], pipeline([image])[0])


def test_v2_tensor_transform_is_reproduced_exactly():
    """imagenet_transform (hub, ssl, ALIGN models) already resizes a uint8 tensor: no PIL."""
    import torch
    from PIL import Image

    from pysim.models.loaders import imagenet_transform

    transform = imagenet_transform(24, 28)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (45, 37, 3), dtype=np.uint8)
    ref = transform(Image.fromarray(img))
    out = tensor_preprocess(transform)([torch.from_numpy(img).permute(2, 0, 1).contiguous()])
    assert torch.equal(out[0], ref)


def test_corrupt_jpeg_is_skipped_as_on_the_pil_path(jpeg_root, tmp_path):
    root = tmp_path / "root"
    src = jpeg_root / "wds_demo_jpeg"
    shard = src / "test" / "0.tar"
    (root / "wds_demo_jpeg" / "test").mkdir(parents=True)
    for split in ("train",):
        import shutil

        shutil.copytree(src / split, root / "wds_demo_jpeg" / split)
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    bad_key = members[6][0].name.split(".")[0]
    with tarfile.open(root / "wds_demo_jpeg" / "test" / "0.tar", "w") as tar:
        for member, data in members:
            if member.name == f"{bad_key}.jpg":
                data = data[:len(data) // 2]  # a truncated JPEG
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    (root / "wds_demo_jpeg" / "test" / "nshards.txt").write_text("1\n")
    outs = {d: extract(DEMO_TABLE, "tv_resnet18", root, DATASET, tmp_path / f"{d}.h5",
                       ExtractOptions(decode=d, **OPTS)) for d in ("cpu", "gpu")}
    keys = {d: list(read_features(out, "test").keys) for d, out in outs.items()}
    assert keys["cpu"] == keys["gpu"] and bad_key not in keys["gpu"]
    assert read_attrs(outs["gpu"])["n_skipped_test"] == 1
    with pytest.raises(InputError, match=bad_key):
        extract(DEMO_TABLE, "tv_resnet18", root, DATASET, tmp_path / "s.h5",
                ExtractOptions(decode="gpu", strict=True, **OPTS))


def test_decode_images_fallback_and_reason():
    import torch

    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    good = torch.frombuffer(bytearray(_encode(img, "JPEG", quality=95)), dtype=torch.uint8)
    broken = torch.frombuffer(bytearray(b"\xff\xd8\xff" + b"x" * 40), dtype=torch.uint8)
    raw = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    out = decode_images([good, broken, raw], "cpu")
    assert out[0].shape == (3, 20, 30) and out[0].dtype == torch.uint8
    assert isinstance(out[1], str) and out[1]
    assert torch.equal(out[2], raw)


@pytest.mark.parametrize("build, named", [
    ("lanczos", "Resize"), ("lambda", "Lambda"), ("random_crop", "RandomResizedCrop"),
    ("no_tensor", "ToTensor"), ("timm_border", "ResizeKeepRatio")])
def test_untranslatable_steps_are_named(build, named):
    import torchvision.transforms as T

    if build == "timm_border":
        from timm.data import create_transform

        transform = create_transform(input_size=32, crop_mode="border", crop_pct=0.9)
    else:
        transform = {
            "lanczos": T.Compose([T.Resize(32, interpolation=T.InterpolationMode.LANCZOS),
                                  T.ToTensor()]),
            "lambda": T.Compose([T.Lambda(lambda x: x), T.ToTensor()]),
            "random_crop": T.Compose([T.RandomResizedCrop(32), T.ToTensor()]),
            "no_tensor": T.Compose([T.Resize(32), T.CenterCrop(32)]),
        }[build]
    with pytest.raises(InputError, match=named) as info:
        tensor_preprocess(transform)
    assert "\n" not in str(info.value) and "--decode cpu" in str(info.value)


def test_translated_steps_of_the_demo_models():
    steps = {m: tensor_preprocess(_preprocess(m)).describe() for m in MODELS}
    assert steps["timm_vit_tiny"][:3] == ["resize([32], bicubic, antialias=True)",
                                          "center_crop([32, 32])", "to_float(/255)"]
    assert steps["tv_resnet18"][0] == "resize([32], bilinear, antialias=True)"
    assert all(s[-1].startswith("normalize(") for s in steps.values())
    assert isinstance(tensor_preprocess(_preprocess("tv_resnet18")), TensorPreprocess)


def test_cli_decode_gpu_on_cpu_and_untranslatable_step_exit_2(jpeg_root, tmp_path):
    out = tmp_path / "f.h5"
    proc = run_cli("pysim-extract", "--models", DEMO_TABLE, "--model-id", "tv_resnet18",
                   "--dataset-root", jpeg_root, "--dataset", DATASET, "--out", out,
                   "--device", "cpu", "--decode", "gpu", "--num-workers", "0", "--quiet",
                   "--threads", "1", check=True)
    assert read_attrs(out)["decode"] == "gpu", proc.stdout
    entry = json.loads(DEMO_TABLE.read_text())["openclip_tiny_rn"]
    entry["model_parameters"]["model_kwargs"]["image_resize_mode"] = "longest"
    table = tmp_path / "models.json"
    table.write_text(json.dumps({"clip_longest": entry}))
    bad = tmp_path / "bad.h5"
    proc = run_cli("pysim-extract", "--models", table, "--model-id", "clip_longest",
                   "--dataset-root", jpeg_root, "--dataset", DATASET, "--out", bad,
                   "--device", "cpu", "--decode", "gpu", "--quiet", "--threads", "1")
    assert_bad_input(proc, "--decode gpu", "ResizeKeepRatio", "--decode cpu")
    assert not bad.exists()
    usage = " ".join(run_cli("pysim-extract", "--help").stdout.split())
    assert "--decode [cpu|gpu]" in usage and "non-JPEG samples (png, webp)" in usage


@pytest.mark.slow
def test_workflow_decode_param_reaches_the_extraction(tmp_path):
    from nf_helpers import demo_run_args, latest_trace, read_trace, run_nf, write_inputs

    inputs = write_inputs(tmp_path / "inputs", ("timm_vit_tiny", "tv_resnet18"))
    proc = run_nf(demo_run_args(inputs) + ["--decode", "gpu", "--skip_probes"], cwd=tmp_path,
                  timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [r for r in read_trace(latest_trace(tmp_path / "results"))
            if r["process"] == "EXTRACT_FEATURES"]
    assert len(rows) == 4
    for row in rows:
        assert "--decode gpu" in (Path(row["workdir"]) / ".command.sh").read_text()
    features = list((tmp_path / "results" / "features").glob("*/*.h5"))
    assert len(features) == 4
    assert all(read_attrs(path)["decode"] == "gpu" for path in features)
