#!/usr/bin/env bash
# Create .venv: a small per-checkout virtual environment with pysim (this checkout, editable)
# on top of a shared dependency environment keyed by a hash of pyproject.toml's [project]
# tables and the Python version, kept outside the checkout (PYSIM_CACHE, default
# ~/.cache/pysim/envs/<hash>). A fresh clone with unchanged dependencies is set up in seconds,
# and two checkouts never see each other's pysim.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "setup-python: need Python >= 3.10 ($python)" >&2; exit 2; }

key="$( (sed -n '/^\[project/,/^\[tool/p' pyproject.toml; "$python" -c 'import sys; print(sys.version)') \
    | sha256sum | cut -c1-16)"
deps="${PYSIM_CACHE:-$HOME/.cache/pysim}/envs/$key"

if [ ! -f "$deps/.complete" ]; then
    echo "setup-python: building the dependency environment $deps (first time: minutes, torch is large)"
    rm -rf "$deps"
    "$python" -m venv "$deps"
    "$deps/bin/pip" install -q --upgrade pip
    "$deps/bin/pip" install -q ".[dev]"
    touch "$deps/.complete"
fi
# The shared environment holds the dependencies only; pysim comes from each checkout.
if [ -n "$(ls -d "$deps"/lib/python3*/site-packages/pysim* 2>/dev/null)" ]; then
    "$deps/bin/pip" uninstall -q -y pysim
fi

purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
if [ -L .venv ] || [ ! -x .venv/bin/python ]; then
    rm -rf .venv
    "$python" -m venv --without-pip .venv
fi
site="$(purelib .venv/bin/python)"
# Dependencies: the shared environment's site-packages (its own .pth files processed too).
echo "import site; site.addsitedir('$(purelib "$deps/bin/python")')" > "$site/_pysim_deps.pth"
# pysim: this checkout (what an editable install amounts to).
echo "$root" > "$site/_pysim_src.pth"
ln -sfn "$deps/bin/ruff" .venv/bin/ruff  # a binary; pytest runs as `python -m pytest`
.venv/bin/python -c 'import pysim, torch, timm, open_clip, webdataset, h5py' \
    || { echo "setup-python: .venv is broken; remove $deps and run make setup again" >&2; exit 1; }
echo "setup-python: .venv (dependencies from $deps)"
