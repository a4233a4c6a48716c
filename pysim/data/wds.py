"""Reader for one split of a CLIP-benchmark WebDataset: shards in order, samples with keys.

The split is indexed once (tar headers only: member offsets and sizes), then samples are
read by position, so a DataLoader with any number of workers yields them in shard order.
A sample whose image cannot be decoded (or that lacks an image or a label) is skipped and
counted; with `strict` it is an error. A missing or empty split is always an error.
"""

from __future__ import annotations

import io
import logging
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pysim.config import dataset_dir
from pysim.errors import InputError

IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")
LABEL_EXT = "cls"
log = logging.getLogger(__name__)


@dataclass
class ShardIndex:
    """Where each sample of a split lives: shard path, image and label byte ranges."""

    keys: list[str] = field(default_factory=list)
    shards: list[int] = field(default_factory=list)
    image: list[tuple[int, int]] = field(default_factory=list)   # (offset, size)
    label: list[int] = field(default_factory=list)
    shard_paths: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)              # reasons, one per sample

    def __len__(self) -> int:
        return len(self.keys)


def split_dir(root: str | Path, dataset_id: str, split: str) -> Path:
    """Directory of one split of a dataset id under the dataset root."""
    return dataset_dir(root, dataset_id) / split


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def list_shards(sdir: Path) -> list[Path]:
    """The split's *.tar shards in natural order (0.tar, 1.tar, ..., 10.tar); checks nshards.txt."""
    if not sdir.is_dir():
        raise InputError(f"split directory {sdir} not found")
    shards = sorted(sdir.glob("*.tar"), key=_natural_key)
    if not shards:
        raise InputError(f"split directory {sdir} has no shards (*.tar)")
    nfile = sdir / "nshards.txt"
    if nfile.exists():
        text = nfile.read_text().strip()
        if not text.isdigit() or int(text) != len(shards):
            raise InputError(f"{nfile}: says {text!r} shards but {sdir} holds {len(shards)}")
    return shards


