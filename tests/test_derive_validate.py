"""pysim-validate with derived dataset ids: the study's list against a CLIP-benchmark root."""

from __future__ import annotations

import shutil

import pytest

from conftest import ROOT, SEED, assert_bad_input, run_cli
from pysim.config import (
    check_dataset_ids,
    derived_kind,
    extraction_ids,
    load_dataset_list,
    source_dataset,
)
from pysim.errors import InputError

STUDY_LIST = SEED / "webdatasets_w_insub10k.txt"
DEMO_MODELS = ROOT / "assets" / "demo" / "models.json"
DERIVED = ("entity30", "living17", "nonliving26", "imagenet-subset-10k")


def folder(dataset_id: str) -> str:
    """CLIP-benchmark folder name of a wds id, written out here independently of pysim."""
    parts = dataset_id.split("/")[1:]
    return "wds_" + "-".join(parts)


def make_root(root, ids, splits=("train", "test")):
    """Empty CLIP-benchmark folders: <split>/0.tar, nshards.txt, classnames.txt."""
    for dataset_id in ids:
        ddir = root / folder(dataset_id)
        for split in splits:
            (ddir / split).mkdir(parents=True)
            (ddir / split / "0.tar").write_bytes(b"")
            (ddir / split / "nshards.txt").write_text("1\n")
        (ddir / "classnames.txt").write_text("a\nb\n")
    return root


@pytest.fixture
def study(tmp_path):
    """The study's dataset list and a root holding its wds datasets and wds_imagenet1k."""
    ids = load_dataset_list(STUDY_LIST)
    wds = [i for i in ids if i.startswith("wds/")]
    root = make_root(tmp_path / "data", [*wds, "wds/imagenet1k"])
    metrics = tmp_path / "metrics.json"
    shutil.copy(SEED / "similarity_metric_config_local_global.json", metrics)
    return {"ids": ids, "root": root, "metrics": metrics, "datasets": STUDY_LIST}


def validate(study, *extra):
    return run_cli("pysim-validate", "--models", DEMO_MODELS, "--datasets", study["datasets"],
                   "--metrics", study["metrics"], "--dataset-root", study["root"], *extra)


def test_study_list_holds_the_derived_ids_as_bare_names(study):
    assert len(study["ids"]) == 23 and all(i in study["ids"] for i in DERIVED)
    assert "wds/imagenet1k" not in study["ids"]
    assert [derived_kind(i) for i in DERIVED] == ["breeds"] * 3 + ["imagenet_subset"]
    assert {source_dataset(i) for i in DERIVED} == {"wds/imagenet1k"}
    extract = extraction_ids(study["ids"])
    assert extract[-1] == "wds/imagenet1k" and len(extract) == 20
    assert not any(i in extract for i in DERIVED)


def test_study_list_resolves_against_a_clip_benchmark_root(study):
    proc = validate(study, "--resolve")
    assert proc.returncode == 0, proc.stderr
    assert "datasets: 23" in proc.stdout and "inputs OK" in proc.stdout
    assert "derived:  4 (entity30, living17, nonliving26, imagenet-subset-10k;" in proc.stdout


def test_derived_ids_need_imagenet_folder(study):
    shutil.rmtree(study["root"] / "wds_imagenet1k")
    assert_bad_input(validate(study), "entity30", "derived from wds/imagenet1k",
                     str(study["root"] / "wds_imagenet1k"))


def test_breeds_needs_imagenet_test_split_but_subset_does_not(study, tmp_path):
    shutil.rmtree(study["root"] / "wds_imagenet1k" / "test")
    assert_bad_input(validate(study), "entity30", "split directory",
                     str(study["root"] / "wds_imagenet1k" / "test"))
    only_subset = tmp_path / "subset.txt"
    only_subset.write_text("imagenet-subset-10k\nimagenet-subset-1k\n")
    proc = validate({**study, "datasets": only_subset})
    assert proc.returncode == 0, proc.stderr


def test_imagenet_train_split_without_shards_is_refused(study, tmp_path):
    (study["root"] / "wds_imagenet1k" / "train" / "0.tar").unlink()
    only_subset = tmp_path / "subset.txt"
    only_subset.write_text("imagenet-subset-10k\n")
    assert_bad_input(validate({**study, "datasets": only_subset}), "imagenet-subset-10k",
                     "no shards")


@pytest.mark.parametrize("name, fragments", [
    ("living18", ["'living18'", "unknown dataset id"]),
    ("imagenet-subset-10", ["'imagenet-subset-10'", "imagenet-subset-<N>k"]),
    ("wds_vtab-cifar10", ["'wds_vtab-cifar10'", "did you mean 'wds/vtab/cifar10'"]),
])
def test_unknown_bare_name_is_one_line_exit_2(study, tmp_path, name, fragments):
    datasets = tmp_path / "datasets.txt"
    datasets.write_text(f"wds/cars\n{name}\n")
    assert_bad_input(validate({**study, "datasets": datasets}), *fragments)
    without_root = run_cli("pysim-validate", "--models", DEMO_MODELS, "--datasets", datasets,
                           "--metrics", study["metrics"])
    assert_bad_input(without_root, *fragments)


def test_check_dataset_ids_accepts_wds_and_derived_ids():
    check_dataset_ids(["wds/cars", "wds/vtab/cifar10", *DERIVED, "entity13",
                       "imagenet-subset-40k"])
    with pytest.raises(InputError, match="imagenet-subset-0k"):
        check_dataset_ids(["imagenet-subset-0k"])


def test_main_nf_keeps_no_copy_of_the_derived_id_rules():
    # The workflow reads the dataset rows pysim-validate writes (--write-datasets): no Groovy
    # copy of the derived ids, the ImageNet id or the imagenet-subset pattern may drift.
    from pysim.config import BREEDS_TASKS, IMAGENET_ID

    text = (ROOT / "main.nf").read_text()
    for literal in (*BREEDS_TASKS, IMAGENET_ID):
        assert f"'{literal}'" not in text, literal
    assert "==~" not in text  # no Groovy regex over dataset ids
