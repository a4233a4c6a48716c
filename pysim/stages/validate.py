"""The pysim-validate stage: check the model table, dataset list and metric list before any
work (pysim.validate), optionally map models to loaders and check their weights, and write the
normalised model and dataset tables the workflow builds its channels from."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from pysim.validate import (
    check_analysis_ids,
    dataset_table,
    model_table,
    plain_representations,
    select_models,
    summary,
    validate_inputs,
    write_json,
)


def run_validate(models: str | os.PathLike, datasets: str | os.PathLike,
                 metrics: str | os.PathLike, dataset_root: str | os.PathLike | None = None,
                 dataset_info: str | os.PathLike | None = None, resolve: bool = False,
                 check_weights: bool = False, model_ids: Sequence[str] = (),
                 subset_sizes: Sequence[int] = (),
                 performance: str | os.PathLike | None = None,
                 write_models: str | os.PathLike | None = None,
                 write_datasets: str | os.PathLike | None = None,
                 model_sets: str | os.PathLike | None = None,
                 anchors: Sequence[str] = (),
                 anchor_test_metrics: Sequence[str] = ()) -> Iterator[str]:
    """Yield the summary, the resolution report if asked, then 'inputs OK'; InputError if bad.

    `performance` is the --performance_datasets list (None: the similarity list), matched
    to the similarity datasets by display name. `model_ids` restricts the models (checked,
    resolved and written); the tables are written before the weights are checked, only once
    the inputs are valid. `model_sets`, `anchors` and `anchor_test_metrics` are
    CONSISTENCY's options, checked here (with its own parser) so that a bad one stops the
    run before any extraction.
    """
    inputs = validate_inputs(models, datasets, metrics, dataset_root, dataset_info, performance)
    inputs.models = select_models(inputs.models, list(model_ids), Path(models).name)
    check_analysis_ids(inputs, anchors, anchor_test_metrics)
    if model_sets:
        from pysim.stages.consistency import load_model_sets  # pandas: only when asked

        load_model_sets(model_sets, models)
    if write_models:
        # with --resolve/--check-weights, patterns are expanded against the architecture
        # (torch), as extraction will expand them; otherwise only plain module lists are
        expand = plain_representations
        if resolve or check_weights:
            from pysim.models.resolve import representation_ids as expand
        write_json(model_table(inputs.models, models, expand), write_models)
    if write_datasets:
        write_json(dataset_table(inputs.datasets, list(subset_sizes),
                                 performance=inputs.performance, matches=inputs.matches),
                   write_datasets)
    yield summary(inputs)
    if resolve or check_weights:
        import pysim.models  # torch: only when asked

        report = pysim.models.check_weights if check_weights else pysim.models.resolve_report
        yield report(inputs.models, base_dir=Path(models).resolve().parent)
    yield "inputs OK"
