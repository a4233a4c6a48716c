"""Hostile inputs, trust side (issue 25): no code runs from a config or a weights folder, no
file is written outside --out, ids follow one rule, outputs are checked before any work, no
traceback without --debug, and the report survives markup in every field.

Each case runs the real entry point and asserts the exit code, the one line on stderr, that
the folder around the run holds exactly the files it held before (nothing written outside
--out, no output or temporary file left), and for code execution that a marker file that a
planted hubconf.py or pickle would create never appears (with a positive control that the
plant does run when it is trusted / unpickled without weights_only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import ROOT, SEED, assert_bad_input, run_cli

DATASET = "wds/demo_digits"
TORCH_HOME_ENV = "TORCH_HOME"


def listing(root: Path) -> set[str]:
    """Every file and folder under root (relative paths)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def write_table(path: Path, table: dict) -> Path:
    path.write_text(json.dumps(table))
    return path


def validate(tmp_path: Path, models: Path, *extra, datasets: Path | None = None, env=None):
    return run_cli("pysim-validate", "--models", models, "--datasets",
                   datasets or SEED / "webdatasets_w_in1k.txt", "--metrics",
                   SEED / "similarity_metric_config_all.json", *extra, env=env)


# --- code execution ------------------------------------------------------------------------

HUBCONF = '''
import torch
open({marker!r}, "w").close()  # what a hostile hubconf.py could do: run anything


def tiny(pretrained=False, **kwargs):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten())
'''


def plant_hub_repo(torch_home: Path, folder: str, marker: Path) -> Path:
    """A cached torch.hub repo <TORCH_HOME>/hub/<folder> whose hubconf.py creates `marker`."""
    repo = torch_home / "hub" / folder
    repo.mkdir(parents=True)
    (repo / "hubconf.py").write_text(HUBCONF.format(marker=str(marker)))
    return repo


def hub_table(path: Path, repo: str) -> Path:
    return write_table(path, {"evil": {"model_name": "tiny", "source": "hub",
                                       "module_name": ["2", "*"], "pretrained": False,
                                       "model_parameters": {"repo": repo, "input_size": 32}}})


def test_validate_resolve_never_runs_a_hub_repo(tmp_path):
    torch_home, marker = tmp_path / "torch", tmp_path / "marker"
    plant_hub_repo(torch_home, "evil_repo_main", marker)
    models = hub_table(tmp_path / "models.json", "evil/repo:main")
    before = listing(tmp_path)
    proc = validate(tmp_path, models, "--resolve", env=env_with(TORCH_HOME=str(torch_home)))
    assert proc.returncode == 0, proc.stderr
    assert "validation never runs a hub repo's code" in proc.stdout, proc.stdout
    assert not marker.exists()
    assert listing(tmp_path) == before


def extract_hub(tmp_path: Path, models: Path, demo_root: Path, out: Path, *extra, torch_home):
    return run_cli("pysim-extract", "--models", models, "--model-id", "evil", "--dataset-root",
                   demo_root, "--dataset", DATASET, "--out", out, "--num-workers", "0",
                   "--threads", "1", "--quiet", "--offline", "--device", "cpu", *extra,
                   env=env_with(TORCH_HOME=str(torch_home)))


