"""Demo data and demo inputs: CLIP-benchmark layout, byte-identical per seed, assets load."""

import hashlib
from pathlib import Path

from conftest import run_cli
from pysim.config import (
    CATEGORY_COLUMNS,
    check_dataset_dirs,
    load_dataset_info,
    load_dataset_list,
    load_metrics,
    load_models,
)
from pysim.data import index_split
from pysim.demo import write_demo_datasets

ROOT = Path(__file__).parents[1]
ASSETS = ROOT / "assets" / "demo"


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_demo_data_layout_and_byte_identical(tmp_path):
    proc = run_cli("pysim-demo-data", "--out-dir", tmp_path / "a")
    assert proc.returncode == 0, proc.stderr
    ids = proc.stdout.split()
    assert ids == load_dataset_list(ASSETS / "datasets.txt")
    check_dataset_dirs(tmp_path / "a", ids, splits=("train", "test"))
    for dataset_id in ids:
        ddir = tmp_path / "a" / dataset_id.replace("wds/", "wds_")
        classes = (ddir / "classnames.txt").read_text().splitlines()
        assert len(classes) >= 5
        train, test = index_split(ddir / "train"), index_split(ddir / "test")
        assert 200 <= len(train) <= 500 and 50 <= len(test) <= len(train)
        assert set(train.label) == set(test.label) == set(range(len(classes)))
        assert (ddir / "train" / "nshards.txt").read_text().strip() == "2"
    write_demo_datasets(tmp_path / "b", seed=0)
    write_demo_datasets(tmp_path / "c", seed=1)
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b
    assert set(a) == set(c) and a != c


def test_demo_inputs_load_and_cover_categories():
    models = load_models(ASSETS / "models.json")
    assert len(models) >= 6
    assert {"timm", "torchvision"} <= {m.source for m in models.values()}
    assert any(m.source in ("open_clip", "custom") for m in models.values())
    assert all(not m.pretrained for m in models.values())
    for column in CATEGORY_COLUMNS:
        assert len({m.categories[column] for m in models.values()}) >= 2, column
    ids = {m.id for m in load_metrics(ASSETS / "metrics.json")}
    assert {"cka_kernel_linear_unbiased", "cka_kernel_rbf_unbiased_sigma_0.4",
            "rsa_method_correlation_corr_method_spearman", "mutual_knn_k_10"} <= ids
    info = load_dataset_info(ASSETS / "dataset_info.json")
    assert set(info) == set(load_dataset_list(ASSETS / "datasets.txt"))
