"""A layer-wise model table end to end (`-profile test`): one representation file per module,
similarity files with `@` ids, the layer tables, primary-only consistency and probes, and the
report's layer section."""

import pandas as pd
import pytest
from nf_helpers import DEMO, TEST_DATASETS, dataset_key, demo_run_args, run_nf
from test_report_interactive import page_data

from pysim.io import read_attrs, read_similarities

pytestmark = pytest.mark.slow

# the shipped layer-wise demo table (`make demo-layers`): a pattern plus a name, a pattern alone
# (its first match is the primary), and a single-module entry
TABLE = DEMO / "models_layers.json"
IDS = ["timm_vit_tiny", "timm_vit_tiny@blocks.1", "timm_vit_tiny@blocks.2",
       "timm_vit_tiny@blocks.3", "timm_vit_tiny@norm", "dino_vit_small_p16",
       "dino_vit_small_p16@blocks.1", "openclip_tiny_rn"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    launch = tmp_path_factory.mktemp("layers")
    inputs = {"models": TABLE, "datasets": launch / "datasets.txt"}
    inputs["datasets"].write_text("".join(f"{d}\n" for d in TEST_DATASETS))
    proc = run_nf(demo_run_args(inputs), cwd=launch)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return launch / "results"


def test_one_file_per_representation_and_similarity_rows(run):
    for dataset in TEST_DATASETS:
        key = dataset_key(dataset)
        names = sorted(p.stem for p in (run / "features" / key).glob("*.h5"))
        assert names == sorted(IDS)
        attrs = read_attrs(run / "features" / key / "timm_vit_tiny@blocks.2.h5")
        assert attrs["module_name"] == "blocks.2" and attrs["pooling"] == "cls"
        sims = read_similarities(run / "similarities" / f"{key}.h5")
        assert sims.model_ids == IDS


def test_layer_tables_and_primary_only_analyses(run):
    out = run / "consistency"
    corr = pd.read_csv(out / "layer_correspondence.csv")
    vit = corr[(corr.model_1 == "timm_vit_tiny") & (corr.model_2 == "dino_vit_small_p16")]
    assert list(vit.module_1[:5]) == ["blocks.0", "blocks.1", "blocks.2", "blocks.3", "norm"]
    assert set(vit.best_module_2) <= {"blocks.0", "blocks.1"}  # the pattern's primary: blocks.0
    dino = corr[(corr.model_1 == "dino_vit_small_p16") & (corr.model_2 == "timm_vit_tiny")]
    assert set(dino.module_1) == {"blocks.0", "blocks.1"}
    cons = pd.read_csv(out / "layer_consistency.csv")
    assert set(cons.dataset_1) == {TEST_DATASETS[0]} and len(cons) > 0
    assert not pd.read_csv(out / "clusters.csv").model_id.str.contains("@").any()
    probes = sorted(p.stem for p in (run / "probes").rglob("*.json"))
    assert not any("@" in p for p in probes) and probes


def test_report_draws_the_layer_section(run):
    index = run / "report" / "index.html"
    assert "Layer-wise similarity" in index.read_text()
    layers = page_data(index)["layers"][TEST_DATASETS[0]]
    # heatmap axes in depth order, the pattern's primary labelled with its first match
    assert layers["modules"] == {"timm_vit_tiny": ["blocks.0", "blocks.1", "blocks.2", "blocks.3",
                                                   "norm"],
                                 "dino_vit_small_p16": ["blocks.0", "blocks.1"]}
