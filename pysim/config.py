"""Loaders for the three inputs (DESIGN §3): model table, dataset list (+ info), metric list.

They accept the original study's seed formats unchanged and return small typed records.
Every problem is an InputError naming the file, the entry and the reason.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pysim import registry
from pysim.errors import InputError
from pysim.ids import check_id
from pysim.io import read_json

MODEL_SOURCES = tuple(registry.MODEL_SOURCES)  # the registered sources (pysim.registry)
CATEGORY_COLUMNS = ("objective", "architecture_class", "dataset_class", "size_class")
METRIC_METHODS = tuple(registry.METRICS)  # the registered metrics (pysim.registry)
SPLIT_NAMES = ("train", "test")
POOLINGS = ("cls", "mean", "avg")  # model table "pooling": cls token, mean of tokens, spatial avg
LAYER_SEP = "@"  # representation id of a further module: <model_id>@<module>
ALIGNMENTS = ("gLocal",)  # model table "alignment": thingsvision's align() types pysim implements
# entry keys pysim acts on, and the seed tables' informational columns (kept in the written
# table, never used to compute); any other key is refused, never silently dropped
MODEL_KEYS = ("model_name", "source", "module_name", "model_parameters", "weights", "pretrained",
              "pooling", "alignment", *CATEGORY_COLUMNS)
INFO_KEYS = ("dataset", "architecture", "embedding_dim", "size", "size_fmt")


# --- models -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelEntry:
    """One row of the model table."""

    model_id: str
    model_name: str
    source: str
    module_name: str
    model_parameters: dict[str, Any] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)
    weights: str | None = None
    pretrained: bool = True
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    modules: tuple[str, ...] = ()  # every requested module (names or patterns); [0] is primary
    pooling: str | None = None  # cls | mean | avg; None: legacy (single) or per output shape
    alignment: str | None = None  # gLocal: the published transform applied to the features

    def __post_init__(self):
        if not self.modules:
            object.__setattr__(self, "modules", (self.module_name,))

    @property
    def multi(self) -> bool:
        """True when the entry asks for several modules (a list, or a pattern)."""
        return len(self.modules) > 1 or any(is_pattern(m) for m in self.modules)


def is_pattern(module: str) -> bool:
    """True for a module pattern such as `blocks.*` (expanded against the model's modules)."""
    return any(c in module for c in "*?[")


def module_matches(name: str, pattern: str) -> bool:
    """fnmatch per dotted part: `blocks.*` matches blocks.0, not blocks.0.attn."""
    names, parts = name.split("."), pattern.split(".")
    return len(names) == len(parts) and all(
        fnmatch.fnmatchcase(n, p) for n, p in zip(names, parts, strict=True))


def representation_id(model_id: str, module: str, primary: bool) -> str:
    """Id of one representation: the plain model id for the primary module, else id@module."""
    return model_id if primary else f"{model_id}{LAYER_SEP}{module}"


def base_model_id(rep_id: str) -> str:
    """The model id of a representation id (`<model_id>` or `<model_id>@<module>`)."""
    return rep_id.partition(LAYER_SEP)[0]


def load_models(path: str | os.PathLike) -> dict[str, ModelEntry]:
    """Load a model table (JSON object keyed by model id) in the seed format."""
    data = read_json(path, reject_duplicates=True)
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}: model table must be a non-empty JSON object keyed by model id")
    return {model_id: _model_entry(path, model_id, entry) for model_id, entry in data.items()}