def test_untrusted_hub_repo_is_refused_and_a_trusted_one_is_pinned(tmp_path, demo_root):
    from pysim.models.hub_trust import repo_digest

    torch_home, marker = tmp_path / "torch", tmp_path / "marker"
    repo = plant_hub_repo(torch_home, "evil_repo_main", marker)
    digest = repo_digest(repo)
    models = hub_table(tmp_path / "models.json", "evil/repo:main")
    before = listing(tmp_path)
    # not on the default list (the study's repos): refused, nothing ran, nothing written
    proc = extract_hub(tmp_path, models, demo_root, tmp_path / "out", torch_home=torch_home)
    assert_bad_input(proc, "torch.hub repo 'evil/repo' is not trusted", "--trust-hub-repos")
    # trusted but pinned to other code: refused before it runs
    proc = extract_hub(tmp_path, models, demo_root, tmp_path / "out", "--trust-hub-repos",
                       "evil/repo=" + "0" * 64, torch_home=torch_home)
    assert_bad_input(proc, "torch.hub repo 'evil/repo'", digest, "not the pinned")
    assert not marker.exists()
    assert listing(tmp_path) == before
    # positive control: trusted (pinned to its digest) it runs, and the features record it
    proc = extract_hub(tmp_path, models, demo_root, tmp_path / "out", "--trust-hub-repos",
                       f"facebookresearch/dino,evil/repo={digest[7:19]}", torch_home=torch_home)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()
    with h5py.File(tmp_path / "out" / "evil.h5", "r") as f:
        assert json.loads(f.attrs["hub_repos"]) == {"evil/repo:main": digest}


def test_repo_digest_follows_the_files(tmp_path):
    from pysim.models.hub_trust import repo_digest

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "hubconf.py").write_text("x = 1\n")
    first = repo_digest(tmp_path / "a")
    (tmp_path / "a" / "__pycache__").mkdir()
    (tmp_path / "a" / "__pycache__" / "hubconf.pyc").write_bytes(b"\0")
    assert repo_digest(tmp_path / "a") == first  # caches do not count
    (tmp_path / "a" / "hubconf.py").write_text("x = 2\n")
    assert repo_digest(tmp_path / "a") != first


class Payload:
    """Unpickled, it calls exec: creates the marker file (a stand-in for any code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def plant_pickle(path: Path, marker: Path) -> None:
    """A torch checkpoint whose unpickling (without weights_only) creates `marker`."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload(marker)}, path)


def test_planted_pickle_is_live_without_weights_only(tmp_path):
    """Positive control of the plant: torch.load(weights_only=False) runs it."""
    import torch

    plant_pickle(tmp_path / "x.pth", tmp_path / "marker")
    assert not (tmp_path / "marker").exists()
    torch.load(tmp_path / "x.pth", weights_only=False)
    assert (tmp_path / "marker").exists()


def test_fetch_weights_refuses_a_planted_orig_checkpoint(tmp_path):
    weights, marker = tmp_path / "weights", tmp_path / "marker"
    plant_pickle(weights / "torch" / "hub" / "checkpoints" / "dino-rn50.orig", marker)
    models = write_table(tmp_path / "models.json", {"rn": {
        "model_name": "dino-rn50", "source": "ssl", "module_name": "avgpool"}})
    before = listing(tmp_path)
    proc = run_cli("pysim-fetch-weights", "--models", models, "--online", "--weights-dir",
                   weights)
    assert_bad_input(proc, "model 'rn'", "checkpoint dino-rn50.orig: refused",
                     "arbitrary pickled objects")
    assert not marker.exists()
    assert listing(tmp_path) == before  # no converted file, nothing else


def test_extract_refuses_a_pickle_weights_file(tmp_path, demo_root):
    marker = tmp_path / "marker"
    plant_pickle(tmp_path / "evil.pth", marker)
    models = write_table(tmp_path / "models.json", {"cnn": {
        "model_name": "resnet18", "source": "torchvision", "module_name": "avgpool",
        "weights": "evil.pth", "model_parameters": {"input_size": 32}}})
    before = listing(tmp_path)
    proc = run_cli("pysim-extract", "--models", models, "--model-id", "cnn", "--dataset-root",
                   demo_root, "--dataset", DATASET, "--out", tmp_path / "f.h5", "--offline",
                   "--num-workers", "0", "--threads", "1", "--quiet", "--device", "cpu")
    assert_bad_input(proc, "model 'cnn'", "checkpoint evil.pth: refused")
    assert not marker.exists()
    assert listing(tmp_path) == before


