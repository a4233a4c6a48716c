"""The pysim-consistency stage: consistency of similarity structure across datasets and the
further analyses (model maps, metric agreement, anchor models), written as tables; with a
model-set file also the consistency of each listed model-set pair."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd
import yaml

from pysim.analysis.model_sets import ModelSets, parse_model_sets
from pysim.analysis.run import compute_consistency, compute_model_set_pairs, write_outputs
from pysim.analysis.transforms import TRANSFORMS
from pysim.config import load_models
from pysim.errors import InputError

__all__ = ["TRANSFORMS", "load_model_sets", "run_consistency"]


def run_consistency(similarities: Sequence[str | os.PathLike], models: str | os.PathLike,
                    out_dir: str | os.PathLike, dataset_info: str | os.PathLike | None = None,
                    permutations: int = 1000, bootstrap: int = 1000, seed: int = 0,
                    num_clusters: int = 5, transform: str = "none",
                    anchor_models: Sequence[str] | None = None,
                    model_sets: str | os.PathLike | None = None,
                    anchor_test_metrics: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Compute every consistency table and write each (atomically) into `out_dir`.

    `anchor_test_metrics` (default: every metric) form anchor_tests.csv's Bonferroni family.

    `model_sets` (a JSON/YAML file, DESIGN §3) is checked before any computation."""
    sets = load_model_sets(model_sets, models) if model_sets else None
    outputs = compute_consistency(similarities, models, dataset_info, permutations, bootstrap,
                                  seed, num_clusters, transform, anchor_models or None,
                                  anchor_test_metrics or None)
    if sets is not None:
        outputs.update(compute_model_set_pairs(similarities, models, sets, transform))
    write_outputs(outputs, out_dir)
    return outputs


def load_model_sets(path: str | os.PathLike, models: str | os.PathLike) -> ModelSets:
    """Read a model-set file (YAML, or JSON, which YAML reads too) and resolve its sets
    against the model table; any problem is one InputError naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            spec = yaml.load(handle, Loader=_UniqueKeyLoader)  # a SafeLoader
    except OSError as exc:
        raise InputError(f"--model-sets: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML/JSON ({' '.join(str(exc).split())})") from None
    table = load_models(models)
    return parse_model_sets(spec, {m: e.categories for m, e in table.items()}, str(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (e.g. a set defined twice,
    which plain YAML loading would silently keep the last of)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

