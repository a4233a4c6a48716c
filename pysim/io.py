"""Files between stages (DESIGN §5): atomic writes, features/similarity HDF5, subset JSON."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pysim import __version__
from pysim.errors import DiskFullError, InputError, is_disk_full


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.
    A full disk (ENOSPC) becomes one DiskFullError line naming the folder."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFullError(path.parent.resolve()) from None
        raise
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (indented, keys in insertion order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV atomically, without the index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_json(path: str | os.PathLike, reject_duplicates: bool = False) -> Any:
    """Read JSON; a missing or malformed file (or, if asked, a repeated key) is bad input."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None

    def no_duplicates(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise InputError(f"{path}: duplicate key '{key}'")
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=no_duplicates if reject_duplicates else None)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}") from None


# --- features files ---------------------------------------------------------------------

@dataclass
class SplitFeatures:
    """One split of a features file: n x d features, n targets, n sample keys."""

    features: np.ndarray
    targets: np.ndarray
    keys: np.ndarray  # numpy array of str

    def __len__(self) -> int:
        return len(self.targets)


def write_features(path: str | os.PathLike, splits: Mapping[str, SplitFeatures],
                   attrs: Mapping[str, Any]) -> None:
    """Write a features file: one group per split, root attributes (model_id, dataset, ...)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in {"pysim_version": __version__, **attrs}.items():
            f.attrs[key] = _attr(value)
        for name, split in splits.items():
            g = f.create_group(name)
            feats = np.asarray(split.features)
            if feats.dtype not in (np.float32, np.float16):
                feats = feats.astype(np.float32)
            g.create_dataset("features", data=feats)
            g.create_dataset("targets", data=np.asarray(split.targets, dtype=np.int64))
            g.create_dataset("keys", data=[str(k) for k in split.keys],
                             dtype=h5py.string_dtype("utf-8"))


# rows of a block read at once by _read_rows (about this many bytes of stored data)
READ_BLOCK_BYTES = 32 << 20
# a block in which at least this fraction of the rows is wanted is read whole, not row by row
DENSE_FRACTION = 0.25


def read_features(path: str | os.PathLike, split: str = "train", load_features: bool = True,
                  rows: np.ndarray | Sequence[int] | None = None,
                  dtype: Any = np.float32) -> SplitFeatures:
    """Read one split of a features file; a missing file/split or bad layout is bad input.

    `rows` (sorted, unique indices into the split) reads only those samples' features, targets
    and keys, so memory and bytes read follow len(rows), not the split's size. Features come
    back as `dtype` (float32 by default, whatever the stored dtype: float16 is upcast while
    reading, without a full-size copy); `dtype=None` keeps the stored dtype.
    """
    path = Path(path)
    try:
        with _open_unbuffered(path) as f:
            g = _split_group(f, path, split)
            n = _check_layout(g, path, split)
            sel = None if rows is None else check_rows(rows, n)
            if load_features:
                feats = _read_rows(g["features"], sel, dtype)
            else:
                feats = np.empty((n if sel is None else len(sel), 0))
            targets = _read_rows(g["targets"], sel, np.int64)
            check_targets(targets, path, split)
            keys = _read_keys(g["keys"], sel)
            if sel is None:
                _check_unique_keys(keys, path, split)
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 features file ({exc})") from None
    return SplitFeatures(feats, targets, keys)


def split_digests(path: str | os.PathLike, split: str = "train",
                  block: int = 1 << 16) -> tuple[int, str, str]:
    """(n samples, digest of the targets, digest of the keys) of one split, read in blocks.

    Two models hold the same samples in the same order iff their key digests match; memory
    stays at one block whatever the split's size, and the features are not read.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            g = _split_group(f, path, split)
            n = _check_layout(g, path, split)
            h_targets, h_keys = hashlib.sha256(), hashlib.sha256()
            hashes = np.empty(n, dtype=np.int64)
            for start in range(0, n, block):
                stop = min(start + block, n)
                targets = np.ascontiguousarray(g["targets"][start:stop], dtype="<i8")
                check_targets(targets, path, split)
                h_targets.update(targets.tobytes())
                for i, key in enumerate(_read_keys(g["keys"], slice(start, stop)), start):
                    h_keys.update(key.encode() + b"\0")
                    hashes[i] = hash(key)
            if _hash_repeats(hashes):
                _check_unique_keys(_read_keys(g["keys"], None), path, split)
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 features file ({exc})") from None
    return n, h_targets.hexdigest(), h_keys.hexdigest()


# largest class index a targets dataset may hold (ImageNet-21k has 21,841 classes)
MAX_CLASS_INDEX = 1_000_000


def check_targets(targets: np.ndarray, path: str | os.PathLike, split: str) -> None:
    """Targets are class indices in 0..MAX_CLASS_INDEX (-1 usually marks an unlabelled sample)."""
    if targets.size and (targets.min() < 0 or targets.max() > MAX_CLASS_INDEX):
        bad = targets.min() if targets.min() < 0 else targets.max()
        raise InputError(f"{path}: '{split}' targets must be class indices in "
                         f"0..{MAX_CLASS_INDEX}, found {bad}")


