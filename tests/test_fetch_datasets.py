"""pysim-fetch-datasets: the study's list maps to the original's CLIP-benchmark repos and folders;
a whole split is skipped without a download; a download is served through huggingface_hub from a
hub cache laid out by hand (HF_HUB_OFFLINE=1, no network) into a root pysim-validate accepts;
a split missing a shard or classnames.txt is refused; the online path runs against a stand-in
Hub on localhost (tests/hub_server.py). No test touches the network."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from hub_server import COMMIT as HUB_COMMIT
from hub_server import HubServer

from conftest import ROOT, SEED, assert_bad_input, run_cli
from pysim.data.clip_benchmark import STUDY_DATASETS, fetch_plan, verify_split
from pysim.errors import InputError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DERIVED = ("entity13", "entity30", "living17", "nonliving26")


def original_repo_names() -> list[str]:
    """The repos the original's download_datasets.sh clones (clip-benchmark/<name> -> ./<name>)."""
    return (SEED / "clip_benchmark_clf_datasets.txt").read_text().split()


def expected_folder(dataset_id: str) -> str:
    """Re-derived: drop 'wds/', join the rest with '-', prefix 'wds_' (the repo's own name)."""
    head, *rest = dataset_id.split("/")
    assert head == "wds"
    return "wds_" + "-".join(rest)


def list_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    return {**env, "HF_HUB_OFFLINE": "1", "HF_HOME": "/nonexistent/hf-home", **extra}


# --- the list -> repos and folders ---------------------------------------------------------

@pytest.mark.parametrize("list_name", ["webdatasets_w_insub10k.txt", "webdatasets_w_in1k.txt"])
def test_study_lists_map_to_the_original_repos_and_folders(list_name):
    ids = list_ids(SEED / list_name)
    wds = [i for i in ids if i.startswith("wds/")]
    derived = [i for i in ids if not i.startswith("wds/")]
    expected = {i: expected_folder(i) for i in [*wds, "wds/imagenet1k"]}
    plan = fetch_plan(ids)
    got = {item.dataset_id: item for item in plan}
    assert len(plan) == 20 and set(got) == set(expected)
    # the 20 repos are exactly those the original script clones, each into its own name
    assert sorted(item.folder for item in plan) == sorted(original_repo_names())
    for dataset_id, folder in expected.items():
        assert got[dataset_id].folder == folder
        assert got[dataset_id].repo_id == f"clip-benchmark/{folder}"
        assert got[dataset_id].splits == ("train", "test")
    assert list(got["wds/imagenet1k"].needed_by) == [d for d in derived if d != "wds/imagenet1k"]


def test_default_list_is_the_study_list_and_listing_needs_no_network(tmp_path):
    assert list(STUDY_DATASETS) == list_ids(ROOT / "assets/paper/webdatasets_w_insub10k.txt")
    proc = run_cli("pysim-fetch-datasets", "--dataset-root", tmp_path / "data", "--list",
                   env=offline_env())
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines() if not line.startswith("#")]
    assert rows[0] == ["dataset_id", "repo_id", "revision", "folder", "splits", "needed_by"]
    ids = [i for i in STUDY_DATASETS if i.startswith("wds/")] + ["wds/imagenet1k"]
    assert [r[0] for r in rows[1:]] == ids
    for row in rows[1:]:
        folder = expected_folder(row[0])
        assert row[1:5] == [f"clip-benchmark/{folder}", "main", str(tmp_path / "data" / folder),
                            "train: to fetch, test: to fetch"]
    assert rows[-1][5] == "entity30,living17,nonliving26,imagenet-subset-10k"
    assert not (tmp_path / "data").exists()  # --list writes nothing


@pytest.mark.parametrize("bad, fragment", [
    ("cifar10", "unknown dataset id"),
    ("imagenet/train", "unknown dataset id"),
    ("wds/demo_digits", "bundled demo dataset"),
])
def test_unknown_ids_are_refused(tmp_path, bad, fragment):
    proc = run_cli("pysim-fetch-datasets", "--dataset-root", tmp_path, "--dataset", bad, "--list",
                   env=offline_env())
    assert_bad_input(proc, bad, fragment)


def test_a_split_that_is_not_a_folder_name_is_refused(tmp_path):
    proc = run_cli("pysim-fetch-datasets", "--dataset-root", tmp_path, "--dataset", "wds/cars",
                   "--split", "train/*", "--list", env=offline_env())
    assert_bad_input(proc, "split 'train/*'", "not a split folder name")


def test_unwritable_root_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = run_cli("pysim-fetch-datasets", "--dataset-root", tmp_path / "file" / "data",
                   "--dataset", "wds/cars", env=offline_env())
    assert_bad_input(proc, "--dataset-root", "not a writable directory")


# --- shards, a hand-made dataset folder and a hand-made hub cache ---------------------------