def _model_entry(path, model_id: str, entry: Any) -> ModelEntry:
    check_id(model_id, "model")
    where = f"{path}: model '{model_id}'"
    if not isinstance(entry, dict):
        raise InputError(f"{where}: entry must be a JSON object")
    unknown = [k for k in entry if k not in MODEL_KEYS and k not in INFO_KEYS]
    if unknown:
        raise InputError(f"{where}: unknown key '{unknown[0]}' (pysim does not implement it; "
                         f"known keys: {', '.join(MODEL_KEYS + INFO_KEYS)})")
    for name in ("model_name", "source"):
        if name not in entry:
            raise InputError(f"{where}: missing '{name}'")
        if not isinstance(entry[name], str) or not entry[name]:
            raise InputError(f"{where}: '{name}' must be a non-empty string")
    modules = _modules(where, entry.get("module_name"))
    if entry["source"] not in MODEL_SOURCES:
        raise InputError(f"{where}: unknown source '{entry['source']}' "
                         f"(known: {', '.join(MODEL_SOURCES)})")
    params = entry.get("model_parameters") or {}
    if not isinstance(params, dict):
        raise InputError(f"{where}: 'model_parameters' must be a JSON object")
    categories = {}
    for column in CATEGORY_COLUMNS:
        value = entry.get(column)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InputError(f"{where}: category '{column}' must be a string, "
                             f"got {type(value).__name__} {value!r}")
        categories[column] = value
    weights = entry.get("weights")
    if weights is not None and not isinstance(weights, str):
        raise InputError(f"{where}: 'weights' must be a path string")
    pretrained = entry.get("pretrained", True)
    if not isinstance(pretrained, bool):
        raise InputError(f"{where}: 'pretrained' must be true or false")
    pooling = entry.get("pooling")
    if pooling is not None and pooling not in POOLINGS:
        raise InputError(f"{where}: 'pooling' must be one of {', '.join(POOLINGS)}, "
                         f"got {pooling!r}")
    alignment = entry.get("alignment")
    if alignment is not None and alignment not in ALIGNMENTS:
        raise InputError(f"{where}: 'alignment' must be null or one of "
                         f"{', '.join(repr(a) for a in ALIGNMENTS)}, got {alignment!r}")
    if alignment is not None and (len(modules) > 1 or is_pattern(modules[0])):
        raise InputError(f"{where}: 'alignment' {alignment!r} needs a single module_name (the "
                         "transform is published for one model and module)")
    return ModelEntry(model_id=model_id, model_name=entry["model_name"], source=entry["source"],
                      module_name=modules[0], model_parameters=params,
                      categories=categories, weights=weights, pretrained=pretrained, raw=entry,
                      modules=modules, pooling=pooling, alignment=alignment)


def _modules(where: str, value: Any) -> tuple[str, ...]:
    """`module_name` as a tuple: one name, or a non-empty list of distinct names/patterns."""
    if value is None:
        raise InputError(f"{where}: missing 'module_name'")
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(
            isinstance(n, str) and n for n in names):
        raise InputError(f"{where}: 'module_name' must be a non-empty string or a non-empty "
                         f"list of non-empty strings")
    if len(set(names)) != len(names):
        raise InputError(f"{where}: 'module_name' lists a module twice")
    if any(LAYER_SEP in n for n in names):
        raise InputError(f"{where}: module names must not contain '{LAYER_SEP}'")
    for name in names:  # each module becomes part of a representation id and a file name
        try:
            check_id(f"m{LAYER_SEP}{name}", "representation")
        except InputError:
            raise InputError(f"{where}: module name {name!r} cannot be part of a file name (no "
                             "whitespace, control characters, path separators, '..', leading "
                             "dot or dash)") from None
    return tuple(names)


# --- datasets ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetEntry:
    """One dataset id with its output key, display name and domain."""

    dataset_id: str
    key: str
    name: str
    domain: str | None = None


def dataset_key(dataset_id: str) -> str:
    """Output key of a dataset id: '/' -> '_' (wds/vtab/cifar10 -> wds_vtab_cifar10)."""
    return dataset_id.replace("/", "_")


def dataset_dir(root: str | os.PathLike, dataset_id: str) -> Path:
    """Directory of a dataset id under the root: wds/a/b -> wds_a-b, wds/a -> wds_a."""
    parts = dataset_id.split("/")
    if len(parts) == 1:
        name = parts[0]
    else:
        name = f"{parts[0]}_{'-'.join(parts[1:])}"
    return Path(root) / name


