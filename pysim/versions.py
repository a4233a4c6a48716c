"""Software versions of a task, as the YAML block of nf-core's versions.yml.

Each workflow process writes one block ("PROCESS": package: version); main.nf collects them
into pipeline_info/software_versions.yml. Versions are read from package metadata (and
torch's own version file for its CUDA build) without importing the packages, so that the
block costs nothing next to the task.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
from pathlib import Path

import pysim

# name in versions.yml -> distribution name
PACKAGES = {"torch": "torch", "timm": "timm", "open_clip": "open_clip_torch"}
# set inside an Apptainer / Singularity container to the image it runs
CONTAINER_VARIABLES = ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER")


def package_version(dist: str) -> str:
    """A distribution's installed version, or 'none' when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def torch_cuda() -> str:
    """torch.version.cuda (the CUDA version torch was built for), or 'none' (CPU build)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return "none"
    path = Path(list(spec.submodule_search_locations)[0]) / "version.py"
    if not path.is_file():
        return "none"
    scope: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), scope)  # noqa: S102 (torch's own file)
    return str(scope.get("cuda") or "none")


def container() -> str:
    """The image this task runs in (path or URI), or 'none' outside a container."""
    for name in CONTAINER_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return "none"


def versions() -> dict[str, str]:
    """{package: version} of this environment, in versions.yml's order."""
    out = {"python": platform.python_version(), "pysim": pysim.__version__,
           "torch": package_version("torch"), "cuda": torch_cuda()}
    out.update({name: package_version(dist) for name, dist in PACKAGES.items() if name != "torch"})
    out["container"] = container()
    return out


def versions_yaml(process: str) -> str:
    """The versions.yml block of one process (values quoted: '12.4' stays a string)."""
    lines = [f"{json.dumps(process)}:"]
    lines += [f"    {name}: {json.dumps(value)}" for name, value in versions().items()]
    return "\n".join(lines) + "\n"
