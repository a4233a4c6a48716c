#!/usr/bin/env bash
# End-to-end check of the CPU image (slow, run by hand: `make test-containers`): build it if
# missing, check it, run the test workflow with and without Apptainer and require the similarity
# files (and subsets) to agree within 1e-6. Prints build time, image size and run times.
# Without apptainer on the PATH, uses the private root of scripts/apptainer-root.sh (as root).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$root/.tools/bin:$PATH"
image="${PYSIM_CONTAINER_IMAGE:-$root/containers/pysim-cpu.sif}"   # a .sif or a sandbox folder
out="${PYSIM_CONTAINER_TEST_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pysim-container-test.XXXXXX")}"
mkdir -p "$out"
userns=false
if ! command -v apptainer >/dev/null 2>&1; then
    scripts/apptainer-root.sh provision
    export PATH="$root/scripts:$PATH"          # the wrapper that enters the private root
    export PYSIM_APPTAINER_BINDS="$root:$out"
    userns=true                                # no setuid apptainer there: user namespaces
fi
ns_flag=""; [ "$userns" = true ] && ns_flag="--userns"
log() { echo "test-containers: $*" >&2; }
now() { date +%s; }

if [ ! -e "$image" ]; then
    log "building $image"
    t=$(now); make --no-print-directory containers CONTAINERS=cpu; build_s=$(( $(now) - t ))
    log "build time: ${build_s} s"
fi
log "image size: $(du -sh "$image" | cut -f1) ($image)"

log "image self-test (%test) and imports"
apptainer test $ns_flag "$image"
apptainer exec $ns_flag "$image" python -I -c \
    'import torch, torchvision, timm, open_clip, pysim; print("torch", torch.__version__, "timm", timm.__version__, "open_clip", open_clip.__version__)'

run_workflow() {  # name, PATH, extra args...
    local name="$1" path="$2"; shift 2
    local t; t=$(now)
    (cd "$out" && PATH="$path" nextflow -q run "$root/main.nf" -profile "$@" --outdir "$out/$name" \
        -w "$out/work-$name" > "$out/$name.log" 2>&1) \
        || { log "$name run failed; log: $out/$name.log"; tail -30 "$out/$name.log" >&2; exit 1; }
    log "$name run: $(( $(now) - t )) s"
}
# Host run: the checkout's environment; container run: only what the image has.
run_workflow host "$root/.venv/bin:$PATH" test
run_workflow apptainer "$PATH" test,apptainer --container "$image" --apptainer_userns "$userns"

log "comparing $out/host with $out/apptainer"
"$root/.venv/bin/python" - "$out/host" "$out/apptainer" <<'PY'
"""Similarity matrices and subsets of the two runs must agree (1e-6 absolute, same ids)."""
import json
import sys
from pathlib import Path

import numpy as np

from pysim.io import read_similarities

host, cont = Path(sys.argv[1]), Path(sys.argv[2])
names = sorted(p.name for p in (host / "similarities").glob("*.h5"))
assert names, "no similarity files in the host run"
assert names == sorted(p.name for p in (cont / "similarities").glob("*.h5")), "file sets differ"
worst = 0.0
for name in names:
    a = read_similarities(host / "similarities" / name)
    b = read_similarities(cont / "similarities" / name)
    assert sorted(a.model_ids) == sorted(b.model_ids), f"{name}: model ids differ"
    assert sorted(a.matrices) == sorted(b.matrices), f"{name}: metric sets differ"
    order = [list(a.model_ids).index(m) for m in b.model_ids]
    for metric, y in b.matrices.items():
        x = np.asarray(a.matrices[metric])[np.ix_(order, order)]
        assert np.array_equal(np.isnan(x), np.isnan(np.asarray(y))), f"{name} {metric}: NaNs"
        diff = float(np.nanmax(np.abs(x - y))) if x.size else 0.0
        worst = max(worst, diff)
        print(f"  {name} {metric}: max |diff| = {diff:.3g}")
for p in sorted((host / "subsets").glob("*.json")):
    assert json.loads(p.read_text()) == json.loads((cont / "subsets" / p.name).read_text()), p.name
print(f"{len(names)} similarity files, max |diff| = {worst:.3g}")
sys.exit(0 if worst <= 1e-6 else 1)
PY
log "OK (outputs in $out)"
rm -rf "$out/work-host" "$out/work-apptainer"
