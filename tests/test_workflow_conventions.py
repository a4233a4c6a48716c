"""nf-core habits of the workflow: publishDir and ext.args (conf/modules.config), versions.yml
per process and pipeline_info/software_versions.yml, site configs, the lenient profile.

One stub run (module fixture) serves the publishing, versions and site-config tests: it
publishes with --publish_dir_mode symlink, runs "in" a fake local image (APPTAINER_CONTAINER,
which Apptainer sets in a task), loads a site profile from --custom_config_base and passes
--model_sets (an optional input file) to CONSISTENCY.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
from pathlib import Path

import pytest
import yaml
from nf_helpers import (
    REPO,
    TEST_MODELS,
    dataset_key,
    demo_run_args,
    latest_trace,
    read_trace,
    run_nf,
    write_inputs,
)

import pysim

SITE_PROFILE = """
profiles {
    mysite {
        process { withName: 'VALIDATE' { tag = 'from-site-profile' } }
    }
}
"""


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory):
    """A `-profile test,mysite -stub-run` with symlinks, a fake image and a site config."""
    launch = tmp_path_factory.mktemp("conventions")
    image = launch / "fake.sif"
    image.write_bytes(os.urandom(4096))
    (launch / "image.config").write_text(f"env.APPTAINER_CONTAINER = '{image}'\n")
    site = launch / "site"
    site.mkdir()
    (site / "nfcore_custom.config").write_text(SITE_PROFILE)
    proc = run_nf(["run", str(REPO / "main.nf"), "-profile", "test,mysite", "-stub-run",
                   "--outdir", "out", "--publish_dir_mode", "symlink",
                   "--custom_config_base", str(site), "-c", "image.config",
                   "--model_sets", str(REPO / "assets" / "paper" / "model_sets.yaml")],
                  cwd=launch, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {"launch": launch, "out": launch / "out", "image": image}


@pytest.mark.slow
def test_symlink_mode_makes_every_published_output_a_symlink(stub_run):
    out = stub_run["out"]
    published = []
    for folder, dirs, files in os.walk(out):  # symlinked folders are listed, not entered
        here = Path(folder)
        for name in [*dirs, *files]:
            path = here / name
            if path.is_symlink():
                published.append(path.relative_to(out))
            elif not path.is_dir() and here != out / "pipeline_info":
                pytest.fail(f"published as a plain file: {path.relative_to(out)}")
    # pipeline_info holds Nextflow's own records; VALIDATE's report is published there
    assert (out / "pipeline_info" / "validate.txt").is_symlink()
    for rel in ("report", "consistency/consistency.csv", "performance/similarity_vs_gap.csv",
                f"subsets/{dataset_key('wds/demo_digits')}.json"):
        assert Path(rel) in published, rel
    assert all((out / rel).exists() for rel in published)  # none dangles
    assert not list(out.rglob("versions.yml"))  # collected, never published one by one


@pytest.mark.slow
def test_software_versions_lists_every_process_with_the_real_versions(stub_run):
    out, image = stub_run["out"], stub_run["image"]
    table = yaml.safe_load((out / "pipeline_info" / "software_versions.yml").read_text())
    processes = {row["process"] for row in read_trace(latest_trace(out))}
    assert set(table) == processes
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    expected = {
        "python": platform.python_version(),
        "pysim": pysim.__version__,
        "torch": importlib.metadata.version("torch"),
        "timm": importlib.metadata.version("timm"),
        "open_clip": importlib.metadata.version("open_clip_torch"),
        "container": f"{image}@sha256:{digest}",
    }
    import torch

    for process, versions in table.items():
        assert versions == {**expected, "cuda": torch.version.cuda or "none"}, process


@pytest.mark.slow
def test_report_gets_the_versions_of_the_processes_before_it(stub_run):
    rows = read_trace(latest_trace(stub_run["out"]))
    workdir = Path(next(row["workdir"] for row in rows if row["process"] == "REPORT"))
    staged = workdir / "results" / "pipeline_info" / "software_versions.yml"
    table = yaml.safe_load(staged.read_text())
    assert set(table) == {row["process"] for row in rows} - {"REPORT"}


@pytest.mark.slow
def test_model_sets_file_reaches_consistency(stub_run):
    rows = read_trace(latest_trace(stub_run["out"]))
    workdir = Path(next(row["workdir"] for row in rows if row["process"] == "CONSISTENCY"))
    staged = workdir / "model_sets" / "model_sets.yaml"
    assert staged.resolve() == REPO / "assets" / "paper" / "model_sets.yaml"
    assert (stub_run["out"] / "consistency" / "model_set_pairs.csv").is_symlink()


@pytest.mark.slow
def test_site_config_profile_from_custom_config_base(stub_run):
    names = [row["name"] for row in read_trace(latest_trace(stub_run["out"]))]
    assert "VALIDATE (from-site-profile)" in names


def test_custom_config_base_without_the_file_is_one_line(tmp_path):
    proc = run_nf(["run", str(REPO / "main.nf"), "--help", "--custom_config_base",
                   str(tmp_path)], cwd=tmp_path, timeout=180)
    assert proc.returncode != 0
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines()
             if "no nfcore_custom.config" in line]
    assert lines == [f"--custom_config_base: no nfcore_custom.config in {tmp_path}"], lines


def test_lenient_profile_sets_lenient_cache(tmp_path):
    proc = run_nf(["config", "-flat", str(REPO), "-profile", "slurm,lenient"], cwd=tmp_path,
                  timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "process.cache = 'lenient'" in proc.stdout.splitlines()


@pytest.mark.slow
def test_ext_args_reach_the_entry_point(tmp_path):
    # A real run (the stub's .command.sh holds the stub): MAKE_SUBSET's ext.args from a -c
    # file end its command, and the subset is the one drawn with seed 7.
    inputs = write_inputs(tmp_path / "inputs", TEST_MODELS[:2])
    (tmp_path / "args.config").write_text(
        "process { withName: 'MAKE_SUBSET' { ext.args = '--seed 7' } }\n")
    proc = run_nf([*demo_run_args(inputs), "--skip_probes", "-c", "args.config"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rows = read_trace(latest_trace(tmp_path / "results"))
    workdir = Path(next(row["workdir"] for row in rows if row["process"] == "MAKE_SUBSET"))
    command = (workdir / ".command.sh").read_text()
    assert "--seed 0 --mode per_class --seed 7" in " ".join(command.split())
    key = dataset_key("wds/demo_digits")
    subset = json.loads((tmp_path / "results" / "subsets" / f"{key}.json").read_text())
    assert subset["seed"] == 7
