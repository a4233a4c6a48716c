"""The pysim-fetch-datasets stage: download the CLIP-benchmark WebDatasets of a dataset list into
a dataset root, in the layout pysim-validate --dataset-root checks, and verify every split.

Each split is one `huggingface_hub.snapshot_download` of its repo (allow_patterns: the split's
folder and the top-level classnames.txt) into a Hugging Face hub cache (default
`<root>/.hf-cache`, resumable: huggingface_hub skips whole files and resumes partial ones);
its files are then hard-linked into `<root>/<folder>` (copied when the cache is on another file
system) and the split is verified. A split that is already whole is skipped without any
network call. The network is used only here, only when a split is not whole.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from pysim.config import load_dataset_list
from pysim.data.clip_benchmark import (
    DEFAULT_REVISION,
    DEFAULT_SPLITS,
    HF_REPO_TYPE,
    STUDY_DATASETS,
    TOP_LEVEL_FILES,
    FetchItem,
    fetch_plan,
    split_is_whole,
    verify_split,
)
from pysim.errors import InputError
from pysim.ids import check_id

CACHE_SUBDIR = ".hf-cache"
# HTTP clients under huggingface_hub that log every request at INFO (2 per file of a split)
CHATTY_LOGGERS = ("httpx", "httpx2")


def run_fetch_datasets(dataset_root: str | os.PathLike,
                       datasets: str | os.PathLike | None = None,
                       dataset_ids: Sequence[str] = (), splits: Sequence[str] = DEFAULT_SPLITS,
                       revision: str = DEFAULT_REVISION,
                       cache_dir: str | os.PathLike | None = None,
                       list_only: bool = False) -> Iterator[str]:
    """Fetch (or with `list_only`, only list) every repo the dataset list needs; yields lines.

    The list is the `datasets` file plus `dataset_ids`; neither given: the study's list.
    """
    ids = list(load_dataset_list(datasets)) if datasets else []
    ids += [check_id(i, "dataset") for i in dataset_ids if i not in ids]
    plan = fetch_plan(ids or STUDY_DATASETS, tuple(dict.fromkeys(splits or DEFAULT_SPLITS)))
    root = Path(dataset_root)
    cache = Path(cache_dir) if cache_dir else root / CACHE_SUBDIR
    if list_only:
        yield from _list(plan, root, revision, cache)
        return
    _check_writable(root, "--dataset-root")
    _check_writable(cache, "--cache-dir")
    from tqdm.auto import tqdm

    counts = {"fetched": 0, "skipped": 0}
    units = [(item, split) for item in plan for split in item.splits]
    with tqdm(units, desc="splits", unit="split", disable=None) as bar:
        for item, split in bar:
            bar.set_postfix_str(f"{item.dataset_id} {split}")
            line, done = _fetch_split(item, split, root, revision, cache)
            counts[done] += 1
            yield line
    yield (f"datasets OK: {len(plan)} folders under {root} ({counts['fetched']} splits fetched, "
           f"{counts['skipped']} already whole)")


def _list(plan: list[FetchItem], root: Path, revision: str, cache: Path) -> Iterator[str]:
    from huggingface_hub import constants  # reads the environment only: no network

    yield (f"# {len(plan)} repos from {constants.ENDPOINT}/datasets/<repo_id> "
           f"(repo type {HF_REPO_TYPE}), through the hub cache {cache}")
    yield "\t".join(("dataset_id", "repo_id", "revision", "folder", "splits", "needed_by"))
    for item in plan:
        folder = root / item.folder
        state = ", ".join(f"{s}: {'whole' if split_is_whole(folder, s) else 'to fetch'}"
                          for s in item.splits)
        yield "\t".join((item.dataset_id, item.repo_id, revision, str(folder), state,
                         ",".join(item.needed_by) or "-"))


def _check_writable(path: Path, option: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise InputError(f"{option} {path}: not a writable directory "
                         f"({exc.strerror or exc})") from None


def _fetch_split(item: FetchItem, split: str, root: Path, revision: str,
                 cache: Path) -> tuple[str, str]:
    """Download, place and verify one split unless it is whole; (line, 'fetched'|'skipped')."""
    folder = root / item.folder
    what = f"{item.dataset_id} {split}"
    if split_is_whole(folder, split):
        return f"{what}: whole, skipped ({folder / split})", "skipped"
    snapshot = _download(item, split, revision, cache)
    for name in TOP_LEVEL_FILES:
        if (snapshot / name).is_file():
            _place(snapshot / name, folder / name)
    sdir = snapshot / split
    for src in sorted(sdir.iterdir()) if sdir.is_dir() else ():
        if src.is_file():
            _place(src, folder / split / src.name)
    n = _verify(item, folder, split)
    return (f"{what}: fetched {item.repo_id}@{revision} (commit {snapshot.name[:12]}), "
            f"{n} shards verified ({folder / split})"), "fetched"


def _download(item: FetchItem, split: str, revision: str, cache: Path) -> Path:
    """One snapshot_download of a split into the hub cache; its snapshot folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HfHubHTTPError

    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        path = snapshot_download(item.repo_id, repo_type=HF_REPO_TYPE, revision=revision,
                                 allow_patterns=item.allow_patterns(split), cache_dir=cache)
    except (HfHubHTTPError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"dataset '{item.dataset_id}' split '{split}': cannot fetch "
                         f"{item.repo_id}@{revision} ({type(exc).__name__}: {reason})") from None
    return Path(path)


def _place(src: Path, dst: Path) -> None:
    """Put a cached file at `dst` atomically: a hard link to its blob, else a copy."""
    blob = src.resolve()
    if dst.is_file() and os.path.samefile(blob, dst):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(blob, tmp)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(blob, tmp)
    os.replace(tmp, dst)


def _verify(item: FetchItem, folder: Path, split: str) -> int:
    from tqdm.auto import tqdm

    try:
        with tqdm(desc=f"verify {item.dataset_id} {split}", unit="shard", leave=False,
                  disable=None) as bar:
            return verify_split(folder, split, progress=bar.update)
    except InputError as exc:
        raise InputError(f"dataset '{item.dataset_id}' (from {item.repo_id}): {exc}") from None
