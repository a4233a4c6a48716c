"""Layer-wise similarity on a planted case: model b's layer k is an orthogonal transform of
model a's layer k, so the linear-CKA layer x layer block peaks on the diagonal; the layer
tables and the primary-only consistency tables are computed by the real engine and stage."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ortho_group
from sim_reference import cka as reference_cka
from sim_reference import normalise

from pysim.analysis.layers import group_layers
from pysim.config import MetricSpec, load_models
from pysim.io import Similarities, read_similarities, write_similarities
from pysim.similarity.engine import compute_similarities
from pysim.stages.consistency import run_consistency

LAYERS = ["blocks.0", "blocks.1", "blocks.2", "blocks.10"]  # natural order: 10 is last
CKA = MetricSpec("cka", "linear", True)
N, D = 60, 12


def _network(rng: np.random.Generator) -> list[np.ndarray]:
    """Four layers of a random tanh network: neighbours similar, none identical."""
    x, out = rng.standard_normal((N, D)), []
    for _ in LAYERS:
        x = np.tanh(x @ rng.standard_normal((D, D)) / np.sqrt(D))
        x = x + 0.3 * rng.standard_normal((N, D))
        out.append(x)
    return out


def _rep_ids(model: str) -> list[str]:
    return [model] + [f"{model}@{m}" for m in LAYERS[1:]]


def _features(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = _network(rng)
    b = [x @ ortho_group.rvs(D, random_state=seed * 10 + k) for k, x in enumerate(a)]
    feats = dict(zip(_rep_ids("a"), a, strict=True)) | dict(zip(_rep_ids("b"), b, strict=True))
    feats["c"] = rng.standard_normal((N, D))
    ids = sorted(feats)  # file order unlike depth order: the analysis must reorder
    return {k: feats[k].astype(np.float32) for k in ids}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("layers")
    entry = {"model_name": "resnet18", "source": "torchvision", "objective": "x"}
    table = root / "models.json"
    table.write_text(json.dumps({"a": {**entry, "module_name": ["blocks.*"]},
                                 "b": {**entry, "module_name": LAYERS},
                                 "c": {**entry, "module_name": "fc"}}))
    paths, feats = [], {}
    for seed, name in ((1, "d1"), (2, "d2")):
        feats[name] = _features(seed)
        mats = compute_similarities(feats[name], [CKA])
        path = root / f"{name}.h5"
        # the similarity stage records each file's extracted module (a's primary: blocks.0)
        modules = {"a": "blocks.0", "b": "blocks.0", "c": "fc"}
        write_similarities(path, Similarities(name, list(feats[name]), mats, {CKA.id: {}},
                                              modules))
        paths.append(path)
    out = root / "out"
    out.mkdir()
    run_consistency(paths, table, out, permutations=9, bootstrap=9)
    return root, out, feats


def test_layer_order_follows_the_table_then_natural_order(study):
    root, _, feats = study
    groups = group_layers(list(feats["d1"]), load_models(root / "models.json"))
    assert groups["a"].ids == _rep_ids("a") and groups["b"].modules == LAYERS
    assert groups["a"].modules[0] == "blocks.*" and groups["c"].ids == ["c"]  # table entry
    assert groups["b"].depths == [0, 1 / 3, 2 / 3, 1]
    named = group_layers(list(feats["d1"]), load_models(root / "models.json"),
                         read_similarities(root / "d1.h5").module_names)
    assert named["a"].modules == LAYERS  # the pattern's primary labelled as extracted


def test_planted_block_peaks_on_the_diagonal(study):
    _, out, feats = study
    table = pd.read_csv(out / "layer_matrix.csv")
    ab = table[(table.model_1 == "a") & (table.model_2 == "b") & (table.dataset == "d1")]
    block = ab.pivot(index="depth_1", columns="depth_2", values="value").to_numpy()
    assert block.shape == (4, 4)
    assert np.allclose(np.diag(block), 1.0, atol=1e-4)
    assert (block.argmax(axis=1) == np.arange(4)).all()
    assert block[~np.eye(4, dtype=bool)].max() < 0.99
    x = {k: normalise(v) for k, v in feats["d1"].items()}
    for i, j in ((0, 0), (0, 3), (2, 1)):  # float64 reference from the definition
        want = reference_cka(x[_rep_ids("a")[i]], x[_rep_ids("b")[j]], CKA)
        assert block[i, j] == pytest.approx(want, abs=2e-4)


def test_correspondence_and_consistency_tables(study):
    _, out, _ = study
    corr = pd.read_csv(out / "layer_correspondence.csv")
    assert list(corr.columns) == ["dataset", "metric", "model_1", "module_1", "model_2",
                                  "best_module_2", "value"]
    ab = corr[(corr.model_1 == "a") & (corr.model_2 == "b")]
    assert len(ab) == 8 and (ab.best_module_2.to_numpy() == LAYERS * 2).all()
    ba = corr[(corr.model_1 == "b") & (corr.model_2 == "a")]
    assert list(ba.module_1[:4]) == LAYERS and set(ba.best_module_2) == set(LAYERS)
    cons = pd.read_csv(out / "layer_consistency.csv")
    row = cons[(cons.model_1 == "a") & (cons.model_2 == "b")].iloc[0]
    assert (row.dataset_1, row.dataset_2, row.n_cells) == ("d1", "d2", 16)
    assert row.pearson_r > 0.9 and row.same_best == 1.0


def test_per_model_tables_see_primary_representations_only(study):
    _, out, _ = study
    agg = pd.read_csv(next(out.glob("aggregate_*.csv")))
    ids = set(agg.filter(like="model").stack())
    assert ids == {"a", "b", "c"}
    assert not any("@" in str(v) for v in pd.read_csv(out / "clusters.csv").model_id)