def _hash_repeats(hashes: np.ndarray) -> bool:
    """Whether two of the (key) hashes are equal: a repeated key, or rarely a hash collision."""
    ordered = np.sort(hashes)
    return bool(np.any(ordered[1:] == ordered[:-1]))


def _check_unique_keys(keys: np.ndarray, path: str | os.PathLike, split: str) -> None:
    """A sample key given twice in one split is bad input (rows would be matched wrongly)."""
    if not _hash_repeats(np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys))):
        return
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise InputError(f"{path}: sample key '{key}' occurs twice in the '{split}' split")
        seen.add(key)


def check_rows(rows: np.ndarray | Sequence[int], n: int) -> np.ndarray:
    """`rows` as int64, checked to be sorted, unique and within 0..n-1 (else ValueError)."""
    sel = np.asarray(rows, dtype=np.int64)
    if sel.ndim != 1:
        raise ValueError(f"rows must be 1-d, got shape {sel.shape}")
    if sel.size and (sel[0] < 0 or sel[-1] >= n or np.any(np.diff(sel) <= 0)):
        raise ValueError(f"rows must be sorted, unique and within 0..{n - 1}")
    return sel


def _open_unbuffered(path: Path) -> h5py.File:
    """Open an HDF5 file read-only without HDF5's sieve buffer and raw-data chunk cache.

    Both read more than asked (64 KiB around every row; whole chunks) and only pay off for
    repeated small reads; without them a row selection reads just its rows' bytes.
    """
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_sieve_buf_size(0)
    fapl.set_cache(0, 521, 0, 0.75)  # (unused), chunk slots, chunk cache bytes, preemption
    return h5py.File(h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY, fapl))


def _split_group(f: h5py.File, path: Path, split: str) -> h5py.Group:
    if split not in f:
        raise InputError(f"{path}: no '{split}' split in features file")
    g = f[split]
    for name in ("features", "targets", "keys"):
        if name not in g:
            raise InputError(f"{path}: '{split}' split has no '{name}' dataset")
    return g


def _check_layout(g: h5py.Group, path: Path, split: str) -> int:
    """Number of samples of a split whose datasets agree in shape (else bad input)."""
    shapes = {name: g[name].shape for name in ("features", "targets", "keys")}
    n = shapes["targets"][0] if len(shapes["targets"]) == 1 else -1
    if (len(shapes["features"]) != 2 or len(shapes["keys"]) != 1 or n < 0
            or shapes["features"][0] != n or shapes["keys"][0] != n):
        raise InputError(f"{path}: '{split}' split has inconsistent shapes "
                         f"(features {shapes['features']}, targets {shapes['targets']}, "
                         f"keys {shapes['keys']})")
    kinds = {name: g[name].dtype.kind for name in ("features", "targets", "keys")}
    if kinds["targets"] not in "iu":
        raise InputError(f"{path}: '{split}' targets must be integers, stored as "
                         f"{g['targets'].dtype} (they would be truncated)")
    if kinds["features"] != "f":
        raise InputError(f"{path}: '{split}' features must be floating point, stored as "
                         f"{g['features'].dtype}")
    if kinds["keys"] not in "OSU":
        raise InputError(f"{path}: '{split}' keys must be strings, stored as {g['keys'].dtype}")
    return n