def shard_bytes(seed: int, n: int = 3) -> bytes:
    """A small WebDataset shard: n samples of (fake) png + cls."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(n):
            for ext, data in (("png", bytes([seed % 256, i]) * 50), ("cls", f"{i % 2}\n".encode())):
                info = tarfile.TarInfo(f"s{seed:03d}{i:04d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def repo_files(shards: dict[str, int], classnames: bool = True,
               nshards: dict[str, int] | None = None) -> dict[str, bytes]:
    """Files of a CLIP-benchmark repo: <split>/<i>.tar, <split>/nshards.txt, classnames.txt."""
    files: dict[str, bytes] = {"README.md": b"# toy\n"}
    for split, n in shards.items():
        for i in range(n):
            files[f"{split}/{i}.tar"] = shard_bytes(10 * len(split) + i)
        files[f"{split}/nshards.txt"] = f"{(nshards or {}).get(split, n)}\n".encode()
    if classnames:
        files["classnames.txt"] = b"cat\ndog\n"
        files["zeroshot_classification_templates.txt"] = b"a photo of a {c}.\n"
    return files


def write_folder(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def lay_out_hub_cache(hub: Path, repo: str, files: dict[str, bytes]) -> dict[str, Path]:
    """huggingface_hub's cache layout, by hand: blobs/<sha256>, refs/main, snapshots/<commit>/
    with each file a relative symlink to its blob. Returns repo path -> blob."""
    base = hub / f"datasets--{repo.replace('/', '--')}"
    (base / "blobs").mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(COMMIT)
    blobs = {}
    for name, data in files.items():
        blob = base / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = base / "snapshots" / COMMIT / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
        blobs[name] = blob
    return blobs


def fetch(tmp_path: Path, *args: str | Path, hub: Path | None = None):
    return run_cli("pysim-fetch-datasets", "--dataset-root", tmp_path / "data",
                   "--cache-dir", hub or tmp_path / "hub", *args, env=offline_env())


def test_whole_splits_are_skipped_without_a_download(tmp_path):
    write_folder(tmp_path / "data" / "wds_toy", repo_files({"train": 2, "test": 1}))
    # offline with an empty cache: any download attempt would fail
    proc = fetch(tmp_path, "--dataset", "wds/toy")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("whole, skipped") == 2
    assert "0 splits fetched, 2 already whole" in proc.stdout
    assert not any((tmp_path / "hub").iterdir())
    listing = fetch(tmp_path, "--dataset", "wds/toy", "--list")
    assert "train: whole, test: whole" in listing.stdout
    # control: with the test split gone the same command tries to download, and fails offline
    shutil.rmtree(tmp_path / "data" / "wds_toy" / "test")
    proc = fetch(tmp_path, "--dataset", "wds/toy")
    assert_bad_input(proc, "wds/toy", "split 'test'", "cannot fetch clip-benchmark/wds_toy@main")


def test_download_through_the_hub_cache_fills_a_root_that_validate_accepts(tmp_path):
    hub = tmp_path / "hub"
    toy = repo_files({"train": 3, "test": 2, "valid": 1})
    blobs = lay_out_hub_cache(hub, "clip-benchmark/wds_toy", toy)
    lay_out_hub_cache(hub, "clip-benchmark/wds_imagenet1k", repo_files({"train": 2, "test": 1}))
    datasets = tmp_path / "datasets.txt"
    datasets.write_text("wds/toy\nliving17\n")
    proc = fetch(tmp_path, "--datasets", datasets)
    assert proc.returncode == 0, proc.stderr
    assert "4 splits fetched, 0 already whole" in proc.stdout
    assert f"wds/toy train: fetched clip-benchmark/wds_toy@main (commit {COMMIT[:12]}), " \
           f"3 shards verified" in proc.stdout
    folder = tmp_path / "data" / "wds_toy"
    for name, data in toy.items():
        if name.startswith("valid/") or name == "README.md":  # other splits are not fetched
            assert not (folder / name).exists()
            continue
        assert (folder / name).read_bytes() == data
        assert not (folder / name).is_symlink()
        assert (folder / name).stat().st_ino == blobs[name].stat().st_ino  # hard link, no copy
    assert verify_split(folder, "train") == 3
    # the layout pysim-validate --dataset-root checks (living17 needs imagenet train and test)
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"m1": {"model_name": "resnet18", "source": "torchvision",
                                         "module_name": "avgpool", "objective": "Supervised"}}))
    proc = run_cli("pysim-validate", "--models", models, "--datasets", datasets, "--metrics",
                   SEED / "similarity_metric_config_local_global.json",
                   "--dataset-root", tmp_path / "data")
    assert proc.returncode == 0 and "inputs OK" in proc.stdout, proc.stderr
    # resumable: a second run skips everything, even with the cache gone
    shutil.rmtree(hub)
    proc = fetch(tmp_path, "--datasets", datasets)
    assert proc.returncode == 0 and "0 splits fetched, 4 already whole" in proc.stdout


@pytest.mark.parametrize("files, fragments", [
    (repo_files({"train": 2, "test": 1}, nshards={"train": 3}), ("split 'train'", "2.tar")),
    (repo_files({"train": 2, "test": 1}, classnames=False), ("split 'train'", "classnames.txt")),
])
def test_a_split_missing_a_file_is_refused(tmp_path, files, fragments):
    lay_out_hub_cache(tmp_path / "hub", "clip-benchmark/wds_toy", files)
    proc = fetch(tmp_path, "--dataset", "wds/toy")
    assert_bad_input(proc, "dataset 'wds/toy' (from clip-benchmark/wds_toy)", *fragments,
                     "not found")


def test_verification_names_the_bad_file(tmp_path):
    folder = tmp_path / "wds_toy"
    write_folder(folder, repo_files({"train": 3}))
    assert verify_split(folder, "train") == 3
    checks = []
    verify_split(folder, "train", progress=checks.append)
    assert checks == [1, 1, 1]
    shard = folder / "train" / "1.tar"
    good = shard.read_bytes()
    shard.write_bytes(good[:700])  # truncated inside a member
    with pytest.raises(InputError, match=r"1\.tar: unreadable tar"):
        verify_split(folder, "train")
    shard.write_bytes(good)
    (folder / "train" / "3.tar").write_bytes(good)  # a shard nshards.txt does not name
    with pytest.raises(InputError, match=r"3\.tar is not one of the 3 shards"):
        verify_split(folder, "train")
    (folder / "train" / "3.tar").unlink()
    (folder / "train" / "0.tar").unlink()
    with pytest.raises(InputError, match=r"shard .*/train/0\.tar not found"):
        verify_split(folder, "train")
    with pytest.raises(InputError, match=r"test/nshards\.txt not found"):
        verify_split(folder, "test")


def test_online_download_fetches_only_the_splits_and_resumes(tmp_path):
    """huggingface_hub's online path (HF_ENDPOINT = a Hub stand-in on localhost): only the
    asked splits and the top-level files are downloaded, into <root>/.hf-cache, hard-linked
    into the folder; a second run makes no request; a lost shard comes back from the cache."""
    toy = repo_files({"train": 3, "test": 2, "valid": 1})
    hub = HubServer({"clip-benchmark/wds_toy": toy})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf-home"),
               HF_HUB_DISABLE_TELEMETRY="1")
    data = tmp_path / "data"

    def fetch_online():
        return run_cli("pysim-fetch-datasets", "--dataset-root", data, "--dataset", "wds/toy",
                       env=env)

    try:
        proc = fetch_online()
        assert proc.returncode == 0, proc.stderr
        assert "HTTP Request" not in proc.stderr  # the client's per-request log is quiet
        prefix = f"GET /datasets/clip-benchmark/wds_toy/resolve/{HUB_COMMIT}/"
        got = sorted(r.removeprefix(prefix) for r in hub.requests if r.startswith(prefix))
        wanted = sorted(n for n in toy if not n.startswith("valid/") and n != "README.md")
        assert sorted(set(got)) == wanted  # (top-level files once per split at most)
        snapshot = data / ".hf-cache" / "datasets--clip-benchmark--wds_toy" / "snapshots" / \
            HUB_COMMIT
        for name in wanted:
            assert (data / "wds_toy" / name).read_bytes() == toy[name]
            assert (data / "wds_toy" / name).stat().st_ino == (snapshot / name).stat().st_ino
        assert not (data / "wds_toy" / "valid").exists()

        hub.requests.clear()
        proc = fetch_online()
        assert proc.returncode == 0 and "2 already whole" in proc.stdout, proc.stderr
        assert hub.requests == []  # whole splits: no request at all

        (data / "wds_toy" / "train" / "1.tar").unlink()
        proc = fetch_online()
        assert proc.returncode == 0 and "1 splits fetched, 1 already whole" in proc.stdout
        assert (data / "wds_toy" / "train" / "1.tar").read_bytes() == toy["train/1.tar"]
        assert not any(r.startswith(prefix) for r in hub.requests)  # served by the cache
    finally:
        hub.close()


def test_a_repo_missing_on_the_hub_is_one_line(tmp_path):
    hub = HubServer({})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf-home"),
               HF_HUB_DISABLE_TELEMETRY="1")
    try:
        proc = run_cli("pysim-fetch-datasets", "--dataset-root", tmp_path / "data",
                       "--dataset", "wds/nope", env=env)
    finally:
        hub.close()
    assert_bad_input(proc, "dataset 'wds/nope' split 'train'", "cannot fetch "
                     "clip-benchmark/wds_nope@main", "RepositoryNotFoundError")
