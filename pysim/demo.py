"""Bundled demo datasets in the CLIP-benchmark layout, built from images shipped in packages.

Three small datasets (32x32 RGB PNGs), each written as <out>/wds_<name>/{train,test}/*.tar
with nshards.txt and <out>/wds_<name>/classnames.txt:
  demo_digits   - scikit-learn's 8x8 handwritten digits, upscaled (10 classes)
  demo_textures - patches cut from scikit-image's sample photographs, one class per photo
  demo_shapes   - procedurally drawn shapes on noisy backgrounds (6 classes)
Output is byte-identical for the same seed (fixed tar headers, PNG encoding, seeded RNG).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pysim.errors import InputError
from pysim.io import atomic_path

IMAGE_SIZE = 32
TRAIN_PER_CLASS = {"demo_digits": 30, "demo_textures": 40, "demo_shapes": 50}
TEST_PER_CLASS = {"demo_digits": 10, "demo_textures": 12, "demo_shapes": 15}
TRAIN_SHARDS = 2
TEXTURE_PHOTOS = ("brick", "grass", "gravel", "coins", "immunohistochemistry",
                  "hubble_deep_field", "coffee", "astronaut")
SHAPES = ("disk", "square", "triangle", "ring", "cross", "stripes")
DATASET_IDS = tuple(f"wds/{name}" for name in TRAIN_PER_CLASS)


def _to_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(img * 255.0 if img.max() <= 1.0 else img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img[..., :3]


def _digits(rng: np.random.Generator, n_per_class: dict[str, int]) -> tuple[list, list[str]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    by_class = [np.flatnonzero(digits.target == c) for c in range(10)]
    samples = {}
    for split, n in n_per_class.items():
        samples[split] = []
        for c, idx in enumerate(by_class):
            start = 0 if split == "train" else n_per_class["train"]
            for i in idx[start:start + n]:
                img = (digits.images[i] / 16.0 * 255).astype(np.uint8)
                img = np.kron(img, np.ones((4, 4), dtype=np.uint8))
                samples[split].append((_to_rgb(img), c))
    return samples, [str(c) for c in range(10)]


def _textures(rng: np.random.Generator, n_per_class: dict[str, int]) -> tuple[dict, list[str]]:
    import skimage.data

    photos = [_to_rgb(getattr(skimage.data, name)()) for name in TEXTURE_PHOTOS]
    samples = {split: [] for split in n_per_class}
    for c, photo in enumerate(photos):
        h, w = photo.shape[:2]
        # train patches come from the left 2/3 of the photo, test patches from the right 1/3
        bounds = {"train": (0, int(w * 2 / 3)), "test": (int(w * 2 / 3), w)}
        for split, n in n_per_class.items():
            x_lo, x_hi = bounds[split]
            for _ in range(n):
                size = int(rng.integers(48, 97))
                y = int(rng.integers(0, h - size))
                x = int(rng.integers(x_lo, max(x_lo + 1, x_hi - size)))
                patch = photo[y:y + size, x:x + size]
                samples[split].append((_resize(patch), c))
    return samples, list(TEXTURE_PHOTOS)


def _resize(img: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR))


def _shape_image(rng: np.random.Generator, shape: str) -> np.ndarray:
    s = IMAGE_SIZE
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    cy, cx = rng.uniform(11, s - 11, size=2)
    r = rng.uniform(6, 10)
    if shape == "disk":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
    elif shape == "square":
        mask = (np.abs(yy - cy) <= r * 0.8) & (np.abs(xx - cx) <= r * 0.8)
    elif shape == "triangle":
        mask = (yy - cy <= r * 0.8) & (yy - cy >= -r + 2 * np.abs(xx - cx))
    elif shape == "ring":
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        mask = (d2 <= r ** 2) & (d2 >= (r * 0.55) ** 2)
    elif shape == "cross":
        mask = ((np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= 2)) | \
               ((np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= 2))
    else:  # stripes
        angle = rng.uniform(0, np.pi)
        mask = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * rng.uniform(0.6, 1.0)) > 0
    background = rng.uniform(0, 90, size=3)
    color = rng.uniform(120, 255, size=3)
    img = np.where(mask[..., None], color, background) + rng.normal(0, 12, size=(s, s, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _shapes(rng: np.random.Generator, n_per_class: dict[str, int]) -> tuple[dict, list[str]]:
    samples = {split: [] for split in n_per_class}
    for split, n in n_per_class.items():
        for c, shape in enumerate(SHAPES):
            samples[split].extend((_shape_image(rng, shape), c) for _ in range(n))
    return samples, list(SHAPES)


GENERATORS: dict[str, Callable] = {"demo_digits": _digits, "demo_textures": _textures,
                                   "demo_shapes": _shapes}


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _write_split(sdir: Path, samples: list, n_shards: int, rng: np.random.Generator) -> None:
    sdir.mkdir(parents=True, exist_ok=True)
    order = rng.permutation(len(samples))  # interleave classes as real shards do
    for shard, chunk in enumerate(np.array_split(order, n_shards)):
        with atomic_path(sdir / f"{shard}.tar") as tmp, \
                tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in chunk:
                img, label = samples[int(i)]
                key = f"s{int(i):07d}"
                _add(tar, f"{key}.png", _png(img))
                _add(tar, f"{key}.cls", f"{label}\n".encode())
    _write_text(sdir / "nshards.txt", f"{n_shards}\n")


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_demo_datasets(out_dir: str | Path, seed: int = 0) -> list[str]:
    """Write the demo datasets under out_dir; returns their dataset ids (wds/demo_...)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out-dir {out_dir} exists and is not a directory")
    for d, name in enumerate(GENERATORS):
        rng = np.random.default_rng([seed, d])
        counts = {"train": TRAIN_PER_CLASS[name], "test": TEST_PER_CLASS[name]}
        samples, classnames = GENERATORS[name](rng, counts)
        ddir = out_dir / f"wds_{name}"
        _write_split(ddir / "train", samples["train"], TRAIN_SHARDS, rng)
        _write_split(ddir / "test", samples["test"], 1, rng)
        _write_text(ddir / "classnames.txt", "\n".join(classnames) + "\n")
    return list(DATASET_IDS)


