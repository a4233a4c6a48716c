"""A small real Apptainer image for the workflow tests: Debian minbase + python3 + procps.

Building the project's images takes 30+ minutes here, so the tests use a minimal Debian image
(about a minute with `debootstrap`) whose tasks run this checkout's Python environment, bound
read-only at the same paths (`host_python_binds`). Nextflow, the `apptainer` profile, its binds
and its environment handling are the real ones. Without an `apptainer` on the PATH the private
root of scripts/apptainer-root.sh is used (root only), through the scripts/apptainer wrapper.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PYSIM_CACHE", Path.home() / ".cache" / "pysim")) / "test-images"

DEFINITION = """\
Bootstrap: debootstrap
OSVersion: bookworm
MirrorURL: http://deb.debian.org/debian
Include: python3 procps

%environment
    export PATH={venv_bin}:$PATH
    export LC_ALL=C.UTF-8
    export MPLCONFIGDIR="${{TMPDIR:-/tmp}}/pysim-matplotlib"
"""


def unavailable_reason() -> str | None:
    """Why no image can be built here (None when it can)."""
    if shutil.which("apptainer"):
        return None
    if os.geteuid() != 0:
        return "no apptainer on the PATH and not root (scripts/apptainer-root.sh needs root)"
    if shutil.which("debootstrap") is None and shutil.which("apt-get") is None:
        return "no apptainer, no debootstrap and no apt-get"
    return None


def apptainer_path_entry() -> str | None:
    """A folder to put first on PATH so that `apptainer` resolves (None: already there)."""
    if shutil.which("apptainer"):
        return None
    subprocess.run([str(REPO / "scripts" / "apptainer-root.sh"), "provision"], check=True,
                   capture_output=True, text=True, timeout=900)
    return str(REPO / "scripts")


def host_python_binds() -> list[str]:
    """Folders that make this interpreter and its packages work inside the image."""
    folders = {sys.base_prefix, sys.prefix}
    for path in sys.path:
        if "site-packages" in path and os.path.isdir(path):
            folders.add(str(Path(path).resolve().parents[2]))  # <env>/lib/pythonX.Y/...
    folders.add(sysconfig.get_paths()["purelib"])
    return sorted(f for f in folders if not f.startswith(str(REPO) + os.sep) and f != str(REPO))


def build_image() -> Path:
    """The image for this interpreter (cached by its definition's hash); builds it if missing."""
    venv_bin = str(Path(sys.executable).parent)
    definition = DEFINITION.format(venv_bin=venv_bin)
    digest = hashlib.sha256(definition.encode()).hexdigest()[:16]
    image = CACHE / f"pysim-test-{digest}.sif"
    if image.exists():
        return image
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / f"{image.stem}.def").write_text(definition)
    entry = apptainer_path_entry()
    env = dict(os.environ)
    if entry:
        env["PATH"] = entry + os.pathsep + env["PATH"]
    partial = image.with_suffix(".partial.sif")
    proc = subprocess.run(["apptainer", "build", "--force", "--fakeroot", str(partial),
                           f"{image.stem}.def"], cwd=CACHE, env=env, capture_output=True,
                          text=True, timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(f"apptainer build failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    partial.rename(image)
    return image