def _read_rows(ds: h5py.Dataset, sel: np.ndarray | None, dtype: Any) -> np.ndarray:
    """Rows `sel` (None: all) of a dataset as `dtype` (None: stored), HDF5 converting on read.

    Rows are read block by block (blocks aligned to the dataset's chunks): a block in which many
    rows are wanted is read whole into a block buffer, any other by selecting just its rows, so
    sparse subsets read only their rows and dense ones keep the speed of plain slices.
    """
    dtype = ds.dtype if dtype is None else np.dtype(dtype)
    n = ds.shape[0]
    out = np.empty((n if sel is None else len(sel), *ds.shape[1:]), dtype=dtype)

    def read(source, dest, target):
        if dtype.kind == "O":  # variable-length strings: no read_direct
            target[dest] = ds[source]
        else:
            ds.read_direct(target, source, dest)

    if sel is None:
        if out.size:
            read(np.s_[:], np.s_[:], out)
        return out
    if not len(sel):
        return out
    row_bytes = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)))
    chunk_rows = ds.chunks[0] if ds.chunks else 1
    block = max(chunk_rows, READ_BLOCK_BYTES // row_bytes // chunk_rows * chunk_rows)
    bounds = np.searchsorted(sel, np.arange(0, n + block, block))
    buffer = None
    for b in np.flatnonzero(np.diff(bounds)):
        lo, hi = int(bounds[b]), int(bounds[b + 1])
        start, stop = int(b) * block, min((int(b) + 1) * block, n)
        if hi - lo >= DENSE_FRACTION * (stop - start):
            if buffer is None:
                buffer = np.empty((block, *ds.shape[1:]), dtype=dtype)
            read(np.s_[start:stop], np.s_[:stop - start], buffer)
            out[lo:hi] = buffer[sel[lo:hi] - start]
        elif hi - lo == 1:
            read(np.s_[int(sel[lo]):int(sel[lo]) + 1], np.s_[lo:hi], out)
        else:
            read(np.s_[sel[lo:hi]], np.s_[lo:hi], out)
    return out


def _read_keys(ds: h5py.Dataset, sel: np.ndarray | slice | None) -> np.ndarray:
    """Keys (UTF-8 strings) at `sel` (None: all) as a numpy str array."""
    if sel is None:
        raw = ds[()]
    elif isinstance(sel, slice):
        raw = ds[sel]
    else:
        raw = _read_rows(ds, sel, None)
    return np.array([k.decode() if isinstance(k, bytes) else k for k in raw])


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """Root attributes of an HDF5 file (features or similarity), JSON values decoded."""
    try:
        with h5py.File(path, "r") as f:
            return {k: _unattr(v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None


def has_split(path: str | os.PathLike, split: str) -> bool:
    """Whether a features file holds the given split."""
    with h5py.File(path, "r") as f:
        return split in f


# --- similarity files -------------------------------------------------------------------

@dataclass
class Similarities:
    """One dataset's similarity file: model ids (row order) and one m x m matrix per metric."""

    dataset: str
    model_ids: list[str]
    matrices: dict[str, np.ndarray]
    metric_attrs: dict[str, dict[str, Any]]
    module_names: dict[str, str] = field(default_factory=dict)  # id -> module (if recorded)


def write_similarities(path: str | os.PathLike, sims: Similarities,
                       attrs: Mapping[str, Any] | None = None) -> None:
    """Write a similarity file atomically (float64 matrices, metric parameters as attributes)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["dataset"] = sims.dataset
        f.attrs["model_ids"] = _attr(list(sims.model_ids))
        f.attrs["pysim_version"] = __version__
        if sims.module_names:
            f.attrs["module_names"] = _attr([sims.module_names.get(m, "")
                                             for m in sims.model_ids])
        for key, value in (attrs or {}).items():
            f.attrs[key] = _attr(value)
        for metric_id, matrix in sims.matrices.items():
            d = f.create_dataset(metric_id, data=np.asarray(matrix, dtype=np.float64))
            for key, value in sims.metric_attrs.get(metric_id, {}).items():
                d.attrs[key] = _attr(value)


def read_similarities(path: str | os.PathLike) -> Similarities:
    """Read a similarity file written by write_similarities."""
    try:
        with h5py.File(path, "r") as f:
            model_ids = [str(m) for m in _unattr(f.attrs["model_ids"])]
            matrices, metric_attrs = {}, {}
            for metric_id, d in f.items():
                matrices[metric_id] = d[()]
                metric_attrs[metric_id] = {k: _unattr(v) for k, v in d.attrs.items()}
            dataset = str(_unattr(f.attrs["dataset"]))
            names = [str(m) for m in _unattr(f.attrs.get("module_names", []))]
    except (OSError, KeyError) as exc:
        raise InputError(f"{path}: not a readable similarity file ({exc})") from None
    modules = {m: name for m, name in zip(model_ids, names, strict=False) if name}
    return Similarities(dataset, model_ids, matrices, metric_attrs, modules)


# --- subset files -----------------------------------------------------------------------

def read_subset(path: str | os.PathLike) -> dict[str, Any]:
    """Read a subset JSON file (DESIGN §5) and check its fields."""
    subset = read_json(path)
    required = {"dataset", "split", "seed", "max_samples", "n_total", "indices"}
    if not isinstance(subset, dict) or not required <= subset.keys():
        raise InputError(f"{path}: subset file needs the fields {sorted(required)}")
    for name in ("seed", "max_samples", "n_total"):
        if not _is_int(subset[name]):
            raise InputError(f"{path}: '{name}' must be an integer, got {subset[name]!r}")
    indices = subset["indices"]
    if not isinstance(indices, list):
        raise InputError(f"{path}: 'indices' must be a list of integers")
    bad = next((i for i in indices if not _is_int(i)), None)
    if bad is not None:
        raise InputError(f"{path}: subset indices must be integers, found {bad!r}")
    digest = subset.get("keys_sha256")
    if digest is not None and not isinstance(digest, str):
        raise InputError(f"{path}: 'keys_sha256' must be a string")
    return subset


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- attribute encoding -----------------------------------------------------------------

def _attr(value: Any) -> Any:
    """HDF5 attributes hold scalars and strings; anything structured is stored as JSON."""
    if isinstance(value, (str, int, float, bool, np.integer, np.floating)):
        return value
    if value is None:
        return "null"
    return json.dumps(value)


def _unattr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and (value[:1] in ("[", "{") or value == "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value