# An ImageNet-like WebDataset for the derived datasets (BREEDS, imagenet-subset): a few real
# ImageNet-1k class indices (the `cls` of CLIP-benchmark's wds/imagenet1k, 0..999) of three
# living17 superclasses, each superclass drawn as one shape, plus one class outside living17.
DEMO_IMAGENET_CLASSES = {  # ImageNet class index -> shape
    26: "disk", 27: "disk", 28: "disk", 29: "disk",                  # living17 superclass 0
    33: "square", 34: "square", 35: "square", 37: "square",          # living17 superclass 1
    38: "triangle", 41: "triangle", 44: "triangle", 47: "triangle",  # living17 superclass 2
    500: "stripes",                                                  # in no living17 class list
}
DEMO_IMAGENET_PER_CLASS = {"train": 10, "test": 5}


def write_demo_imagenet(out_dir: str | Path, seed: int = 0) -> str:
    """Write <out_dir>/wds_imagenet1k, a small ImageNet-like dataset; returns its id."""
    import torchvision

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out-dir {out_dir} exists and is not a directory")
    rng = np.random.default_rng([seed, len(GENERATORS)])
    ddir = out_dir / "wds_imagenet1k"
    for split, n in DEMO_IMAGENET_PER_CLASS.items():
        samples = [(_shape_image(rng, shape), cls)
                   for cls, shape in DEMO_IMAGENET_CLASSES.items() for _ in range(n)]
        _write_split(ddir / split, samples, TRAIN_SHARDS if split == "train" else 1, rng)
    names = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    _write_text(ddir / "classnames.txt", "\n".join(names) + "\n")
    return "wds/imagenet1k"
