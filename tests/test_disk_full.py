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
