"""pysim-validate --write-models / --write-datasets: the tables the workflow reads."""

import json

from conftest import SEED, assert_bad_input, run_cli

MODEL = {"model_name": "resnet18", "source": "torchvision", "module_name": "avgpool",
         "model_parameters": {}, "objective": "Supervised"}


def write_inputs(tmp_path, dataset_ids):
    (tmp_path / "tables").mkdir()
    models = tmp_path / "tables" / "models.json"
    models.write_text(json.dumps({"a": MODEL, "b": {**MODEL, "weights": "w/b.pt"},
                                  "c": {**MODEL, "weights": "/abs/c.pt"}}))
    datasets = tmp_path / "datasets.txt"
    datasets.write_text("".join(f"{i}\n" for i in dataset_ids))
    return ["--models", models, "--datasets", datasets,
            "--metrics", SEED / "similarity_metric_config_local_global.json"]


def test_model_table_is_the_selected_entries_with_absolute_weights(tmp_path):
    args = write_inputs(tmp_path, ["wds/vtab/cifar10"])
    out = tmp_path / "models_out.json"
    proc = run_cli("pysim-validate", *args, "--model-ids", "c,b", "--write-models", out)
    assert proc.returncode == 0, proc.stderr
    table = json.loads(out.read_text())
    assert list(table) == ["b", "c"]  # table order, not the order asked
    single = {"layer_wise": False}
    assert table["b"] == {**MODEL, "weights": str(tmp_path / "tables" / "w" / "b.pt"), **single,
                          "representations": ["b"]}
    assert table["c"] == {**MODEL, "weights": "/abs/c.pt", **single, "representations": ["c"]}


def test_model_table_decides_the_representations_once(tmp_path):
    # A module list gives its ids primary first, then in natural order (layer2 < layer3 <
    # layer10, which a plain sort would not give) as the similarity rows are; a pattern
    # is expanded (with --resolve) against resnet18's own modules (layer<k>.1 for k = 1..4,
    # not its sub-modules); without --resolve (no torch) a pattern stays null.
    (tmp_path / "tables").mkdir()
    models = tmp_path / "tables" / "models.json"
    plain = {**MODEL, "pretrained": False}
    models.write_text(json.dumps({
        "one": plain,
        "list": {**plain, "module_name": ["avgpool", "layer3", "layer10", "layer2"]},
        "pat": {**plain, "module_name": ["avgpool", "layer*.1"]},
    }))
    datasets = tmp_path / "datasets.txt"
    datasets.write_text("wds/vtab/cifar10\n")
    args = ["--models", models, "--datasets", datasets,
            "--metrics", SEED / "similarity_metric_config_local_global.json"]
    for flags, pattern in (([], None),
                           (["--resolve"], ["pat", "pat@layer1.1", "pat@layer2.1",
                                            "pat@layer3.1", "pat@layer4.1"])):
        out = tmp_path / f"out{len(flags)}.json"
        proc = run_cli("pysim-validate", *args, *flags, "--write-models", out)
        assert proc.returncode == 0, proc.stderr
        table = json.loads(out.read_text())
        assert [table[i]["layer_wise"] for i in table] == [False, True, True]
        assert table["one"]["representations"] == ["one"]
        assert table["list"]["representations"] == ["list", "list@layer2", "list@layer3",
                                                  "list@layer10"]
        assert table["pat"]["representations"] == pattern
        # the entry itself is the table's, untouched
        assert table["list"]["module_name"] == ["avgpool", "layer3", "layer10", "layer2"]


def test_unknown_model_id_is_one_line(tmp_path):
    args = write_inputs(tmp_path, ["wds/vtab/cifar10"])
    proc = run_cli("pysim-validate", *args, "--model-ids", "a,nope",
                   "--write-models", tmp_path / "out.json")
    assert_bad_input(proc, "--model_ids: unknown model id 'nope' (not in models.json)")


def test_dataset_table_rows(tmp_path):
    args = write_inputs(tmp_path, ["wds/vtab/cifar10", "living17"])
    out = tmp_path / "datasets.json"
    proc = run_cli("pysim-validate", *args, "--write-datasets", out, "--subset-sizes", "5")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == [
        # without --performance-datasets every listed dataset is probed, using its own probes
        {"id": "wds/vtab/cifar10", "key": "wds_vtab_cifar10", "folder": "wds_vtab-cifar10",
         "derived_from": "", "role": "analysed", "probe": True,
         "performance": "wds/vtab/cifar10"},
        {"id": "living17", "key": "living17", "folder": "",
         "derived_from": "wds/imagenet1k", "role": "analysed", "probe": True,
         "performance": "living17"},
        # extracted for living17 only; no subset-size rows without ImageNet in the list
        {"id": "wds/imagenet1k", "key": "wds_imagenet1k", "folder": "wds_imagenet1k",
         "derived_from": "", "role": "extracted", "probe": False, "performance": ""},
    ]


def test_subset_size_rows_with_imagenet_listed(tmp_path):
    args = write_inputs(tmp_path, ["wds/imagenet1k"])
    out = tmp_path / "datasets.json"
    proc = run_cli("pysim-validate", *args, "--write-datasets", out, "--subset-sizes", "20,5")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    assert [(r["id"], r["role"]) for r in rows] == [
        ("wds/imagenet1k", "analysed"), ("imagenet-subset-5k", "subset_size"),
        ("imagenet-subset-10k", "subset_size"), ("imagenet-subset-20k", "subset_size")]
    assert rows[1]["derived_from"] == "wds/imagenet1k" and rows[1]["folder"] == ""


def test_bad_subset_sizes_is_one_line(tmp_path):
    args = write_inputs(tmp_path, ["wds/imagenet1k"])
    proc = run_cli("pysim-validate", *args, "--write-datasets", tmp_path / "d.json",
                   "--subset-sizes", "5,x")
    assert_bad_input(proc, "--subset-sizes", "positive integers")
