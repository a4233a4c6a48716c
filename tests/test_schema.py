"""nextflow_schema.json: in step with nextflow.config, valid draft 2020-12, and used at launch."""

from __future__ import annotations

import json
import re

import pytest
from nf_helpers import DEMO, REPO, run_nf

SCHEMA = json.loads((REPO / "nextflow_schema.json").read_text())
DRAFT = "https://json-schema.org/draft/2020-12/schema"
# every profile: every params name any config sets
PROFILES = "local,slurm,gpu,apptainer,singularity,docker,podman,debug,test,test_full"
# In the schema, not in nextflow.config: set by institutional configs (--custom_config_base).
INSTITUTIONAL = {"config_profile_name", "config_profile_description", "config_profile_contact",
                 "config_profile_url"}
# Added to nextflow.config by a parallel branch (issue 15); drop from this set at the merge.
# Defaults that depend on the machine or the checkout: no `default` in the schema.
MACHINE_DEPENDENT = {"max_cpus", "max_memory", "container_dir", "apptainer_cache_dir"}
TYPES = {"string", "integer", "number", "boolean"}
FORMATS = {"file-path", "directory-path", "memory-size", "duration", "regex"}
PY_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool}


def properties() -> dict[str, dict]:
    """Every parameter of the schema (name -> property), over the groups that allOf names."""
    out = {}
    for ref in SCHEMA["allOf"]:
        out.update(SCHEMA["$defs"][ref["$ref"].split("/")[-1]]["properties"])
    return out


def config_params(tmp_path_factory, profile: str) -> dict:
    """The params of `nextflow config -o json` under a profile (the real config)."""
    proc = run_nf(["config", "-o", "json", "-profile", profile, str(REPO)],
                  cwd=tmp_path_factory.mktemp("config"), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["params"]


@pytest.fixture(scope="module")
def defaults(tmp_path_factory) -> dict:
    """nextflow.config's params with the apptainer profile's (the only profile adding names)."""
    return config_params(tmp_path_factory, "apptainer")


@pytest.fixture(scope="module")
def all_names(tmp_path_factory) -> set[str]:
    """Names of the params set by nextflow.config and every profile together."""
    return set(config_params(tmp_path_factory, PROFILES))


def test_every_config_param_is_in_the_schema_and_back(all_names, defaults):
    schema = set(properties())
    assert set(defaults) <= all_names
    assert all_names - schema == set()
    assert schema - all_names <= INSTITUTIONAL


def test_schema_defaults_equal_the_config(defaults):
    props = properties()
    for name, value in defaults.items():
        prop = props[name]
        if name in MACHINE_DEPENDENT:
            assert "default" not in prop and "No fixed default" in prop["help_text"], name
        elif value is None:
            assert "default" not in prop, name
        else:
            assert prop.get("default") == value and type(prop["default"]) is type(value), name


def test_schema_is_draft_2020_12_in_nf_core_layout():
    assert SCHEMA["$schema"] == DRAFT and SCHEMA["type"] == "object"
    refs = [ref["$ref"] for ref in SCHEMA["allOf"]]
    assert sorted(refs) == sorted(f"#/$defs/{name}" for name in SCHEMA["$defs"])
    for group in SCHEMA["$defs"].values():
        assert group["type"] == "object" and group["title"] and group["description"]
        assert set(group.get("required", [])) <= set(group["properties"])
    for name, prop in properties().items():
        check_property(name, prop)


def check_property(name: str, prop: dict) -> None:
    """One parameter: a known type, a description, a default / enum / pattern that agree."""
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    assert set(types) <= TYPES and prop["description"], name
    assert prop.get("format", "file-path") in FORMATS, name
    if prop.get("exists"):
        assert prop["format"] in ("file-path", "directory-path"), name
    if "default" in prop:
        assert any(isinstance(prop["default"], PY_TYPES[t]) for t in types), name
        assert "enum" not in prop or prop["default"] in prop["enum"], name
    if "pattern" in prop:
        pattern = re.compile(prop["pattern"])  # ECMA-262 patterns here are Python-compatible
        default = prop.get("default")
        assert not isinstance(default, str) or pattern.fullmatch(default), name


def test_schema_passes_the_draft_2020_12_meta_schema():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_help_lists_every_schema_param(tmp_path):
    proc = run_nf(["run", str(REPO / "main.nf"), "--help"], cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = set(re.findall(r"^  --(\w+) ", proc.stdout, re.M))
    assert listed == set(properties())
    for group in SCHEMA["$defs"].values():
        assert group["title"] in proc.stdout
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


# Bad parameters stop the run before any task, with one line naming the parameter.
REFUSALS = {
    "unknown name": (["--gpu-partition", "gpu"], "--gpu-partition",
                     "Unknown parameter --gpu-partition (did you mean --gpu_partition?)"),
    "enum": (["--device", "tpu"], "--device", "--device must be auto, cpu or cuda, got 'tpu'"),
    "size": (["--max_memory", "lots"], "--max_memory", "--max_memory: cannot read size 'lots'"),
    "type": (["--batch_size", "abc"], "--batch_size", "--batch_size must be an integer, got 'abc'"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_param_stops_before_any_task(case, tmp_path):
    extra, name, message = REFUSALS[case]
    out = tmp_path / "out"
    args = ["run", str(REPO / "main.nf"), "--models", str(DEMO / "models.json"),
            "--datasets", str(DEMO / "datasets.txt"), "--metrics", str(DEMO / "metrics.json"),
            "--demo_data", "--outdir", str(out), *extra]
    proc = run_nf(args, cwd=tmp_path, timeout=180)
    assert proc.returncode != 0
    output = (proc.stdout + proc.stderr).splitlines()
    naming = [line for line in output if name in line]
    assert len(naming) == 1 and message in naming[0], output
    work = tmp_path / "work"
    assert not work.exists() or not any(work.iterdir())
    for trace in (out / "pipeline_info").glob("execution_trace_*.txt"):
        assert len(trace.read_text().splitlines()) <= 1, trace  # the header at most


def test_the_study_params_file_passes_the_checks(tmp_path):
    proc = run_nf(["run", str(REPO / "main.nf"), "-preview", "-params-file",
                   str(REPO / "assets" / "paper" / "params.yaml"), "--dataset_root", str(tmp_path),
                   "--outdir", str(tmp_path / "out")], cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
