"""Memory sizes: parse --max-memory strings and pick a safe default budget for the engine."""

from __future__ import annotations

import os
import re

from pysim.errors import InputError

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes in a size such as '1GB', '512MB', '2G', '1.5GiB' or '1000000' (units are binary)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"--max-memory: cannot read size {text!r} (examples: 1GB, 512MB, 2G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def current_rss() -> int:
    """Resident set size of this process in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def available_ram() -> int:
    """Available host memory in bytes (MemAvailable, else free physical pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def cgroup_available() -> int | None:
    """Bytes left under this process's cgroup memory limit (a SLURM job's), None if unlimited.

    Reads cgroup v2 (`memory.max` / `memory.current`) or v1 (`memory.limit_in_bytes` /
    `memory.usage_in_bytes`) of the cgroup named in /proc/self/cgroup; inside a container that
    hides the host's part of that path, the longest tail of it that exists is used.
    """
    try:
        with open("/proc/self/cgroup") as f:
            entries = f.read().splitlines()
    except OSError:
        return None
    for entry in entries:
        _, controllers, path = entry.split(":", 2)
        if controllers == "":
            root, files = "/sys/fs/cgroup", ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            root, files = "/sys/fs/cgroup/memory", ("memory.limit_in_bytes",
                                                    "memory.usage_in_bytes")
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for start in range(len(parts) + 1):
            folder = "/".join([root, *parts[start:]])
            try:
                with open(f"{folder}/{files[0]}") as f:
                    limit = f.read().strip()
                with open(f"{folder}/{files[1]}") as f:
                    usage = int(f.read().strip())
            except (OSError, ValueError):
                continue
            if limit == "max" or int(limit) >= 1 << 60:  # v1 writes a huge number for "none"
                return None
            return max(int(limit) - usage, 0)
    return None


def working_budget(device: str, max_memory: int | None) -> int:
    """Bytes the engine may allocate on `device` beyond what is already in use.

    With max_memory on CPU it is the whole process's limit, so the current RSS is subtracted;
    on CUDA it limits GPU memory, never beyond 80% of what is free. Default: half of the free
    RAM (or of what the job's cgroup still allows, if less), or 80% of free GPU memory.
    """
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        used = torch.cuda.memory_allocated(torch.device(device))
        return int(0.8 * free) if max_memory is None else min(int(0.8 * free), max_memory - used)
    if max_memory is None:
        in_cgroup = cgroup_available()
        free = available_ram() if in_cgroup is None else min(available_ram(), in_cgroup)
        return free // 2
    return max_memory - current_rss()


def return_freed_memory() -> None:
    """Make glibc serve large blocks (>= 1 MiB) by mmap and give them back when freed.

    By default glibc raises its mmap threshold after the first large free, so later
    temporaries of up to 32 MiB come from a heap that is rarely trimmed and the resident set
    keeps growing; with a fixed threshold the process's RSS follows the engine's accounting.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD (fixed: no dynamic raising)
        libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass
