"""pysim-validate: good inputs pass; each kind of bad input is one stderr line and exit 2."""

import json
import shutil

import pytest
import yaml

from conftest import ROOT, SEED, assert_bad_input, run_cli

GOOD_MODEL = {"model_name": "resnet18", "source": "torchvision", "module_name": "avgpool",
              "model_parameters": {}, "objective": "Supervised"}


@pytest.fixture
def inputs(tmp_path):
    """A valid set of the three inputs plus a dataset root with one dataset."""
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"m1": GOOD_MODEL, "m2": {**GOOD_MODEL, "model_name": "x"}}))
    datasets = tmp_path / "datasets.txt"
    datasets.write_text("wds/vtab/cifar10\n")
    metrics = tmp_path / "metrics.json"
    shutil.copy(SEED / "similarity_metric_config_local_global.json", metrics)
    root = tmp_path / "data"
    split = root / "wds_vtab-cifar10" / "train"
    split.mkdir(parents=True)
    (split / "0.tar").write_bytes(b"")
    return {"models": models, "datasets": datasets, "metrics": metrics, "root": root}


def validate(inputs, *extra):
    return run_cli("pysim-validate", "--models", inputs["models"], "--datasets",
                   inputs["datasets"], "--metrics", inputs["metrics"], *extra)


def test_seed_inputs_pass():
    proc = run_cli("pysim-validate", "--models", SEED / "models_config_with_alignment.json",
                   "--datasets", SEED / "webdatasets_w_in1k.txt",
                   "--metrics", SEED / "similarity_metric_config_all.json",
                   "--dataset-info", SEED / "dataset_info.json")
    assert proc.returncode == 0, proc.stderr
    assert "models:   73" in proc.stdout and "datasets: 23" in proc.stdout
    assert "inputs OK" in proc.stdout


def test_good_inputs_with_dataset_root(inputs):
    proc = validate(inputs, "--dataset-root", inputs["root"])
    assert proc.returncode == 0, proc.stderr
    assert "inputs OK" in proc.stdout


def write_models(inputs, table):
    inputs["models"].write_text(json.dumps(table) if not isinstance(table, str) else table)


@pytest.mark.parametrize("table, fragments", [
    ('{\n  "m1": {\n    "model_name": "a",\n    "source" "timm"\n  }\n}', ["line 4", "malformed"]),
    ({"m1": {**GOOD_MODEL, "source": "keras"}}, ["m1", "unknown source 'keras'"]),
    ({"m1": {k: v for k, v in GOOD_MODEL.items() if k != "module_name"}},
     ["m1", "missing 'module_name'"]),
    ({"m1": {**GOOD_MODEL, "objective": ["Supervised"]}}, ["m1", "category 'objective'"]),
    ({"m1": {**GOOD_MODEL, "size_class": 3}}, ["m1", "size_class"]),
    ({}, ["non-empty"]),
])
def test_bad_model_table(inputs, table, fragments):
    write_models(inputs, table)
    proc = validate(inputs)
    assert_bad_input(proc, str(inputs["models"]), *fragments)
    assert "inputs OK" not in proc.stdout


def test_duplicate_model_id(inputs):
    body = json.dumps(GOOD_MODEL)
    write_models(inputs, f'{{"m1": {body},\n "m1": {body}}}')
    assert_bad_input(validate(inputs), "duplicate", "'m1'")


@pytest.mark.parametrize("metrics, fragments", [
    ([{"sim_method": "procrustes"}], ["metric #1", "unknown sim_method 'procrustes'"]),
    ([{"sim_method": "cka", "sim_kernel": "linear"}, {"sim_method": "cka", "sim_kernel": "rbf"}],
     ["metric #2", "sigma"]),
    ([{"sim_method": "cka", "sim_kernel": "rbf", "sigma": 0}], ["metric #1", "sigma"]),
    ([{"sim_method": "rsa", "corr_method": "kendall"}], ["metric #1", "kendall"]),
    ([], ["non-empty"]),
])
def test_bad_metric_list(inputs, metrics, fragments):
    inputs["metrics"].write_text(json.dumps(metrics))
    proc = validate(inputs)
    assert_bad_input(proc, str(inputs["metrics"]), *fragments)
    assert "inputs OK" not in proc.stdout


