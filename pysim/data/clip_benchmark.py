"""Where the CLIP-benchmark WebDatasets of a dataset list come from, and whether a split is whole.

A dataset id `wds/<a>[/<b>...]` is the Hugging Face dataset repo `clip-benchmark/<folder>`,
where `<folder>` is the id's directory name under the dataset root (`wds/vtab/cifar10` ->
`wds_vtab-cifar10`, pysim.config.dataset_dir): the original study cloned each repo into a folder
of the repo's own name. A derived id (BREEDS task, imagenet-subset-<N>k) needs the folder of
`wds/imagenet1k` instead. A split is whole when `<split>/nshards.txt` names N shards,
`<split>/0.tar` .. `<split>/<N-1>.tar` are all there and are readable tar files, and the
dataset's `classnames.txt` is there. No network here: the stage downloads.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pysim.config import check_dataset_ids, dataset_dir, source_dataset
from pysim.errors import InputError

HF_ORG = "clip-benchmark"
HF_REPO_TYPE = "dataset"
DEFAULT_REVISION = "main"
DEFAULT_SPLITS = ("train", "test")
CLASSNAMES = "classnames.txt"
NSHARDS = "nshards.txt"
# files of a repo's top level fetched with every split (the templates are CLIP-benchmark's own)
TOP_LEVEL_FILES = (CLASSNAMES, "zeroshot_classification_templates.txt")
SPLIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a folder of the repo's top level
DEMO_PREFIX = "wds/demo_"  # pysim-demo-data's bundled datasets: made locally, never downloaded

# The study's dataset list (assets/paper/webdatasets_w_insub10k.txt): 19 CLIP-benchmark
# datasets and four ids derived from ImageNet-1k, hence 20 repos to fetch.
STUDY_DATASETS = (
    "wds/fer2013", "wds/voc2007", "wds/cars", "wds/fgvc_aircraft", "wds/stl10", "wds/gtsrb",
    "wds/country211", "wds/vtab/caltech101", "wds/vtab/cifar10", "wds/vtab/cifar100",
    "wds/vtab/diabetic_retinopathy", "wds/vtab/dmlab", "wds/vtab/dtd", "wds/vtab/eurosat",
    "wds/vtab/flowers", "wds/vtab/pets", "wds/vtab/pcam", "wds/vtab/resisc45", "wds/vtab/svhn",
    "entity30", "living17", "nonliving26", "imagenet-subset-10k",
)


@dataclass(frozen=True)
class FetchItem:
    """One repo to fetch: the dataset id whose folder it fills, and the listed ids needing it."""

    dataset_id: str
    repo_id: str
    folder: str
    splits: tuple[str, ...]
    needed_by: tuple[str, ...] = field(default=())

    def allow_patterns(self, split: str) -> list[str]:
        """Repo paths of one split (huggingface_hub allow_patterns), with the top-level files."""
        return [f"{split}/*", *TOP_LEVEL_FILES]


def folder_name(dataset_id: str) -> str:
    """Folder of a `wds/...` id under the dataset root (wds/vtab/cifar10 -> wds_vtab-cifar10)."""
    return dataset_dir("", dataset_id).name


def repo_id(dataset_id: str) -> str:
    """The CLIP-benchmark dataset repo of a `wds/...` id (clip-benchmark/<folder>)."""
    return f"{HF_ORG}/{folder_name(dataset_id)}"


def _check_fetchable(dataset_id: str) -> None:
    if dataset_id.startswith(DEMO_PREFIX):
        raise InputError(f"dataset '{dataset_id}': a bundled demo dataset (pysim-demo-data writes "
                         f"it), not a CLIP-benchmark repo")
    if not dataset_id.startswith("wds/") or dataset_id.endswith("/") or "//" in dataset_id:
        raise InputError(f"dataset '{dataset_id}': unknown dataset id (only wds/<name>[/<name>] "
                         f"ids and ids derived from wds/imagenet1k have a CLIP-benchmark repo)")


def fetch_plan(dataset_ids: Iterable[str],
               splits: Sequence[str] = DEFAULT_SPLITS) -> list[FetchItem]:
    """The repos a dataset list needs, in list order; derived ids add `wds/imagenet1k` once."""
    ids = list(dataset_ids)
    check_dataset_ids(ids)
    for split in splits:
        if not SPLIT_NAME.fullmatch(split):
            raise InputError(f"split '{split}': not a split folder name (e.g. train, test)")
    needed: dict[str, list[str]] = {}
    for dataset_id in ids:
        source = source_dataset(dataset_id)
        _check_fetchable(source)
        needed.setdefault(source, [])
        if source != dataset_id:
            needed[source].append(dataset_id)
    return [FetchItem(source, repo_id(source), folder_name(source), tuple(splits),
                      tuple(users)) for source, users in needed.items()]


def _check_tar(path: Path) -> None:
    """A readable tar: members parse, at least one file, no member runs past the end."""
    size = path.stat().st_size
    files = 0
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if member.offset_data + member.size > size:
                    raise InputError(f"shard {path}: unreadable tar (truncated in '{member.name}')")
                files += member.isfile()
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"shard {path}: unreadable tar ({exc})") from None
    if not files:
        raise InputError(f"shard {path}: unreadable tar (no files in it)")


def split_shards(folder: str | os.PathLike, split: str) -> list[Path]:
    """The shard paths nshards.txt names (0.tar .. N-1.tar); InputError naming what is missing."""
    sdir = Path(folder) / split
    nfile = sdir / NSHARDS
    if not nfile.is_file():
        raise InputError(f"split '{split}': {nfile} not found")
    text = nfile.read_text().strip()
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"split '{split}': {nfile} says {text!r}, not a number of shards >= 1")
    shards = [sdir / f"{i}.tar" for i in range(int(text))]
    missing = [p for p in shards if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"split '{split}': shard {missing[0]} not found{more}; "
                         f"{nfile} names {len(shards)}")
    extra = sorted(set(sdir.glob("*.tar")) - set(shards))
    if extra:
        raise InputError(f"split '{split}': {extra[0]} is not one of the {len(shards)} shards "
                         f"{nfile} names")
    return shards


def verify_split(folder: str | os.PathLike, split: str,
                 progress: Callable[[int], object] | None = None) -> int:
    """Check one split of a dataset folder is whole; returns its number of shards.

    `progress` (optional) is called once per shard checked (e.g. a progress bar's update).
    InputError naming the first missing or unreadable file otherwise.
    """
    classnames = Path(folder) / CLASSNAMES
    if not classnames.is_file() or not classnames.read_text().strip():
        raise InputError(f"split '{split}': {classnames} not found or empty")
    shards = split_shards(folder, split)
    for shard in shards:
        _check_tar(shard)
        if progress is not None:
            progress(1)
    return len(shards)


def split_is_whole(folder: str | os.PathLike, split: str) -> bool:
    """True when verify_split passes (a whole split needs no download)."""
    try:
        verify_split(folder, split)
    except InputError:
        return False
    return True
