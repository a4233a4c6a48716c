"""The input loaders accept the original study's config formats unchanged."""

import json

import pytest

from pysim.config import (
    dataset_dir,
    dataset_entries,
    dataset_key,
    load_dataset_info,
    load_dataset_list,
    load_metrics,
    load_models,
)
from pysim.errors import InputError


def test_model_table_without_alignment(seed_dir):
    models = load_models(seed_dir / "models_config_wo_alignment.json")
    raw = json.loads((seed_dir / "models_config_wo_alignment.json").read_text())
    assert len(models) == 64 == len(raw)
    assert list(models) == list(raw)  # table order is kept
    vit = models["vit_base_patch16_224"]
    assert (vit.source, vit.module_name) == ("timm", "norm")
    assert vit.model_parameters["token_extraction"] == "cls_token"
    assert vit.categories == {"objective": "Supervised", "architecture_class": "Transformer",
                              "dataset_class": "ImageNet1k", "size_class": "small"}
    clip = models["OpenCLIP_ViT-B-16_openai"]
    assert clip.source == "custom" and clip.model_parameters == {"variant": "ViT-B-16",
                                                                 "dataset": "openai"}
    assert {m.source for m in models.values()} == {"timm", "torchvision", "custom", "ssl"}
    assert all(m.pretrained and m.weights is None for m in models.values())


def test_model_table_with_alignment(seed_dir):
    models = load_models(seed_dir / "models_config_with_alignment.json")
    assert len(models) == 73
    assert models["resnet50_gLocal"].raw["alignment"] == "gLocal"
    assert models["DreamSim_dino_vitb16"].module_name == "model.mlp"


def test_optional_weights_and_pretrained_fields(tmp_path):
    table = {"tiny": {"model_name": "resnet18", "source": "torchvision", "module_name": "avgpool",
                      "model_parameters": {}, "objective": "Supervised",
                      "weights": "w/tiny.pt", "pretrained": False}}
    path = tmp_path / "models.json"
    path.write_text(json.dumps(table))
    entry = load_models(path)["tiny"]
    assert entry.weights == "w/tiny.pt" and entry.pretrained is False


@pytest.mark.parametrize("name, expected", [
    ("similarity_metric_config_local_global.json",
     ["cka_kernel_linear_unbiased", "cka_kernel_rbf_unbiased_sigma_0.4",
      "rsa_method_correlation_corr_method_spearman"]),
    ("similarity_metric_config_all.json",
     ["cka_kernel_linear_unbiased"]
     + [f"cka_kernel_rbf_unbiased_sigma_{s}" for s in ("0.2", "0.4", "0.6", "0.8")]
     + ["rsa_method_correlation_corr_method_pearson",
        "rsa_method_correlation_corr_method_spearman"]),
])
def test_seed_metric_lists(seed_dir, name, expected):
    assert [m.id for m in load_metrics(seed_dir / name)] == expected


def test_metric_extensions(tmp_path):
    entries = [
        {"sim_method": "cka", "sim_kernel": "linear", "unbiased": False, "corr_method": "x"},
        {"sim_method": "cka", "sim_kernel": "rbf", "sigma": 0.5, "sigma_mode": "median"},
        {"sim_method": "cka", "sim_kernel": "rbf", "sigma": 1, "unbiased": False},
        {"sim_method": "rsa", "rsa_method": "euclidean", "corr_method": "pearson"},
        {"sim_method": "mutual_knn", "k": 10},
    ]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(entries))
    specs = load_metrics(path)
    assert [m.id for m in specs] == [
        "cka_kernel_linear_biased", "cka_kernel_rbf_unbiased_sigma_0.5_median",
        "cka_kernel_rbf_biased_sigma_1", "rsa_method_euclidean_corr_method_pearson",
        "mutual_knn_k_10"]
    assert specs[1].params() == {"sim_method": "cka", "sim_kernel": "rbf", "unbiased": True,
                                 "sigma": 0.5, "sigma_mode": "median"}


def test_duplicate_metric_is_rejected(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps([{"sim_method": "mutual_knn"}, {"sim_method": "mutual_knn"}]))
    with pytest.raises(InputError, match="mutual_knn_k_10"):
        load_metrics(path)


@pytest.mark.parametrize("name, n", [("webdatasets_w_in1k.txt", 23),
                                     ("webdatasets_w_insub10k.txt", 23),
                                     ("clip_benchmark_clf_datasets.txt", 20)])
def test_seed_dataset_lists(seed_dir, name, n):
    ids = load_dataset_list(seed_dir / name)
    assert len(ids) == n and all(i and i == i.strip() for i in ids)


def test_dataset_keys_and_dirs(seed_dir, tmp_path):
    ids = load_dataset_list(seed_dir / "webdatasets_w_in1k.txt")
    assert ids[-1] == "wds/imagenet1k"  # last line has no newline
    assert dataset_key("wds/vtab/cifar10") == "wds_vtab_cifar10"
    assert dataset_dir(tmp_path, "wds/vtab/cifar10") == tmp_path / "wds_vtab-cifar10"
    assert dataset_dir(tmp_path, "wds/cars") == tmp_path / "wds_cars"
    assert dataset_dir(tmp_path, "entity30") == tmp_path / "entity30"


def test_dataset_info(seed_dir):
    info = load_dataset_info(seed_dir / "dataset_info.json")
    assert info["wds/vtab/cifar10"] == {"domain": "Natural (multi-domain)", "name": "CIFAR-10"}
    entries = dataset_entries(["wds/vtab/cifar10", "unknown/x"], info)
    assert (entries[0].key, entries[0].name) == ("wds_vtab_cifar10", "CIFAR-10")
    assert (entries[1].name, entries[1].domain) == ("unknown/x", None)
