"""Reading only some rows of a features file (issue 13): `read_features(rows=...)` and the
similarity stage, which reads only the subset's rows of every model's train split."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from memory_measure import peak_memory

import pysim.io as pio
from pysim.errors import InputError
from pysim.io import SplitFeatures, read_features, split_digests, write_features

ROOT = Path(__file__).resolve().parents[1]
METRICS = ROOT / "tests" / "fixtures" / "seed" / "similarity_metric_config_local_global.json"

def write_raw(path: Path, feats: np.ndarray, targets: np.ndarray, keys, attrs=None,
              **layout) -> Path:
    """A features file with the given dataset layout (chunks, compression) for the features,
    targets and keys."""
    with h5py.File(path, "w") as f:
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        g = f.create_group("train")
        g.create_dataset("features", data=feats, **layout)
        small = {k: v for k, v in layout.items() if k not in ("chunks", "dtype")}
        if "chunks" in layout:
            small["chunks"] = (min(100, len(targets)),)
        g.create_dataset("targets", data=targets, **small)
        g.create_dataset("keys", data=[str(k) for k in keys], dtype=h5py.string_dtype(), **small)
    return path


LAYOUTS = {
    "contiguous": {},
    "chunked": {"chunks": (64, 16)},
    "chunked-gzip": {"chunks": (50, 16), "compression": "gzip"},
    "float16-chunked": {"chunks": (64, 16), "dtype": np.float16},
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_rows_read_equals_full_read_then_index(tmp_path, layout, monkeypatch):
    rng = np.random.default_rng(0)
    n, d = 3000, 16
    feats = rng.standard_normal((n, d)).astype(np.float32)
    targets, keys = rng.integers(0, 9, n), np.array([f"img/{i:05d}.jpg" for i in range(n)])
    path = write_raw(tmp_path / "f.h5", feats, targets, keys, **LAYOUTS[layout])
    stored = feats.astype(LAYOUTS[layout].get("dtype", np.float32))
    # small blocks, so that one read mixes whole-block, single-row and selected-row reads
    monkeypatch.setattr(pio, "READ_BLOCK_BYTES", 200 * d * stored.itemsize)
    full = read_features(path)
    assert full.features.dtype == np.float32  # float16 on disk is upcast on read
    assert np.array_equal(full.features, stored.astype(np.float32))
    assert np.array_equal(full.targets, targets) and np.array_equal(full.keys, keys)
    kept = read_features(path, dtype=None)
    assert kept.features.dtype == stored.dtype and np.array_equal(kept.features, stored)
    sparse = np.sort(rng.choice(n, 40, replace=False))
    dense = np.sort(rng.choice(n, 2500, replace=False))
    mixed = np.concatenate([np.arange(0, 200), [450], np.arange(1000, 1400, 7), [n - 1]])
    for rows in ([], [0], [n - 1], sparse, dense, mixed, np.arange(n)):
        part = read_features(path, rows=rows)
        rows = np.asarray(rows, dtype=np.int64)
        assert part.features.dtype == np.float32 and part.features.shape == (len(rows), d)
        assert np.array_equal(part.features, full.features[rows])
        assert np.array_equal(part.targets, full.targets[rows])
        assert np.array_equal(part.keys.astype(str), full.keys[rows])
    assert np.array_equal(read_features(path, rows=sparse, dtype=None).features, stored[sparse])
    none = read_features(path, rows=sparse, load_features=False)
    assert none.features.shape == (len(sparse), 0) and np.array_equal(none.keys, keys[sparse])
    for bad in ([3, 2], [1, 1], [-1], [n], [[1, 2]]):
        with pytest.raises(ValueError, match="rows must"):
            read_features(path, rows=bad)


@pytest.mark.parametrize("layout", ["contiguous", "chunked"])
def test_rows_read_reads_only_those_rows(tmp_path, layout):
    """Bytes read for a sparse selection follow the selection, not the file (no sieve buffer
    or whole-chunk reads)."""
    if not Path("/proc/self/io").exists():
        pytest.skip("needs /proc/self/io")
    n, d = 40_000, 256
    feats = np.random.default_rng(1).random((n, d), dtype=np.float32)
    layout_kw = {"chunks": (64, d)} if layout == "chunked" else {}
    path = write_raw(tmp_path / "f.h5", feats, np.zeros(n, np.int64), np.arange(n), **layout_kw)
    rows = np.arange(7, n, 200)  # 200 rows, one every 200 (one per 64-row chunk at most)

    def rchar():
        with open("/proc/self/io") as f:
            return next(int(x.split()[1]) for x in f if x.startswith("rchar:"))

    before = rchar()
    part = read_features(path, rows=rows)
    read = rchar() - before
    assert np.array_equal(part.features, feats[rows])
    # the features' bytes exactly, plus per row its key's global-heap collection (~4 KiB) and
    # a fixed cost for the file's metadata; a full read (or 64 KiB sieve reads) is 40 MB
    wanted = len(rows) * (d * 4 + (8 << 10)) + (256 << 10)
    assert read < wanted < feats.nbytes / 10, (read, wanted, feats.nbytes)


def test_split_digests_compare_keys_and_targets(tmp_path):
    n = 1000
    keys = np.array([f"k{i}" for i in range(n)])
    feats = np.zeros((n, 2), np.float32)
    targets = np.arange(n) % 5
    a = write_raw(tmp_path / "a.h5", feats, targets, keys)
    b = write_raw(tmp_path / "b.h5", feats + 1, targets, keys, chunks=(10, 2))
    c = write_raw(tmp_path / "c.h5", feats, targets, np.roll(keys, 1))
    e = write_raw(tmp_path / "e.h5", feats, np.roll(targets, 1), keys)
    da, db = split_digests(a, block=64), split_digests(b, block=1000)
    assert da == db and da[0] == n
    assert split_digests(c)[2] != da[2] and split_digests(c)[1] == da[1]
    assert split_digests(e)[1] != da[1] and split_digests(e)[2] == da[2]
    with pytest.raises(InputError, match="no 'test' split"):
        split_digests(a, "test")


def _big_model(path: Path, n: int, d: int, seed: int) -> Path:
    feats = np.random.default_rng(seed).random((n, d), dtype=np.float32)
    keys = np.char.add("train/", np.arange(n).astype(str))
    write_features(path, {"train": SplitFeatures(feats, np.arange(n) % 10, keys)},
                   {"model_id": path.stem, "dataset": "big", "module_name": "head"})
    return path


def _subset(path: Path, n: int, size: int) -> Path:
    indices = np.sort(np.random.default_rng(0).choice(n, size, replace=False)).tolist()
    path.write_text(json.dumps({"dataset": "big", "split": "train", "seed": 0,
                                "max_samples": size, "n_total": n, "indices": indices}))
    return path


def test_similarity_memory_and_reads_follow_the_subset_not_the_split(tmp_path):
    """Two models with a 200 k x 256 train split (~200 MB a file), a 300-sample subset: the
    stage's peak memory grows by far less than one file, and it reads far less than one file."""
    n_big, n_tiny, d, size = 200_000, 400, 256, 300
    tiny = [_big_model(tmp_path / f"tiny_{m}.h5", n_tiny, d, i) for i, m in enumerate("ab")]
    big = [_big_model(tmp_path / f"big_{m}.h5", n_big, d, i) for i, m in enumerate("ab")]

    def command(paths, subset, out):
        return [str(ROOT / "bin" / "pysim-similarity"), "--metrics", str(METRICS),
                "--device", "cpu", "--subset", str(subset), "--out", str(out),
                *[a for p in paths for a in ("--features", str(p))]]

    result = peak_memory(command(tiny, _subset(tmp_path / "tiny.json", n_tiny, size),
                                 tmp_path / "tiny_sim.h5"),
                         command(big, _subset(tmp_path / "big.json", n_big, size),
                                 tmp_path / "big_sim.h5"))
    file_size = big[0].stat().st_size
    assert file_size > 200e6
    # before: +250 MB (a whole train matrix at a time) and 430 MB read; now ~0 and ~35 MB
    # (the keys and targets of both splits, for the same-samples check)
    assert result["extra"] < file_size / 3, (result, file_size)
    assert result["read"] < file_size / 3, (result, file_size)
    assert (tmp_path / "big_sim.h5").exists()
