"""One measured point, in a fresh process: warm-up run, reset of the peak-RSS mark, timed real run.

Usage: python benchmarks/peak_child.py '[WARM_ARGV, REAL_ARGV]'. Each argv is a script path and
its arguments (run as __main__), or ["-c", CODE, *argv]. Prints one line "POINT {json}" with the
real run's seconds, the RSS at the reset (base), the peak RSS after it, bytes read and, on CUDA,
torch's peak GPU memory. Shared by benchmarks/scale.py and the tests' memory measurements.
"""

import json
import runpy
import sys
import time


def run(argv: list[str]) -> None:
    """Run a script as __main__ (or a code string); a non-zero exit is an error."""
    if argv[0] == "-c":
        exec(argv[1], {"__name__": "__point__", "argv": argv[2:]})
        return
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        if exc.code:
            raise


def proc_field(path: str, name: str) -> int:
    """An integer field of a /proc/self file (kB in status, bytes in io)."""
    with open(path) as f:
        return next(int(line.split()[1]) for line in f if line.startswith(name))


def cuda():
    """torch.cuda when the measured run initialised it, else None."""
    torch = sys.modules.get("torch")
    return torch.cuda if torch is not None and torch.cuda.is_initialized() else None


def main() -> None:
    warm, real = json.loads(sys.argv[1])
    run(warm)
    if cuda():
        cuda().reset_peak_memory_stats()
    base = proc_field("/proc/self/status", "VmRSS:") * 1024
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    read0, t0 = proc_field("/proc/self/io", "rchar:"), time.perf_counter()
    run(real)
    seconds = time.perf_counter() - t0
    print("POINT " + json.dumps({
        "seconds": seconds, "base": base,
        "peak": proc_field("/proc/self/status", "VmHWM:") * 1024,
        "read": proc_field("/proc/self/io", "rchar:") - read0,
        "gpu": cuda().max_memory_allocated() if cuda() else 0}))


if __name__ == "__main__":
    main()
