"""The layers of README "Layout", checked on the source (ast, nothing imported): pysim never
imports the CLI layer (pysim.cli, click) or bin/; each bin/pysim-<stage> calls exactly one
function, run_<stage>, of its own stage module pysim/stages/<stage>.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYSIM = ROOT / "pysim"
ENTRY_POINTS = sorted((ROOT / "bin").glob("pysim-*"))


def imported_modules(tree: ast.AST) -> set[str]:
    """Every module an ast imports from (absolute names; `from x import y` also gives x.y)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def stage_name(entry_point: Path) -> str:
    """pysim-sim-vs-perf -> sim_vs_perf."""
    return entry_point.name.removeprefix("pysim-").replace("-", "_")


def test_library_never_imports_the_cli_layer():
    offenders = []
    for path in sorted(PYSIM.rglob("*.py")):
        if path == PYSIM / "cli.py":
            continue
        modules = imported_modules(ast.parse(path.read_text(), str(path)))
        bad = sorted(m for m in modules if m in ("pysim.cli", "click", "bin")
                     or m.startswith(("pysim.cli.", "click.", "bin.")))
        if bad:
            offenders.append(f"{path.relative_to(ROOT)}: {', '.join(bad)}")
    assert not offenders, offenders
    assert len(list(PYSIM.rglob("*.py"))) > 40  # the walk saw the library


def test_every_entry_point_has_a_stage_module():
    assert len(ENTRY_POINTS) >= 11
    stages = {p.stem for p in (PYSIM / "stages").glob("*.py")} - {"__init__"}
    assert stages == {stage_name(p) for p in ENTRY_POINTS}


@pytest.mark.parametrize("entry_point", ENTRY_POINTS, ids=lambda p: p.name)
def test_entry_point_calls_exactly_its_stage_function(entry_point):
    tree = ast.parse(entry_point.read_text(), str(entry_point))
    stage = f"pysim.stages.{stage_name(entry_point)}"
    from_pysim = {m for m in imported_modules(tree) if m.split(".")[0] == "pysim"}
    allowed = {"pysim.cli", stage}
    assert {m.rsplit(".", 1)[0] if m.rsplit(".", 1)[0] in allowed else m
            for m in from_pysim} <= allowed, "bin/* import only pysim.cli and their stage"
    names = {alias.asname or alias.name for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and node.module == stage for alias in node.names}
    called = {node.func.id for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in names}
    assert called == {f"run_{stage_name(entry_point)}"}
    source = (PYSIM / "stages" / f"{stage_name(entry_point)}.py").read_text()
    defined = {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
    assert f"run_{stage_name(entry_point)}" in defined
