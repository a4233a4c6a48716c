"""Streaming extraction: features leave the device every batch and are appended to the file,
so peak host memory does not grow with the number of images; the streamed file equals the
one the in-memory path wrote; float16 storage; CUDA out of memory -> exit 75 (test hook)."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import ROOT
from pysim.config import load_models
from pysim.data import SplitReader, build_loader, index_split
from pysim.demo import _add, _png
from pysim.feature_writer import FeatureWriter
from pysim.features.extract import EXIT_CUDA_OOM, TEST_OOM_ENV, ExtractOptions, extract
from pysim.io import SplitFeatures, read_attrs, read_features, write_features

DEMO_TABLE = ROOT / "assets" / "demo" / "models.json"
DATASET = "wds/demo_digits"
MODEL = "tv_resnet18"  # torchvision only: the cheapest import for a subprocess
OPTS = dict(num_workers=0, progress=False, threads=1)


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def _env():
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                   os.environ["PATH"]])}


def _extract_cmd(table, model_id, root, dataset, out, *extra):
    return [sys.executable, str(ROOT / "bin" / "pysim-extract"), "--models", str(table),
            "--model-id", model_id, "--dataset-root", str(root), "--dataset", dataset,
            "--out", str(out), "--device", "cpu", "--threads", "1", "--num-workers", "0",
            "--quiet", *map(str, extra)]


def _in_memory_reference(root, dataset, model_id, batch_size):
    """The pre-streaming path: every batch kept, concatenated at the end, write_features."""
    from pysim.models import load_model

    torch.manual_seed(0)
    _, preprocess, extractor = load_model(load_models(DEMO_TABLE)[model_id],
                                          base_dir=DEMO_TABLE.parent)
    ddir = root / f"wds_{dataset.split('/')[-1]}"
    splits = {}
    for split in ("train", "test"):
        index = index_split(ddir / split)
        chunks, positions = [], []
        with torch.inference_mode():
            for images, _, pos, _ in build_loader(SplitReader(index, preprocess), batch_size, 0):
                chunks.append(extractor(images).float())
                positions.append(pos)
        pos = torch.cat(positions).numpy()
        splits[split] = SplitFeatures(torch.cat(chunks).numpy(),
                                      np.array([index.label[i] for i in pos], dtype=np.int64),
                                      np.array([index.keys[i] for i in pos]))
    return splits


def _datasets(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda name, obj: out.__setitem__(name, (obj.dtype, obj[()]))
                     if isinstance(obj, h5py.Dataset) else None)
        return out, dict(f.attrs), list(f)


def test_streamed_file_equals_in_memory_file(demo_root, tmp_path, monkeypatch):
    import pysim.feature_writer as fw

    monkeypatch.setattr(fw, "CHUNK_BYTES", 5 * 512 * 4)  # 5-row chunks: many resizes
    monkeypatch.setattr(fw, "KEY_CHUNK", 7)
    opts = ExtractOptions(batch_size=13, **OPTS)
    streamed = extract(DEMO_TABLE, MODEL, demo_root, DATASET, tmp_path / "s.h5", opts)
    with h5py.File(streamed) as f:
        assert f["train/features"].chunks == (5, 512) and f["train/features"].maxshape[0] is None
    attrs = read_attrs(streamed)
    assert attrs["feature_dtype"] == "float32" and attrs["batch_size"] == 13
    attrs.pop("pysim_version")
    reference = tmp_path / "m.h5"
    write_features(reference, _in_memory_reference(demo_root, DATASET, MODEL, 13), attrs)
    (s_data, s_attrs, s_groups), (m_data, m_attrs, m_groups) = _datasets(streamed), \
        _datasets(reference)
    assert s_groups == m_groups == ["test", "train"]
    assert list(s_data) == list(m_data) and s_attrs.keys() == m_attrs.keys()
    for name in s_data:
        assert s_data[name][0] == m_data[name][0], name  # dtype (keys: UTF-8 strings)
        assert s_data[name][1].shape == m_data[name][1].shape, name
        assert np.array_equal(s_data[name][1], m_data[name][1]), name  # bit-identical
    for key in s_attrs:
        assert np.array_equal(s_attrs[key], m_attrs[key]), key
    for split in ("train", "test"):
        a, b = read_features(streamed, split), read_features(reference, split)
        assert np.array_equal(a.features, b.features) and a.features.dtype == np.float32
        assert np.array_equal(a.keys, b.keys) and np.array_equal(a.targets, b.targets)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5", "s.h5"]


def test_float16_file_is_half_the_bytes_and_rounds_the_float32_values(demo_root, tmp_path):
    f32 = extract(DEMO_TABLE, MODEL, demo_root, DATASET, tmp_path / "a.h5",
                  ExtractOptions(**OPTS))
    f16 = extract(DEMO_TABLE, MODEL, demo_root, DATASET, tmp_path / "b.h5",
                  ExtractOptions(feature_dtype="float16", **OPTS))
    assert read_attrs(f16)["feature_dtype"] == "float16"
    with h5py.File(f32) as a, h5py.File(f16) as b:
        for split in ("train", "test"):
            da, db = a[f"{split}/features"], b[f"{split}/features"]
            assert da.dtype == np.float32 and db.dtype == np.float16
            assert db.nbytes * 2 == da.nbytes
            assert db.id.get_storage_size() * 2 == da.id.get_storage_size()
            assert np.array_equal(db[()], da[()].astype(np.float16))
            assert np.array_equal(a[f"{split}/keys"][()], b[f"{split}/keys"][()])
    assert np.asarray(read_features(f16).features, dtype=np.float32).shape == \
        read_features(f32).features.shape


def test_writer_error_leaves_no_file_and_rejects_bad_dtype(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), FeatureWriter(tmp_path / "f.h5") as w:
        w.split("train").append(np.ones((2, 3), np.float32), [0, 1], ["a", "b"])
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="float32, float16"):
        FeatureWriter(tmp_path / "f.h5", dtype="float64")


def test_cuda_oom_exits_75_one_line_no_file_then_half_batch_succeeds(demo_root, tmp_path,
                                                                    monkeypatch):
    proc = subprocess.run(_extract_cmd(DEMO_TABLE, MODEL, demo_root, DATASET,
                                       tmp_path / "big.h5", "--batch-size", 16),
                          env={**_env(), TEST_OOM_ENV: "8"}, capture_output=True, text=True)
    assert proc.returncode == EXIT_CUDA_OOM == 75, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "CUDA out of memory" in lines[0] and "--batch-size 16" in lines[0]
    assert TEST_OOM_ENV in lines[0] and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no file, no temporary file
    # the real exception (what the workflow's retry sees as exit 75), then half the batch
    monkeypatch.setenv(TEST_OOM_ENV, "8")
    with pytest.raises(torch.cuda.OutOfMemoryError, match=TEST_OOM_ENV):
        extract(DEMO_TABLE, MODEL, demo_root, DATASET, tmp_path / "big.h5",
                ExtractOptions(batch_size=16, **OPTS))
    out = extract(DEMO_TABLE, MODEL, demo_root, DATASET, tmp_path / "half.h5",
                  ExtractOptions(batch_size=8, **OPTS))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.h5"]
    assert read_attrs(out)["batch_size"] == 8 and len(read_features(out, "test")) > 8
    help_text = subprocess.run(_extract_cmd(DEMO_TABLE, MODEL, demo_root, DATASET, "x")[:2]
                               + ["--help"], capture_output=True, text=True, env=_env()).stdout
    assert "75 CUDA out of memory" in " ".join(help_text.split())


def _wide_dataset(root: Path, n: int) -> None:
    """A one-shard dataset of n tiny random PNGs (16 px)."""
    sdir = root / "wds_wide" / "train"
    sdir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with tarfile.open(sdir / "0.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(n):
            _add(tar, f"s{i:07d}.png", _png(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)))
            _add(tar, f"s{i:07d}.cls", f"{i % 3}\n".encode())
    (sdir / "nshards.txt").write_text("1\n")


def test_peak_host_memory_does_not_grow_with_the_number_of_images(tmp_path):
    # resnet18's conv1 at 96 px: 64 x 48 x 48 = 147456 features (576 KiB) per image, so the
    # features of 4n images exceed those of n by > 200 MB; the batches stay small (16)
    table = tmp_path / "models.json"
    table.write_text('{"wide": {"model_name": "resnet18", "source": "torchvision", '
                     '"module_name": "conv1", "pretrained": false, "model_parameters": '
                     '{"weights": "DEFAULT", "input_size": 96}}}')
    sizes = {"n": 120, "4n": 480}
    procs = {}
    for name, n in sizes.items():
        _wide_dataset(tmp_path / name, n)
        cmd = _extract_cmd(table, "wide", tmp_path / name, "wds/wide", tmp_path / f"{name}.h5",
                           "--batch-size", 16)
        with open(tmp_path / f"{name}.err", "w") as err:
            procs[name] = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL,
                                           stderr=err)
    peak, feature_bytes = {}, {}
    for name, proc in procs.items():  # wait4: this child's own peak RSS (KiB on Linux)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0, (tmp_path / f"{name}.err").read_text()
        peak[name] = usage.ru_maxrss * 1024
        with h5py.File(tmp_path / f"{name}.h5") as f:
            feature_bytes[name] = f["train/features"].nbytes
            assert f["train/features"].shape == (sizes[name], 147456)
        (tmp_path / f"{name}.h5").unlink()
    more_features = feature_bytes["4n"] - feature_bytes["n"]
    growth = peak["4n"] - peak["n"]
    print(f"peak RSS n={sizes['n']}: {peak['n'] / 2**20:.0f} MiB, 4n={sizes['4n']}: "
          f"{peak['4n'] / 2**20:.0f} MiB; features {feature_bytes['n'] / 2**20:.0f} vs "
          f"{feature_bytes['4n'] / 2**20:.0f} MiB")
    assert more_features > 200e6
    assert growth < 0.15 * more_features, (peak, feature_bytes)


def test_nonfinite_and_float16_overflow_are_input_errors(demo_root):
    from torchvision.transforms import ToTensor

    from pysim.errors import InputError
    from pysim.features.extract import extract_split

    split = demo_root / "wds_demo_digits" / "test"
    opts16 = ExtractOptions(feature_dtype="float16", batch_size=16, **OPTS)
    with pytest.raises(InputError, match="beyond the float16 range.*--feature-dtype float32"):
        extract_split(lambda x: x.flatten(1)[:, :4] * 1e6 + 7e4, ToTensor(), split, opts16)
    with pytest.raises(InputError, match=r"\d+ samples have NaN/inf features"):
        extract_split(lambda x: x.flatten(1)[:, :4] / 0.0, ToTensor(), split, opts16)
    feats, skipped = extract_split(lambda x: x.flatten(1)[:, :4], ToTensor(), split, opts16)
    assert feats.features.dtype == np.float16 and feats.features.shape[1] == 4 and skipped == 0
    assert list(feats.keys) == index_split(split).keys
