"""The pysim-versions stage: the versions.yml block every workflow process writes (nf-core's
format: python, pysim, torch, CUDA, timm, open_clip, the container image)."""

from __future__ import annotations

from pysim.versions import versions_yaml


def run_versions(process: str) -> str:
    """The YAML block of `process` with the versions found in this environment."""
    return versions_yaml(process)
