"""The exception types for bad input (and a full disk); entry points turn them into exit code 2."""


class InputError(Exception):
    """Bad input (a file, an entry, a flag): the message is one line naming what and why."""


NO_SPACE = "No space left on device"


class DiskFullError(InputError):
    """A write failed for lack of space: one line naming the folder; exit 2 like bad input."""

    def __init__(self, folder: object, needed: int | None = None) -> None:
        size = f" (it needed {_size(needed)})" if needed else ""
        super().__init__(f"no space left on device in {folder}{size}; free space there and "
                         "rerun (with Nextflow: -resume continues)")


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC, also when a library (h5py) only names it in its message."""
    import errno

    return getattr(exc, "errno", None) == errno.ENOSPC or NO_SPACE in str(exc)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
