"""Which torch.hub repos pysim may run, and what each held when it ran (DESIGN §3, §5).

A torch.hub entry point is the repo's own Python code (`hubconf.py`). pysim runs a hub repo
only when its `owner/name` is on the trusted list: by default the repos of the study's table
(facebookresearch/dino for the XCiTs, which itself loads facebookresearch/xcit, and
facebookresearch/dinov2), else the list given with `--trust-hub-repos` (workflow:
`--trust_hub_repos`). An item `owner/name=<sha256>` also pins the repo: the cached copy must
hash to that digest (a prefix of at least 12 hex digits is enough) or nothing runs. Validation
(`pysim-validate`, `--resolve`) never runs hub code at all.

`repo_digest` hashes a cached repo folder (every file's relative path and bytes, sorted, `.git`
and `__pycache__` left out): the features record it as the root attribute `hub_repos`
(`{"owner/name:ref": "sha256:<hex>"}`), so a result names exactly the code that made it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from pysim.errors import InputError

STUDY_HUB_REPOS = ("facebookresearch/dino", "facebookresearch/dinov2", "facebookresearch/xcit")
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_PIN = re.compile(r"(?:sha256:)?([0-9a-f]{12,64})")
_trusted: dict[str, str] = {r: "" for r in STUDY_HUB_REPOS}  # owner/name -> pinned digest prefix


def parse_trusted(items: Iterable[str]) -> dict[str, str]:
    """`owner/name[=<sha256>]` items (comma-separated strings allowed) -> owner/name -> pin."""
    out: dict[str, str] = {}
    for item in (p.strip() for text in items for p in str(text).split(",")):
        if not item:
            continue
        repo, _, pin = item.partition("=")
        repo = repo.strip().partition(":")[0]
        if not _REPO.fullmatch(repo) or ".." in repo:
            raise InputError(f"--trust-hub-repos: '{item[:80]}' is not owner/name[=<sha256>]")
        match = _PIN.fullmatch(pin.strip().lower()) if pin else None
        if pin and match is None:
            raise InputError(f"--trust-hub-repos: pin of '{repo}' must be a sha256 hex digest "
                             "(12 to 64 hex digits)")
        out[repo] = match.group(1) if match else ""
    return out


def set_trusted(items: Iterable[str] | None) -> None:
    """Trust exactly these repos (None or empty: the study's STUDY_HUB_REPOS)."""
    global _trusted
    parsed = parse_trusted(items or ())
    _trusted = parsed or {r: "" for r in STUDY_HUB_REPOS}


def trusted() -> dict[str, str]:
    """The trusted repos (owner/name -> pinned digest prefix, "" when not pinned)."""
    return dict(_trusted)


def repo_digest(folder: str | os.PathLike) -> str:
    """sha256 over a repo folder's files (relative path and bytes, sorted; no .git/caches)."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root)
        if rel.parts[0] == ".git" or "__pycache__" in rel.parts:
            continue
        digest.update(rel.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + digest.hexdigest()


def check_trusted(repo: str, folder: Path | None = None) -> str:
    """InputError unless `repo` ('owner/name[:ref]') may run; its folder's digest ("" if none
    is cached yet), checked against the pin when one was given."""
    name = repo.partition(":")[0]
    if name not in _trusted:
        raise InputError(f"torch.hub repo '{name}' is not trusted: its hubconf.py would run "
                         f"(trusted: {', '.join(_trusted)}; add it with --trust-hub-repos / "
                         "--trust_hub_repos if you trust its code)")
    digest = repo_digest(folder) if folder is not None and folder.is_dir() else ""
    pin = _trusted[name]
    if pin and not digest.removeprefix("sha256:").startswith(pin):
        raise InputError(f"torch.hub repo '{name}': the cached copy {folder} hashes to "
                         f"{digest or 'nothing (not cached)'}, not the pinned {pin}")
    return digest
