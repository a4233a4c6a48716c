"""Input checks run before any work (the VALIDATE stage)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pysim.config import (
    IMAGENET_ID,
    IMAGENET_SUBSET,
    MetricSpec,
    ModelEntry,
    check_dataset_dirs,
    check_dataset_ids,
    dataset_dir,
    dataset_entries,
    dataset_key,
    derived_kind,
    is_pattern,
    load_dataset_info,
    load_dataset_list,
    load_metrics,
    load_models,
    representation_id,
)
from pysim.errors import DiskFullError, InputError, is_disk_full

# Roles of VALIDATE's dataset rows (DESIGN §7): analysed (in --datasets), performance (in
# --performance_datasets only: probed, not analysed), extracted (ImageNet, extracted only for
# the derived ids of the lists) and subset_size (the ImageNet subset-size sensitivity).
ROLES = ("analysed", "performance", "extracted", "subset_size")


@dataclass
class Inputs:
    """The three validated inputs."""

    models: dict[str, ModelEntry]
    datasets: list[str]
    metrics: list[MetricSpec]
    dataset_info: dict[str, dict[str, str]] | None = None
    performance: list[str] | None = None  # --performance_datasets (None: the similarity list)
    # similarity dataset id -> the performance dataset whose probes it uses (by display name)
    matches: dict[str, str] | None = None


def validate_inputs(models: str | os.PathLike, datasets: str | os.PathLike,
                    metrics: str | os.PathLike, dataset_root: str | os.PathLike | None = None,
                    dataset_info: str | os.PathLike | None = None,
                    performance: str | os.PathLike | None = None) -> Inputs:
    """Load and check every input; raises InputError on the first problem."""
    inputs = Inputs(load_models(models), load_dataset_list(datasets), load_metrics(metrics),
                    load_dataset_info(dataset_info) if dataset_info else None,
                    load_dataset_list(performance) if performance else None)
    check_dataset_ids(inputs.datasets)
    if inputs.performance is not None:
        check_dataset_ids(inputs.performance)
    if dataset_root is not None:
        check_dataset_dirs(dataset_root, inputs.datasets)
        if inputs.performance is not None:
            check_dataset_dirs(dataset_root, [i for i in inputs.performance
                                              if i not in inputs.datasets])
    # without a performance list every dataset is probed and uses its own probes
    inputs.matches = ({i: i for i in inputs.datasets} if inputs.performance is None else
                      match_performance(inputs.datasets, inputs.performance,
                                        inputs.dataset_info))
    return inputs


def match_performance(similarity: list[str], performance: list[str],
                      info: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """Similarity dataset id -> the performance dataset id with the same display name.

    The original study's rule (§4.7, App. G): both lists' ids are replaced by their display
    names in the dataset table (the id itself where the table has none), and a similarity
    dataset takes the accuracies of the performance dataset of its name, so that
    `imagenet-subset-10k` (named ImageNet-1k) is paired with the full `wds/imagenet1k`.
    A similarity dataset without a match is left out of the sim-vs-perf analysis. Refused
    (InputError): two performance datasets of one name (which one's accuracy is meant?) and
    a performance dataset that matches no similarity dataset (its probes would serve nothing;
    usually a missing --dataset_info entry).
    """
    names = {e.dataset_id: e.name for e in dataset_entries(list(dict.fromkeys(
        [*similarity, *performance])), info)}
    by_name: dict[str, str] = {}
    for perf in performance:
        other = by_name.setdefault(names[perf], perf)
        if other != perf:
            raise InputError(f"--performance_datasets: '{other}' and '{perf}' have the same "
                             f"display name '{names[perf]}'; a similarity dataset of that "
                             "name cannot take the accuracies of both")
    used = {names[s] for s in similarity}
    unmatched = [p for p in performance if names[p] not in used]
    if unmatched:
        p = unmatched[0]
        raise InputError(f"--performance_datasets: '{p}' (display name '{names[p]}') matches "
                         "no dataset of --datasets by display name (--dataset_info); its "
                         "probes would be used nowhere")
    return {s: by_name[names[s]] for s in similarity if names[s] in by_name}


def summary(inputs: Inputs) -> str:
    """A short human-readable summary of validated inputs."""
    sources: dict[str, int] = {}
    for entry in inputs.models.values():
        sources[entry.source] = sources.get(entry.source, 0) + 1
    by_source = ", ".join(f"{n} {s}" for s, n in sorted(sources.items()))
    lines = [
        f"models:   {len(inputs.models)} ({by_source})",
        f"datasets: {len(inputs.datasets)} ({', '.join(inputs.datasets[:5])}"
        f"{', ...' if len(inputs.datasets) > 5 else ''})",
        f"metrics:  {len(inputs.metrics)} ({', '.join(m.id for m in inputs.metrics)})",
    ]
    aligned = [m for m, e in inputs.models.items() if e.alignment]
    if aligned:
        kinds = sorted({inputs.models[m].alignment for m in aligned})
        lines.insert(1, f"aligned:  {len(aligned)} ({', '.join(kinds)}: {', '.join(aligned[:3])}"
                        f"{', ...' if len(aligned) > 3 else ''})")
    derived = [d for d in inputs.datasets if derived_kind(d)]
    if derived:
        lines.append(f"derived:  {len(derived)} ({', '.join(derived)}; sliced from the "
                     f"{IMAGENET_ID} features)")
    if inputs.performance is not None:
        lines.append(performance_summary(inputs.datasets, inputs.matches or {}))
    return "\n".join(lines)


def performance_summary(datasets: list[str], matches: dict[str, str]) -> str:
    """Which probes each similarity dataset's sim-vs-perf rows use; the unmatched named."""
    paired = [f"{s} <- {p}" for s, p in matches.items() if s != p]
    line = (f"performance: {len(set(matches.values()))} probed datasets for "
            f"{len(matches)} of {len(datasets)} datasets"
            + (f" ({', '.join(paired)})" if paired else ""))
    unmatched = [s for s in datasets if s not in matches]
    if unmatched:
        line += (f"\nWARNING: no dataset of --performance_datasets has the display name of "
                 f"{', '.join(unmatched)}: left out of the similarity-vs-gap analysis")
    return line


def check_analysis_ids(inputs: Inputs, anchors: Sequence[str] = (),
                       anchor_test_metrics: Sequence[str] = ()) -> None:
    """CONSISTENCY's id options, checked before any work: anchors must be models of the
    (selected) table, anchor-test metrics ids of the metric list; else one InputError."""
    unknown = [a for a in anchors if a not in inputs.models]
    if unknown:
        raise InputError(f"--consistency_anchors: unknown model id '{unknown[0]}' "
                         "(not among the models of the run)")
    ids = [m.id for m in inputs.metrics]
    unknown = [m for m in anchor_test_metrics if m not in ids]
    if unknown:
        raise InputError(f"--consistency_anchor_test_metrics: unknown metric id '{unknown[0]}' "
                         f"(the metric list has: {', '.join(ids)})")


# --- the tables the workflow reads (VALIDATE's outputs) ---------------------------------

def select_models(models: dict[str, ModelEntry], model_ids: list[str] | None,
                  table_name: str) -> dict[str, ModelEntry]:
    """The entries of `model_ids` in table order (all when None); ids must name files."""
    if model_ids:
        unknown = [i for i in model_ids if i not in models]
        if unknown:
            raise InputError(f"--model_ids: unknown model id '{unknown[0]}' (not in {table_name})")
        models = {i: e for i, e in models.items() if i in model_ids}
    bad = [i for i in models if "/" in i or "'" in i or i.startswith(".")]
    if bad:
        raise InputError(f"--models: model id '{bad[0]}' cannot be used as a file name")
    return models


def natural_key(text: str) -> str:
    """`text` with every run of digits as ten digits: blocks.2 sorts before blocks.10."""
    return re.sub(r"\d+", lambda m: m.group().zfill(10), text)


def plain_representations(entry: ModelEntry) -> list[str] | None:
    """The representation ids of an entry without patterns (primary first); None for a
    pattern, whose names only the architecture knows (pysim.models.representation_ids)."""
    if any(is_pattern(m) for m in entry.modules):
        return None
    return [representation_id(entry.model_id, m, k == 0) for k, m in enumerate(entry.modules)]


def model_table(models: dict[str, ModelEntry], models_path: str | os.PathLike,
                expand: Callable[[ModelEntry], list[str] | None] = plain_representations
                ) -> dict:
    """id -> the table's own entry, a relative weights path made absolute (table's folder),
    plus what the workflow builds its channels from, decided here once: `layer_wise` (the
    extraction writes one file per representation) and `representations` (the ids in order,
    primary first and the others in natural order;
    by `expand`, null where a pattern could not be expanded here)."""
    base = Path(models_path).resolve().parent
    out = {}
    for model_id, entry in models.items():
        raw = dict(entry.raw)
        if isinstance(raw.get("weights"), str) and not raw["weights"].startswith("/"):
            raw["weights"] = os.path.normpath(base / raw["weights"])
        try:
            reps = expand(entry)
        except InputError:  # a pattern matching no module: the resolution report says so
            reps = None
        if reps:  # rows of the similarity files: primary first, the others in natural order
            reps = reps[:1] + sorted(reps[1:], key=natural_key)
        out[model_id] = {**raw, "layer_wise": entry.multi, "representations": reps}
    return out


def dataset_row(dataset_id: str, role: str, probe: bool = False,
                performance: str = "") -> dict[str, str | bool]:
    """One dataset: id, output key, folder under the root ('' when derived), derived_from,
    role (ROLES), probe (LINEAR_PROBE runs on it: it is in the performance list) and
    performance (an analysed row: the id of the dataset whose probes its sim-vs-perf rows use,
    '' for none)."""
    derived = bool(derived_kind(dataset_id))
    return {"id": dataset_id, "key": dataset_key(dataset_id),
            "folder": "" if derived else dataset_dir("", dataset_id).name,
            "derived_from": IMAGENET_ID if derived else "", "role": role, "probe": probe,
            "performance": performance}


def dataset_table(datasets: list[str], subset_sizes: list[int] | None = None,
                  reference: int = 10, performance: list[str] | None = None,
                  matches: dict[str, str] | None = None) -> list[dict[str, str | bool]]:
    """The rows of every dataset to process.

    The list's datasets (analysed); the performance list's others (performance: probed, not
    analysed; None: the performance list is the list itself, each dataset its own match);
    ImageNet when a derived id needs it and neither list holds it (extracted); and the
    imagenet-subset-<N>k of `subset_sizes` (plus the reference) when the list holds ImageNet
    (subset_size). `matches`: similarity id -> performance id (match_performance).
    """
    if performance is None:
        performance, matches = datasets, {i: i for i in datasets}
    matches = matches or {}
    rows = [dataset_row(i, "analysed", i in performance, matches.get(i, ""))
            for i in datasets]
    rows += [dataset_row(i, "performance", True) for i in performance if i not in datasets]
    listed = [*datasets, *performance]
    if any(derived_kind(i) for i in listed) and IMAGENET_ID not in listed:
        rows.append(dataset_row(IMAGENET_ID, "extracted"))
    imagenet = any(i == IMAGENET_ID or IMAGENET_SUBSET.fullmatch(i) for i in datasets)
    if subset_sizes and imagenet:
        for size in sorted({*subset_sizes, reference}):
            rows.append(dataset_row(f"imagenet-subset-{size}k", "subset_size"))
    return rows


def performance_map(rows: list[dict]) -> dict[str, str]:
    """From VALIDATE's rows: analysed dataset id -> the id whose probes it uses (matched)."""
    return {r["id"]: r["performance"] for r in rows
            if r.get("role") == "analysed" and r.get("performance")}


def write_json(data, path: str | os.PathLike) -> None:
    """Write `data` as indented JSON (the workflow reads it with splitJson); a full disk is
    one DiskFullError line naming the folder, and no partial file is left."""
    text = json.dumps(data, indent=2) + "\n"
    try:
        Path(path).write_text(text)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        Path(path).unlink(missing_ok=True)
        raise DiskFullError(Path(path).resolve().parent, len(text.encode())) from None