def _split_name(name: str) -> tuple[str, str]:
    """WebDataset convention: key = path up to the first dot of the basename, ext = the rest."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), ext.lower() if dot else ""


def _index_shard(path: Path, shard_no: int, index: ShardIndex, strict: bool) -> None:
    samples: dict[str, dict[str, tarfile.TarInfo]] = {}
    order: list[str] = []
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, ext = _split_name(member.name)
                if key not in samples:
                    samples[key] = {}
                    order.append(key)
                samples[key][ext] = member
    except (tarfile.TarError, OSError) as exc:
        if path.stat().st_size == 0 or strict:
            raise InputError(f"shard {path}: unreadable tar ({exc})") from None
        log.warning("shard %s: unreadable after %d samples (%s); the rest is skipped",
                    path, len(order), exc)
        index.skipped.append(f"{path}: truncated shard")
    size = path.stat().st_size
    cut = [k for k in order if any(m.offset_data + m.size > size for m in samples[k].values())]
    if order and not cut and not _has_end_marker(path, samples, size):
        cut = [order[-1]]  # cut at a member boundary: the last sample may lack members
    if cut:  # tarfile stops silently at a truncated header; catch data running past the end
        if strict:
            raise InputError(f"shard {path}: unreadable tar (truncated in sample '{cut[0]}')")
        log.warning("shard %s: truncated; %d incomplete samples skipped", path, len(cut))
        index.skipped.extend(f"{path}:{k}: truncated" for k in cut)
        order = [k for k in order if k not in cut]
    if not order:
        raise InputError(f"shard {path}: holds no samples")
    with open(path, "rb") as fh:
        for key in order:
            members = samples[key]
            image = next((members[e] for e in IMAGE_EXTS if e in members), None)
            reason = None
            label = None
            if image is None:
                reason = f"no image ({'/'.join(IMAGE_EXTS)})"
            elif LABEL_EXT not in members:
                reason = "no label (cls)"
            else:
                fh.seek(members[LABEL_EXT].offset_data)
                text = fh.read(members[LABEL_EXT].size).decode("utf-8", "replace").strip()
                if not re.fullmatch(r"-?\d+", text):
                    reason = f"label {text!r} is not an integer"
                else:
                    label = int(text)
            if reason is not None:
                if strict:
                    raise InputError(f"shard {path}: sample '{key}': {reason}")
                index.skipped.append(f"{path}:{key}: {reason}")
                continue
            index.keys.append(key)
            index.shards.append(shard_no)
            index.image.append((image.offset_data, image.size))
            index.label.append(label)


def _has_end_marker(path: Path, samples: dict, size: int) -> bool:
    """A complete tar ends with two zero blocks after the last member's data."""
    end = max(m.offset_data + -(-m.size // 512) * 512 for ms in samples.values()
              for m in ms.values())
    if size - end < 1024:
        return False
    with open(path, "rb") as fh:
        fh.seek(end)
        return fh.read(1024) == bytes(1024)


def index_split(sdir: str | Path, strict: bool = False) -> ShardIndex:
    """Index every sample of a split directory; duplicate keys or an empty split are errors."""
    sdir = Path(sdir)
    index = ShardIndex(shard_paths=list_shards(sdir))
    for shard_no, path in enumerate(index.shard_paths):
        _index_shard(path, shard_no, index, strict)
    if not index.keys:
        raise InputError(f"split {sdir}: no readable samples")
    if len(set(index.keys)) != len(index.keys):
        seen: set[str] = set()
        dup = next(k for k in index.keys if k in seen or seen.add(k))
        raise InputError(f"split {sdir}: sample key '{dup}' occurs twice")
    return index


class SplitReader:
    """Map-style dataset over an indexed split: item i -> (image tensor or None, label, i)."""

    def __init__(self, index: ShardIndex, transform: Callable | None = None):
        self.index = index
        self.transform = transform
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.index)

    def read_bytes(self, i: int) -> bytes:
        """Raw image bytes of sample i (file handles are opened lazily, once per worker)."""
        shard = self.index.shards[i]
        fh = self._handles.get(shard)
        if fh is None:
            fh = self._handles[shard] = open(self.index.shard_paths[shard], "rb")  # noqa: SIM115
        offset, size = self.index.image[i]
        fh.seek(offset)
        return fh.read(size)

    def __getitem__(self, i: int):
        from PIL import Image

        try:
            with Image.open(io.BytesIO(self.read_bytes(i))) as img:
                img = img.convert("RGB")
            image = self.transform(img) if self.transform is not None else img
        except Exception as exc:  # noqa: BLE001 - any decoder failure marks the sample corrupt
            return None, self.index.label[i], i, f"{type(exc).__name__}: {exc}"
        return image, self.index.label[i], i, None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state


def _collate(batch):
    import torch

    good = [b for b in batch if b[0] is not None]
    bad = [(b[2], b[3]) for b in batch if b[0] is None]
    images = torch.stack([b[0] for b in good]) if good else None
    labels = torch.tensor([b[1] for b in good], dtype=torch.int64)
    positions = torch.tensor([b[2] for b in good], dtype=torch.int64)
    return images, labels, positions, bad


def _worker_init(_worker_id: int) -> None:
    import torch

    torch.set_num_threads(1)  # workers decode; intra-op threads would fight the forward pass


def build_loader(reader: SplitReader, batch_size: int, num_workers: int,
                 pin_memory: bool = False, collate_fn: Callable | None = None):
    """DataLoader over a split in sample order; decoding happens in the workers (or, with the
    tensor path's collate_fn on CUDA, in the main process: pysim.data.decode)."""
    from torch.utils.data import DataLoader

    return DataLoader(reader, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=collate_fn or _collate, pin_memory=pin_memory,
                      worker_init_fn=_worker_init if num_workers else None,
                      persistent_workers=False, prefetch_factor=4 if num_workers else None)