# Derived datasets (DESIGN §3): bare ids sliced from the ImageNet-1k features, no folder.
IMAGENET_ID = "wds/imagenet1k"
BREEDS_TASKS = ("entity13", "entity30", "living17", "nonliving26")
IMAGENET_SUBSET = re.compile(r"imagenet-subset-([1-9][0-9]*)k")


def derived_kind(dataset_id: str) -> str | None:
    """'breeds' or 'imagenet_subset' for a derived dataset id, None for any other id."""
    if dataset_id in BREEDS_TASKS:
        return "breeds"
    if IMAGENET_SUBSET.fullmatch(dataset_id):
        return "imagenet_subset"
    return None


def subset_per_class(dataset_id: str) -> int:
    """Images per class of an imagenet-subset-<N>k id (N); ValueError for any other id."""
    match = IMAGENET_SUBSET.fullmatch(dataset_id)
    if match is None:
        raise ValueError(f"'{dataset_id}' is not an imagenet-subset-<N>k id")
    return int(match.group(1))


def source_dataset(dataset_id: str) -> str:
    """The dataset whose folder (and features) a dataset id needs: ImageNet for derived ids."""
    return IMAGENET_ID if derived_kind(dataset_id) else dataset_id


def required_splits(dataset_id: str) -> tuple[str, ...]:
    """Splits of the source folder a dataset id needs (BREEDS tests on ImageNet's test split)."""
    return ("train", "test") if derived_kind(dataset_id) == "breeds" else ("train",)


def extraction_ids(ids: list[str]) -> list[str]:
    """Dataset ids to extract for a list: its own ids, derived ones replaced by ImageNet once."""
    out: list[str] = []
    for dataset_id in ids:
        source = source_dataset(dataset_id)
        if source not in out:
            out.append(source)
    return out


def check_dataset_ids(ids: list[str]) -> None:
    """Every id is `<prefix>/<name>[/...]` or a known derived id; an unknown bare name is not."""
    for dataset_id in ids:
        if "/" in dataset_id or derived_kind(dataset_id):
            continue
        hint = ""
        if dataset_id.startswith("wds_"):
            hint = f"; did you mean 'wds/{dataset_id[4:].replace('-', '/')}'?"
        raise InputError(
            f"dataset '{dataset_id}': unknown dataset id (expected wds/<name>[/<name>], a BREEDS "
            f"task ({', '.join(BREEDS_TASKS)}) or imagenet-subset-<N>k){hint}")


def load_dataset_list(path: str | os.PathLike) -> list[str]:
    """Dataset ids, one per line; blank lines and '#' comments ignored; duplicates rejected."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    ids: list[str] = []
    for lineno, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if any(c.isspace() for c in line):
            raise InputError(f"{path}: line {lineno}: dataset id '{line}' contains whitespace")
        try:
            check_id(line, "dataset")
        except InputError as exc:
            raise InputError(f"{path}: line {lineno}: {exc}") from None
        if line in ids:
            raise InputError(f"{path}: line {lineno}: duplicate dataset id '{line}'")
        ids.append(line)
    if not ids:
        raise InputError(f"{path}: dataset list is empty")
    return ids


def load_dataset_info(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Optional dataset table: id -> {'name', 'domain'} (format of dataset_info.json)."""
    data = read_json(path, reject_duplicates=True)
    if not isinstance(data, dict):
        raise InputError(f"{path}: dataset info must be a JSON object keyed by dataset id")
    for dataset_id, entry in data.items():
        if not isinstance(entry, dict) or not all(
                isinstance(entry.get(k, ""), str) for k in ("name", "domain")):
            raise InputError(f"{path}: dataset '{dataset_id}': needs string 'name' and 'domain'")
    return data


def dataset_entries(ids: list[str], info: dict[str, dict[str, str]] | None = None
                    ) -> list[DatasetEntry]:
    """Combine dataset ids with the optional info table (display name falls back to the id)."""
    info = info or {}
    return [DatasetEntry(i, dataset_key(i), info.get(i, {}).get("name", i),
                         info.get(i, {}).get("domain")) for i in ids]


def check_dataset_dirs(root: str | os.PathLike, ids: list[str],
                       splits: tuple[str, ...] = ("train",)) -> None:
    """Every dataset directory exists and each required split has shards.

    A derived id needs no folder of its own: ImageNet's folder is checked in its place, with
    the splits the derivation reads.
    """
    for dataset_id in ids:
        source = source_dataset(dataset_id)
        what = f"dataset '{dataset_id}'"
        if source != dataset_id:
            what += f" (derived from {source})"
        ddir = dataset_dir(root, source)
        if not ddir.is_dir():
            raise InputError(f"{what}: directory {ddir} not found")
        for split in dict.fromkeys((*splits, *required_splits(dataset_id))):
            sdir = ddir / split
            if not sdir.is_dir():
                raise InputError(f"{what}: split directory {sdir} not found")
            if not any(sdir.glob("*.tar")):
                raise InputError(f"{what}: split '{split}' has no shards (*.tar) in {sdir}")


# --- metrics ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricSpec:
    """One similarity metric: its family (`method`, a key of pysim.registry.METRICS) and the
    parameters that family parsed. The family owns the id and the stored parameters
    (pysim.similarity.base.MetricFamily); this record only holds the values.

    The named fields are the parameters of the first three families (kept for their callers);
    any other family keeps its parameters in `options` (name, value) pairs.
    """

    method: str                   # a registered family: cka | rsa | mutual_knn | ...
    kernel: str = "linear"        # cka: linear | rbf
    unbiased: bool = True         # cka
    sigma: float | None = None    # cka rbf
    sigma_mode: str = "absolute"  # cka rbf: absolute | median
    rsa_method: str = "correlation"  # rsa: correlation | cosine | euclidean
    corr_method: str = "pearson"  # rsa: pearson | spearman
    k: int = 10                   # mutual_knn
    options: tuple[tuple[str, Any], ...] = ()  # other families' parameters

    @classmethod
    def of(cls, method: str, **options: Any) -> MetricSpec:
        """A spec of a family that keeps its parameters in `options`."""
        return cls(method, options=tuple(sorted(options.items())))

    def option(self, name: str, default: Any = None) -> Any:
        """The value of one entry of `options` (default when absent)."""
        return dict(self.options).get(name, default)

    @property
    def family(self) -> Any:
        """The family class of this spec (imported on first use: pysim.registry)."""
        return registry.load(registry.METRICS, self.method)

    @property
    def id(self) -> str:
        return self.family.metric_id(self)

    def params(self) -> dict[str, Any]:
        """The parameters that define this metric (stored as attributes of its matrix)."""
        return self.family.params(self)


def load_metrics(path: str | os.PathLike) -> list[MetricSpec]:
    """Load a metric list (seed format plus the extra keys of DESIGN §3); ids must be unique."""
    data = read_json(path, reject_duplicates=True)
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: metric list must be a non-empty JSON list")
    specs = [_metric_spec(path, i, e) for i, e in enumerate(data)]
    seen = set()
    for spec in specs:
        if spec.id in seen:
            raise InputError(f"{path}: metric '{spec.id}' is listed twice")
        seen.add(spec.id)
    return specs


def _metric_spec(path, index: int, entry: Any) -> MetricSpec:
    where = f"{path}: metric #{index + 1}"
    if not isinstance(entry, dict):
        raise InputError(f"{where}: entry must be a JSON object")
    method = entry.get("sim_method")
    if method not in METRIC_METHODS:
        raise InputError(f"{where}: unknown sim_method {method!r} "
                         f"(known: {', '.join(METRIC_METHODS)})")
    return registry.load(registry.METRICS, method).parse(entry, where)
