"""Output checks every entry point runs before it computes (DESIGN §8): `--out` (or `--out-dir`)
has a legal name, can be written, and is not one of the entry point's inputs.

A failed check is one InputError line naming the option and the reason, so an unwritable or
over-long output path ends the run at once instead of after the whole computation.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pysim.errors import InputError

PATH_MAX = 4095  # bytes of a path (Linux PATH_MAX less the NUL)


def _name_limit(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):  # False, not an error, for an over-long name
            return candidate
    return Path("/")


def _writable(folder: Path) -> bool:
    """True if a file can be created (and removed) in `folder`: tried for real, as root too."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pysim-write-check-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return True


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(option: str, out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                 folder: bool = False) -> None:
    """InputError unless `out` (a file, or with `folder` a folder created if needed) has a legal
    name, can be written, and is none of `inputs`."""
    text = os.fspath(out)
    if not text or not text.isprintable():
        raise InputError(f"{option} {ascii(text)}: not a legal path (empty, or a control "
                         "character)")
    path = Path(text).absolute()
    if len(os.fsencode(str(path))) > PATH_MAX:
        raise InputError(f"{option}: path longer than {PATH_MAX} bytes")
    base = _existing_ancestor(path)
    limit = _name_limit(base if base.is_dir() else base.parent)
    long = [p for p in path.parts if len(os.fsencode(p)) > limit]
    if long:
        raise InputError(f"{option}: name '{long[0][:40]}...' is longer than {limit} bytes")
    for source in inputs:
        if source is not None and _same(path, Path(source)):
            raise InputError(f"{option} {text} is also an input of this command (it would be "
                             "overwritten); choose another path")
    if base == path:
        if folder and not path.is_dir():
            raise InputError(f"{option} {text}: exists and is not a folder")
        if not folder and path.is_dir():
            raise InputError(f"{option} {text}: is a folder, expected a file path")
        base = path if folder else path.parent
    if not base.is_dir():
        raise InputError(f"{option} {text}: {base} is not a folder")
    if not _writable(base):
        raise InputError(f"{option} {text}: cannot write in {base} (permission or read-only "
                         "file system)")


def check_outputs(outputs: dict[str, str | os.PathLike | None],
                  inputs: Iterable[str | os.PathLike | None] = (), folder: bool = False) -> None:
    """check_output for each given option -> path; also refuses one path given twice."""
    inputs = [i for i in inputs if i is not None]
    given = {k: v for k, v in outputs.items() if v is not None}
    seen: dict[Path, str] = {}
    for option, out in given.items():
        check_output(option, out, inputs, folder)
        key = Path(os.fspath(out)).absolute()
        if key in seen:
            raise InputError(f"{option} and {seen[key]} name the same file {out}")
        seen[key] = option