def test_empty_dataset_list(inputs):
    inputs["datasets"].write_text("\n# nothing here\n\n")
    assert_bad_input(validate(inputs), str(inputs["datasets"]), "empty")


def test_missing_dataset_directory(inputs):
    inputs["datasets"].write_text("wds/vtab/cifar10\nwds/cars\n")
    assert_bad_input(validate(inputs, "--dataset-root", inputs["root"]),
                     "wds/cars", "wds_cars", "not found")


def test_split_without_shards(inputs):
    (inputs["root"] / "wds_vtab-cifar10" / "train" / "0.tar").unlink()
    assert_bad_input(validate(inputs, "--dataset-root", inputs["root"]),
                     "wds/vtab/cifar10", "'train'", "no shards")


def test_missing_file_and_missing_option(inputs, tmp_path):
    inputs["models"] = tmp_path / "nope.json"
    assert_bad_input(validate(inputs), "nope.json", "cannot read")
    proc = run_cli("pysim-validate", "--datasets", inputs["datasets"])
    assert_bad_input(proc, "--models")


def test_help_exits_zero():
    proc = run_cli("pysim-validate", "--help")
    assert proc.returncode == 0 and "--dataset-root" in proc.stdout


# --- CONSISTENCY's options, refused by VALIDATE before any work (issue 21) ------------------

def paper_inputs():
    paper = ROOT / "assets" / "paper"
    return {"models": paper / "models_config_wo_alignment.json",
            "datasets": paper / "webdatasets_w_insub10k.txt",
            "metrics": paper / "similarity_metric_config_local_global.json"}, paper


def test_paper_model_sets_anchors_and_metrics_pass():
    inputs, paper = paper_inputs()
    params = yaml.safe_load((paper / "params.yaml").read_text())
    args = ["--model-sets", paper / "model_sets.yaml"]
    for anchor in params["consistency_anchors"].split(","):
        args += ["--anchors", anchor]
    for metric in params["consistency_anchor_test_metrics"].split(","):
        args += ["--anchor-test-metrics", metric]
    proc = validate(inputs, *args)
    assert proc.returncode == 0, proc.stderr
    assert "inputs OK" in proc.stdout


def test_unknown_anchor_is_refused(inputs):
    assert_bad_input(validate(inputs, "--anchors", "m1", "--anchors", "nope"),
                     "--consistency_anchors", "'nope'")


def test_anchor_outside_the_selected_models_is_refused(inputs):
    assert_bad_input(validate(inputs, "--model-ids", "m1", "--anchors", "m2"),
                     "--consistency_anchors", "'m2'")


def test_unknown_anchor_test_metric_is_refused(inputs):
    assert_bad_input(validate(inputs, "--anchor-test-metrics", "cka_kernel_linear_unbiased",
                              "--anchor-test-metrics", "cka_linear"),
                     "--consistency_anchor_test_metrics", "'cka_linear'",
                     "cka_kernel_linear_unbiased")


@pytest.mark.parametrize("text, fragments", [
    ("sets: {A: [{add: {model: [m1, m2]}}]}\npairs: [[A, B]]\n", ["unknown set 'B'"]),
    ("sets: {A: [{add: {model: [m1, m9]}}]}\npairs: [[A, A]]\n", ["unknown model id 'm9'"]),
    ("sets: {A: [{add: {colour: red}}]}\npairs: [[A, A]]\n", ["unknown category 'colour'"]),
    ("sets: [unclosed\n", ["not valid YAML/JSON"]),
])
def test_bad_model_sets_file_is_refused(inputs, tmp_path, text, fragments):
    sets = tmp_path / "sets.yaml"
    sets.write_text(text)
    assert_bad_input(validate(inputs, "--model-sets", sets), "sets.yaml", *fragments)


def test_missing_model_sets_file_is_refused(inputs, tmp_path):
    assert_bad_input(validate(inputs, "--model-sets", tmp_path / "none.yaml"), "none.yaml")