def test_known_checkpoint_types_still_load(tmp_path):
    """argparse.Namespace and numpy values (as in DINO / MAE-style checkpoints) are allowed."""
    import argparse

    import torch

    from pysim.models.loaders import load_checkpoint

    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=0.1),
                "acc": np.float64(0.5), "hist": np.arange(3)}, tmp_path / "ok.pth")
    loaded = load_checkpoint(str(tmp_path / "ok.pth"))
    assert loaded["args"].lr == 0.1 and float(loaded["acc"]) == 0.5
    assert torch.equal(loaded["model"]["w"], torch.ones(2))


# --- ids ------------------------------------------------------------------------------------

BAD_MODEL_IDS = {
    "traversal": "../../../tmp/x", "slash": "a/b", "backslash": "a\\b", "dotdot": "a..b",
    "leading dot": ".hidden", "leading dash": "-rf", "empty": "", "space": "a b",
    "newline": "a\nb", "nul": "a\x00b", "tab": "a\tb", "long": "m" * 300, "at": "a@b",
}


@pytest.mark.parametrize("bad", BAD_MODEL_IDS.values(), ids=BAD_MODEL_IDS.keys())
def test_model_table_ids_follow_the_rule(tmp_path, bad):
    models = write_table(tmp_path / "models.json", {bad: {
        "model_name": "resnet18", "source": "torchvision", "module_name": "avgpool"}})
    before = listing(tmp_path)
    proc = validate(tmp_path, models, "--write-models", tmp_path / "out.json")
    assert_bad_input(proc, "model id")
    assert listing(tmp_path) == before


def test_extract_refuses_a_traversing_model_id_before_anything(tmp_path, demo_root):
    work = tmp_path / "work"
    out = work / "o1" / "o2" / "o3"
    out.mkdir(parents=True)
    models = write_table(work / "models.json", {"m": {
        "model_name": "resnet18", "source": "torchvision", "module_name": ["avgpool", "fc"],
        "pretrained": False, "model_parameters": {"input_size": 32}}})
    before = listing(tmp_path)
    for model_id in ("../../../x",):  # the rest of the rule: test_check_id
        proc = run_cli("pysim-extract", "--models", models, "--model-id", model_id,
                       "--dataset-root", demo_root, "--dataset", DATASET, "--out", out,
                       "--device", "cpu")
        assert_bad_input(proc, "model id")
    for dataset in ("wds/../../x",):
        proc = run_cli("pysim-extract", "--models", models, "--model-id", "m",
                       "--dataset-root", demo_root, "--dataset", dataset, "--out", out,
                       "--device", "cpu")
        assert_bad_input(proc, "dataset id")
    assert listing(tmp_path) == before


def test_check_id():
    from pysim.errors import InputError
    from pysim.ids import MAX_ID_LEN, check_id

    for good in ("dino-vit-base-p16", "OpenCLIP_ViT-L-14_laion2b_s32b_b82k", "m" * MAX_ID_LEN):
        assert check_id(good) == good
    assert check_id("wds/vtab/cifar10", "dataset") == "wds/vtab/cifar10"
    assert check_id("m@blocks.1", "representation") == "m@blocks.1"
    for bad in BAD_MODEL_IDS.values():
        with pytest.raises(InputError) as info:
            check_id(bad)
        assert "\n" not in str(info.value) and "\x00" not in str(info.value)
    for bad in ("m@a@b", "@a", "m@", "m@../x", "m@a/b"):
        with pytest.raises(InputError):
            check_id(bad, "representation")
    for bad in ("wds/../x", "../x", "wds/.x", "wds//x", "wds/a b", "/wds/x", "wds/x/", "wds/-x",
                "wds/a@b", "wds/" + "d" * 300, ""):
        with pytest.raises(InputError):
            check_id(bad, "dataset")


