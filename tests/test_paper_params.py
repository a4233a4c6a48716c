"""assets/paper: the study's own config files, unchanged, and a params file naming real params."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pysim.config import load_dataset_list, load_metrics, load_models

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "assets" / "paper"
SEED = ROOT / "tests" / "fixtures" / "seed"


def paper_params() -> dict:
    return yaml.safe_load((PAPER / "params.yaml").read_text())


def test_the_study_files_are_unchanged_copies():
    for name in ("models_config_wo_alignment.json", "webdatasets_w_insub10k.txt",
                 "webdatasets_w_in1k.txt", "similarity_metric_config_local_global.json",
                 "dataset_info.json"):
        assert (PAPER / name).read_bytes() == (SEED / name).read_bytes(), name
    assert len(load_models(PAPER / "models_config_wo_alignment.json")) == 64
    assert len(load_metrics(PAPER / "similarity_metric_config_local_global.json")) == 3
    datasets = load_dataset_list(PAPER / "webdatasets_w_insub10k.txt")
    assert len(datasets) == 23 and "wds/vtab/diabetic_retinopathy" in datasets


def test_params_file_names_existing_files_and_known_params():
    params = paper_params()
    for name in ("models", "datasets", "performance_datasets", "metrics", "dataset_info"):
        path = Path(params[name].replace("${projectDir}", str(ROOT)))
        assert path.is_file() and path.parent == PAPER, name
    config = (ROOT / "nextflow.config").read_text()
    block = config[config.index("params {"):]
    known = set(re.findall(r"^\s{4}(\w+)\s+=", block, flags=re.M))
    assert set(params) <= known, set(params) - known


def test_params_file_holds_the_studys_protocol():
    params = paper_params()
    assert (params["max_samples"], params["subset_mode"]) == (10000, "per_class")
    assert params["probe_batch_size"] == 1024 and params["probe_epochs"] == 20
    assert [float(x) for x in params["probe_lrs"].split(",")] == [1e-1, 1e-2, 1e-3, 1e-4]
    assert params["probe_seeds"] == "0,1,2" and params["probe_val_proportion"] == 0.2
    assert (params["probe_selection"], params["probe_wd_grid"],
            params["probe_tie_break"]) == ("per_seed", "paper", "order")
    # Appendix F's Bonferroni family: the notebook's sim_metrics, metric ids of the paper config
    family = params["consistency_anchor_test_metrics"].split(",")
    assert set(family) == {"cka_kernel_rbf_unbiased_sigma_0.4", "cka_kernel_linear_unbiased"}
    assert set(family) < {m.id for m in load_metrics(PAPER / "similarity_metric_config_local_"
                                                                 "global.json")}
    anchors = params["consistency_anchors"].split(",")  # Appendix F's six anchors
    assert len(anchors) == 6 and set(anchors) <= set(load_models(PAPER / "models_config_wo_"
                                                                 "alignment.json"))
