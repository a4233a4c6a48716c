"""WebDataset reader: shard order, keys and labels, worker order, corrupt/empty/missing input."""

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from pysim.data import SplitReader, build_loader, index_split, list_shards
from pysim.errors import InputError


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((6, 6, 3), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shard(path, samples):
    """samples: list of (key, {ext: bytes})."""
    with tarfile.open(path, "w") as tar:
        for key, files in samples:
            for ext, data in files.items():
                _add(tar, f"{key}.{ext}", data)


def good(key, value, label, ext="png"):
    return key, {ext: _png(value), "cls": f"{label}".encode()}


@pytest.fixture
def split(tmp_path):
    """12 shards (natural order matters: 2 < 10) with 2 samples each, nshards.txt."""
    sdir = tmp_path / "train"
    sdir.mkdir()
    for shard in range(12):
        write_shard(sdir / f"{shard}.tar",
                    [good(f"k{shard:02d}_{i}", shard * 10 + i, (shard + i) % 5,
                          ext=("png", "jpg", "webp")[i % 2 + (shard % 2)]) for i in range(2)])
    (sdir / "nshards.txt").write_text("12\n")
    return sdir


def test_keys_and_targets_follow_shard_order(split):
    index = index_split(split)
    assert [p.name for p in list_shards(split)][:3] == ["0.tar", "1.tar", "2.tar"]
    expected_keys = [f"k{s:02d}_{i}" for s in range(12) for i in range(2)]
    assert index.keys == expected_keys
    assert index.label == [(s + i) % 5 for s in range(12) for i in range(2)]


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_keeps_sample_order_with_workers(split, workers):
    import torch

    def to_tensor(img):
        return torch.from_numpy(np.asarray(img, dtype=np.float32).copy())

    reader = SplitReader(index_split(split), to_tensor)
    means, positions, targets = [], [], []
    for images, labels, pos, bad in build_loader(reader, batch_size=5, num_workers=workers):
        assert bad == []
        targets.extend(labels.tolist())
        means.extend(images.mean(dim=(1, 2, 3)).round().tolist())
        positions.extend(pos.tolist())
    assert positions == list(range(24))
    assert targets == [(s + i) % 5 for s in range(12) for i in range(2)]
    # png is lossless: pixel value encodes (shard, sample); jpg/webp are close
    expected = [s * 10 + i for s in range(12) for i in range(2)]
    assert np.allclose(means, expected, atol=3)


def test_corrupt_image_is_skipped_and_counted_or_strict_error(tmp_path):
    sdir = tmp_path / "train"
    sdir.mkdir()
    write_shard(sdir / "0.tar", [good("a", 1, 0), ("b", {"png": b"not a png", "cls": b"1"}),
                                 good("c", 3, 2)])
    import torch

    reader = SplitReader(index_split(sdir), lambda img: torch.from_numpy(np.asarray(img).copy()))
    images, labels, pos, bad = next(iter(build_loader(reader, 8, 0)))
    assert pos.tolist() == [0, 2] and labels.tolist() == [0, 2]
    assert len(bad) == 1 and bad[0][0] == 1


def test_sample_without_label_or_image(tmp_path):
    sdir = tmp_path / "train"
    sdir.mkdir()
    write_shard(sdir / "0.tar", [good("a", 1, 0), ("b", {"png": _png(2)}),
                                 ("c", {"cls": b"3"}), ("d", {"png": _png(4), "cls": b"x"})])
    index = index_split(sdir)
    assert index.keys == ["a"] and len(index.skipped) == 3
    with pytest.raises(InputError, match="sample 'b': no label"):
        index_split(sdir, strict=True)


def test_empty_shard_file_is_an_error(tmp_path):
    sdir = tmp_path / "train"
    sdir.mkdir()
    write_shard(sdir / "0.tar", [good("a", 1, 0)])
    (sdir / "1.tar").write_bytes(b"")
    with pytest.raises(InputError, match=r"1\.tar"):
        index_split(sdir)


def test_shard_without_samples_is_an_error(tmp_path):
    sdir = tmp_path / "train"
    sdir.mkdir()
    write_shard(sdir / "0.tar", [])
    with pytest.raises(InputError, match="holds no samples"):
        index_split(sdir)


def test_truncated_shard_keeps_complete_samples_unless_strict(tmp_path):
    sdir = tmp_path / "train"
    sdir.mkdir()
    write_shard(sdir / "0.tar", [good(f"s{i}", i, i % 3) for i in range(10)])
    data = (sdir / "0.tar").read_bytes()
    (sdir / "0.tar").write_bytes(data[: len(data) // 2])
    index = index_split(sdir)
    assert 0 < len(index) < 10
    assert index.keys == [f"s{i}" for i in range(len(index))]
    with pytest.raises(InputError, match="unreadable tar"):
        index_split(sdir, strict=True)


def test_missing_split_no_shards_nshards_mismatch_duplicate_keys(tmp_path):
    with pytest.raises(InputError, match="not found"):
        index_split(tmp_path / "nope")
    sdir = tmp_path / "train"
    sdir.mkdir()
    with pytest.raises(InputError, match="no shards"):
        index_split(sdir)
    write_shard(sdir / "0.tar", [good("a", 1, 0)])
    write_shard(sdir / "1.tar", [good("a", 2, 1)])
    with pytest.raises(InputError, match="occurs twice"):
        index_split(sdir)
    (sdir / "nshards.txt").write_text("3\n")
    with pytest.raises(InputError, match="nshards.txt"):
        index_split(sdir)