def test_representation_paths_stay_in_the_folder(tmp_path):
    from pysim.config import ModelEntry
    from pysim.errors import InputError
    from pysim.features.extract import representation_paths

    good = ModelEntry("m", "x", "timm", "a", modules=("a", "blocks.1"))
    assert representation_paths(good, ["a", "blocks.1"], tmp_path) == {
        "a": tmp_path / "m.h5", "blocks.1": tmp_path / "m@blocks.1.h5"}
    for model_id, module in (("../x", "a"), ("m", "../../x"), ("m", "a/b")):
        entry = ModelEntry(model_id, "x", "timm", "a", modules=("a", module))
        with pytest.raises(InputError):
            representation_paths(entry, ["a", module], tmp_path)


def test_module_names_and_dataset_lists_follow_the_rule(tmp_path):
    for module in ("../../x", "a/b", ".a", "a b"):
        models = write_table(tmp_path / "models.json", {"m": {
            "model_name": "resnet18", "source": "torchvision", "module_name": ["avgpool", module]}})
        assert_bad_input(validate(tmp_path, models), "module name")
    models = write_table(tmp_path / "models.json", {"m": {
        "model_name": "resnet18", "source": "torchvision", "module_name": "avgpool"}})
    for dataset in ("wds/../x", "wds/.hidden", "-x/y", "wds/" + "d" * 300, "wds//x"):
        (tmp_path / "d.txt").write_text(dataset + "\n")
        assert_bad_input(validate(tmp_path, models, datasets=tmp_path / "d.txt"),
                         "line 1", "dataset id")


def test_derive_refuses_a_bad_dataset_id(tmp_path):
    before = listing(tmp_path)
    proc = run_cli("pysim-derive", "--features", tmp_path / "f.h5", "--dataset", "../x",
                   "--out", tmp_path / "o.h5")
    assert_bad_input(proc, "dataset id '../x'")
    assert listing(tmp_path) == before


# --- outputs checked before work -----------------------------------------------------------

def features_file(path: Path) -> Path:
    from pysim.io import SplitFeatures, write_features

    rng = np.random.default_rng(0)
    splits = {s: SplitFeatures(rng.normal(size=(40, 6)).astype(np.float32), np.arange(40) % 4,
                               np.array([f"k{i}" for i in range(40)])) for s in ("train", "test")}
    write_features(path, splits, {"model_id": path.stem, "dataset": "wds/x"})
    return path


def test_out_equal_to_an_input_is_refused(tmp_path):
    feats = features_file(tmp_path / "a.h5")
    content = feats.read_bytes()
    before = listing(tmp_path)
    for name, args in (("pysim-subset", ["--features", feats]),
                       ("pysim-probe", ["--features", feats]),
                       ("pysim-similarity", ["--features", feats, "--metrics",
                                             SEED / "similarity_metric_config_all.json"])):
        proc = run_cli(name, *args, "--out", feats)
        assert_bad_input(proc, "--out", "is also an input")
    proc = run_cli("pysim-subset", "--features", feats, "--out",
                   tmp_path / "." / "x" / ".." / "a.h5")
    assert_bad_input(proc, "is also an input")
    assert feats.read_bytes() == content
    assert listing(tmp_path) == before


def test_unwritable_or_overlong_out_is_refused_before_work(tmp_path):
    feats = features_file(tmp_path / "a.h5")
    (tmp_path / "file").write_text("")
    before = listing(tmp_path)
    cases = {tmp_path / "file" / "s.json": "is not a folder",
             tmp_path / ("n" * 300 + ".json"): "longer than",
             Path("/proc/pysim-hostile/s.json"): "cannot write",
             tmp_path / "x\ny.json": "not a legal path"}
    if Path("/sys").is_dir():
        cases[Path("/sys/pysim-hostile.json")] = "cannot write"
    for out, fragment in cases.items():
        proc = run_cli("pysim-subset", "--features", feats, "--out", out)
        assert_bad_input(proc, fragment)
        assert "train samples" not in proc.stderr  # nothing was computed
    proc = run_cli("pysim-report", "--results-dir", tmp_path, "--out-dir", tmp_path / "a.h5")
    assert_bad_input(proc, "--out-dir", "is a file")
    assert listing(tmp_path) == before
    assert not Path("/proc/pysim-hostile").exists()


