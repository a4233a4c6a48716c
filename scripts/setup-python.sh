#!/usr/bin/env bash
# Create .venv with pysim (editable) and its dev tools.
# The dependencies live in an environment keyed by a hash of pyproject.toml, kept outside
# the checkout (PYSIM_CACHE, default ~/.cache/pysim/envs/<hash>); .venv links to it, so a
# fresh clone with unchanged dependencies is set up in seconds instead of minutes.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "setup-python: need Python >= 3.10 ($python)" >&2; exit 2; }

# Key: the [project] tables of pyproject.toml (dependencies, extras) and the Python version.
key="$( (sed -n '/^\[project/,/^\[tool/p' pyproject.toml; "$python" -c 'import sys; print(sys.version)') \
    | sha256sum | cut -c1-16)"
env="${PYSIM_CACHE:-$HOME/.cache/pysim}/envs/$key"

if [ ! -f "$env/.complete" ]; then
    echo "setup-python: building environment $env (first time: several minutes, torch is large)"
    rm -rf "$env"
    "$python" -m venv "$env"
    "$env/bin/pip" install -q --upgrade pip
    "$env/bin/pip" install -q -e ".[dev]"
    touch "$env/.complete"
fi
# Editable install pointing at this checkout (cheap; last `make setup` wins for a shared env).
if ! "$env/bin/python" -c 'import pysim, sys, pathlib; sys.exit(pathlib.Path(pysim.__file__).resolve().parent != pathlib.Path(sys.argv[1]).resolve())' "$root/pysim" 2>/dev/null; then
    "$env/bin/pip" install -q --no-deps --no-build-isolation -e .
fi
if [ "$(readlink .venv 2>/dev/null)" != "$env" ]; then
    rm -rf .venv
    ln -s "$env" .venv
fi
echo "setup-python: .venv -> $env"
