"""A full disk is one line naming the folder (and the space needed where known), exit 2, no
partial file left: on a real 64 KiB tmpfs (needs root and mount; skipped otherwise)."""

import os
import subprocess

import pytest

from conftest import ROOT, assert_bad_input, run_cli
from pysim.errors import DiskFullError


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs, nearly filled: any write of a few KiB fails with ENOSPC."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        with open(mount / "filler", "wb") as handle:
            try:
                handle.write(b"\0" * 60 * 1024)
            except OSError:
                pass
        (mount / "out").mkdir()
        yield mount / "out"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_atomic_writer_names_the_folder_and_leaves_nothing(tiny_fs):
    from pysim.io import write_json

    with pytest.raises(DiskFullError) as info:
        write_json(tiny_fs / "x.json", list(range(20000)))
    message = str(info.value)
    assert f"no space left on device in {tiny_fs.resolve()}" in message
    assert "-resume continues" in message and "\n" not in message
    assert os.listdir(tiny_fs) == []  # neither the file nor its temporary


def test_entry_point_on_a_full_disk_is_one_line(tiny_fs):
    paper = ROOT / "assets" / "paper"
    table = tiny_fs / "models.json"
    proc = run_cli("pysim-validate", "--models", paper / "models_config_wo_alignment.json",
                   "--datasets", paper / "webdatasets_w_insub10k.txt",
                   "--metrics", paper / "similarity_metric_config_local_global.json",
                   "--write-models", table)
    assert_bad_input(proc, "pysim-validate: error: no space left on device in "
                     f"{tiny_fs.resolve()} (it needed ", "KiB)", "-resume continues")
    assert os.listdir(tiny_fs) == []


# --- the run's last line (subworkflows/local/utils_pysim_pipeline: PIPELINE_COMPLETION) ------

TINY_PIPELINE = """
include { PIPELINE_COMPLETION } from '%(repo)s/subworkflows/local/utils_pysim_pipeline'
params.full = null     // the full folder
params.publish = false // write in the task, publish (copy) into the full folder
process FILL {
    publishDir path: { params.full }, mode: 'copy', enabled: params.publish as boolean
    output:
    path 'models.json'
    script:
    def target = params.publish ? 'models.json' : "${params.full}/models.json"
    \"\"\"
    '%(python)s' '%(repo)s/bin/pysim-validate' \\\\
        --models '%(paper)s/models_config_wo_alignment.json' \\\\
        --datasets '%(paper)s/webdatasets_w_insub10k.txt' \\\\
        --metrics '%(paper)s/similarity_metric_config_local_global.json' --write-models '${target}'
    touch models.json
    \"\"\"
}
workflow {
    FILL()
    PIPELINE_COMPLETION('out', null, null, null)
}
"""


def run_tiny(tmp_path, full, publish):
    import sys

    from nf_helpers import run_nf

    (tmp_path / "lib").symlink_to(ROOT / "lib")  # ParamsSchema, beside the tiny main.nf
    (tmp_path / "main.nf").write_text(TINY_PIPELINE % {
        "repo": ROOT, "python": sys.executable, "paper": ROOT / "assets" / "paper"})
    proc = run_nf(["run", "main.nf", "--full", str(full)]
                  + (["--publish", "true"] if publish else []), cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    return [line for line in (proc.stdout + proc.stderr).splitlines()
            if line.startswith("pysim: no space left on device")]


@pytest.mark.slow
def test_task_on_a_full_disk_ends_the_run_with_one_line(tmp_path, tiny_fs):
    lines = run_tiny(tmp_path, tiny_fs, publish=False)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"pysim: no space left on device in {tiny_fs.resolve()} "
                               "(it needed ")
    assert lines[0].endswith("KiB); free space there and rerun with -resume, which continues "
                             "where the run stopped")


@pytest.mark.slow
def test_publishing_on_a_full_disk_ends_the_run_with_one_line(tmp_path, tiny_fs):
    lines = run_tiny(tmp_path, tiny_fs, publish=True)
    assert lines == [f"pysim: no space left on device in {tiny_fs.resolve()}; free space there "
                     "and rerun with -resume, which continues where the run stopped"], lines
