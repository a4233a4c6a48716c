"""One rule for the ids that become file names (DESIGN §3): model, representation, dataset.

An id is printable, at most MAX_ID_LEN characters, has no whitespace or control character, no
path separator (`/` only between a dataset id's parts, `\\` never), no `..`, and no part that
starts with a dot or a dash; `@` appears only in a representation id, once, between the model id
and the module (`<model_id>@<module>`), so a model id holding `@` is refused. `child_path`
builds a path from an id and checks that it stays inside its folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from pysim.errors import InputError

MAX_ID_LEN = 200
LAYER_SEP = "@"


def _shown(value: str) -> str:
    """The id as one safe line: escapes for control characters, long ids shortened."""
    text = ascii(value)[1:-1] if not value.isprintable() else value
    return f"'{text[:60]}...' ({len(value)} characters)" if len(text) > 80 else f"'{text}'"


def _why_bad_part(part: str, allow_at: bool = False) -> str | None:
    if not part:
        return "is empty"
    if not part.isprintable() or any(c.isspace() for c in part):
        return "contains whitespace or a control character"
    if "/" in part or "\\" in part:
        return "contains a path separator"
    if ".." in part:
        return "contains '..'"
    if part[0] in ".-":
        return "starts with a dot or a dash"
    if not allow_at and LAYER_SEP in part:
        return f"contains '{LAYER_SEP}' (reserved for <model_id>{LAYER_SEP}<module>)"
    return None


def _why_bad(value: object, kind: str) -> str | None:
    if not isinstance(value, str):
        return f"is not a string ({type(value).__name__})"
    if len(value) > MAX_ID_LEN:
        return f"is longer than {MAX_ID_LEN} characters"
    if kind == "dataset":
        if value.startswith("/") or value.endswith("/"):
            return "starts or ends with '/'"
        for part in value.split("/"):
            why = _why_bad_part(part)
            if why:
                return why if part else "has an empty part between '/'"
        return None
    if kind == "representation":
        model, sep, module = value.partition(LAYER_SEP)
        why = _why_bad_part(model)
        if why or not sep:
            return why
        return _why_bad_part(module) and f"module part {_why_bad_part(module)}"
    return _why_bad_part(value)


def check_id(value: object, kind: str = "model") -> str:
    """`value` if it is a legal id of `kind` (model | representation | dataset), else InputError
    naming the id and the reason in one line."""
    why = _why_bad(value, kind)
    if why:
        shown = _shown(value) if isinstance(value, str) else repr(value)[:80]
        raise InputError(f"{kind} id {shown} {why}; ids are printable, at most {MAX_ID_LEN} "
                         "characters, without whitespace, path separators, '..', a leading dot "
                         f"or dash, or '{LAYER_SEP}' outside <model_id>{LAYER_SEP}<module>")
    return value  # type: ignore[return-value]


def child_path(folder: str | os.PathLike, name: str) -> Path:
    """folder/name, refused (InputError) unless it resolves to a path directly inside folder."""
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if path.parent != root or not name or os.sep in name or (os.altsep and os.altsep in name):
        raise InputError(f"file name {_shown(name)} would leave the folder {folder}")
    return Path(folder) / name