def test_integer_keys_are_bad_input(tmp_path):
    feats = features_file(tmp_path / "a.h5")
    with h5py.File(feats, "r+") as f:
        for split in ("train", "test"):
            del f[split]["keys"]
            f[split].create_dataset("keys", data=np.arange(40))
    before = listing(tmp_path)
    for name, args in (("pysim-subset", []), ("pysim-probe", []), (
            "pysim-similarity", ["--features", feats, "--metrics",
                                 SEED / "similarity_metric_config_all.json"])):
        proc = run_cli(name, "--features", feats, *args, "--out", tmp_path / "o")
        assert_bad_input(proc, "keys must be strings")
    assert listing(tmp_path) == before


# --- no traceback ---------------------------------------------------------------------------

CRASH = textwrap.dedent('''
    import sys, click
    sys.path.insert(0, {root!r})
    from pysim.cli import run

    @click.command()
    def main():
        raise RuntimeError("boom\\nsecond line")

    sys.argv[0] = "pysim-crash"
    run(main)
''')


def test_internal_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(CRASH.format(root=str(ROOT)))
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "pysim-crash: internal error: RuntimeError: boom second line; rerun with --debug for "
        "the traceback"]
    proc = subprocess.run([sys.executable, script, "--debug"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "RuntimeError" in proc.stderr


def test_every_entry_point_offers_debug():
    # pysim.cli.run adds --debug to the command it runs; every entry point runs through it
    for path in sorted((ROOT / "bin").glob("pysim-*")):
        assert path.read_text().rstrip().endswith("run(main)"), path.name
    proc = run_cli("pysim-subset", "--help")
    assert proc.returncode == 0 and "--debug" in proc.stdout, proc.stderr


# --- the report -----------------------------------------------------------------------------

EVIL = '<!--<script>window.pwned=1</script>" onmouseover="window.pwned=2" x=&amp;'


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    from test_report import make_results

    root = tmp_path_factory.mktemp("run") / "results"
    models = make_results(root)
    table = json.loads(models.read_text())
    for model_id, entry in table.items():
        for column in ("objective", "architecture_class", "dataset_class", "size_class"):
            entry[column] += EVIL
        entry["model_name"] = model_id + EVIL
    models.write_text(json.dumps(table))
    info = json.loads((SEED / "dataset_info.json").read_text())
    for k, entry in enumerate(info.values()):
        entry["name"] = f"{k}" + "N" * 70 + EVIL  # long: shortened in figures
        entry["domain"] += EVIL
    (root / "info.json").write_text(json.dumps(info))
    proc = run_cli("pysim-report", "--results-dir", root, "--out-dir", root / "report",
                   "--models", models, "--dataset-info", root / "info.json")
    return root, table, info, proc


def test_report_with_markup_in_every_field_is_written(hostile_report):
    root, table, info, proc = hostile_report
    assert proc.returncode == 0, proc.stderr
    html = (root / "report" / "index.html").read_text()
    start = html.index('id="pysim-data">') + len('id="pysim-data">')
    inline = html[start:html.index("</script>", start)]
    assert "<" not in inline and ">" not in inline and "&" not in inline
    data = json.loads(inline)
    assert data["similarity"]["labels"]["model_0"]["objective"] == table["model_0"]["objective"]
    names = {d["name"] for d in data["similarity"]["datasets"]}
    assert names <= {e["name"] for e in info.values()} and names  # full names in the data
    assert "<script>window.pwned" not in html  # every field escaped in the HTML too
    assert list((root / "report" / "figures").glob("*.png"))


def test_hostile_report_in_chromium(hostile_report, tmp_path):
    from test_report_browser import CHROMIUM, Page, debugger_url

    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (scripts/setup-test-system.sh installs it)")
    root, _, _, proc = hostile_report
    assert proc.returncode == 0, proc.stderr
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", f"--user-data-dir={tmp_path}", "--window-size=1400,1000",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = Page(debugger_url(tmp_path, browser))
        for domain in ("Page", "Runtime", "Log"):
            page.send(f"{domain}.enable")
        page.send("Page.navigate", url=(root / "report" / "index.html").resolve().as_uri())
        page.wait_event("Page.loadEventFired")
        page.until("document.querySelectorAll('#sim-grid .plot').length === 3 && Array.from("
                   "document.querySelectorAll('#sim-grid .plot')).every((p) => "
                   "p.querySelector('.main-svg'))")
        page.until("document.querySelectorAll('.consistency-plot .main-svg').length > 0")
        # hover every heatmap cell's neighbourhood: no handler may run
        page.eval("document.querySelectorAll('*').forEach((n) => "
                  "n.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})))")
        assert page.eval("typeof window.pwned") == "undefined"
        plots = page.eval("Array.from(document.querySelectorAll('.plot, .consistency-plot'))"
                          ".map((p) => !!p.querySelector('.main-svg'))")
        assert plots and all(plots), plots
        ticks = page.eval("Array.from(document.querySelectorAll('.consistency-plot .ytick text'))"
                          ".map((t) => t.textContent)")
        assert ticks and all(len(t) <= 32 for t in ticks), ticks
        errors = [e for e in page.events if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Log.entryAdded"
                      and e["params"]["entry"]["level"] == "error")]
        assert errors == []
        page.ws.close()
    finally:
        browser.terminate()
        browser.wait(timeout=60)


# --- the workflow passes --trust_hub_repos to EXTRACT_FEATURES only ------------------------

ECHO_PROCESSES = "\n".join(
    f"process {name} {{\n    output: stdout\n    script:\n"
    f"    \"echo '{name}=${{task.ext.args ?: ''}}'\"\n}}"
    for name in ("EXTRACT_FEATURES", "DERIVE_FEATURES", "MAKE_SUBSET", "CONSISTENCY"))


def test_ext_args_reach_only_their_process(tmp_path):
    """conf/modules.config in a run of stand-in processes: --trust_hub_repos reaches
    EXTRACT_FEATURES alone, --consistency_anchor_test_metrics CONSISTENCY alone (before, one
    process's ext.args closure was every process's)."""
    from nf_helpers import run_nf

    (tmp_path / "main.nf").write_text(
        ECHO_PROCESSES + "\nworkflow { EXTRACT_FEATURES() | view; DERIVE_FEATURES() | view; "
        "MAKE_SUBSET() | view; CONSISTENCY() | view }\n")
    (tmp_path / "nextflow.config").write_text(
        f"includeConfig '{ROOT / 'nextflow.config'}'\nparams.outdir = 'res'\n")
    proc = run_nf(["run", "main.nf", "-ansi-log", "false", "--trust_hub_repos",
                   "facebookresearch/dino,evil/repo", "--consistency_anchor_test_metrics", "a"],
                  cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in proc.stdout.splitlines()
             if "=" in line and line.split("=", 1)[0].isupper()}
    assert sorted(lines) == ["CONSISTENCY", "DERIVE_FEATURES", "EXTRACT_FEATURES", "MAKE_SUBSET"]
    assert "--trust-hub-repos facebookresearch/dino,evil/repo" in lines["EXTRACT_FEATURES"]
    assert "--anchor-test-metrics a" in lines["CONSISTENCY"]
    for name, args in lines.items():
        assert ("--trust-hub-repos" in args) == (name == "EXTRACT_FEATURES"), (name, args)
        assert ("--anchor-test-metrics" in args) == (name == "CONSISTENCY"), (name, args)
