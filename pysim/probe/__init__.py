"""Linear probes: test accuracy of a linear classifier on one model's features of one dataset.

`run_probe` (pysim.probe.search) needs torch and is imported on first use, so that reading and
checking inputs stays fast.
"""

from pysim.probe.data import ProbeData, load_probe_data, stratified_split
from pysim.probe.settings import ProbeSettings, check_settings

__all__ = ["ProbeData", "ProbeSettings", "check_settings", "load_probe_data", "run_probe",
           "stratified_split"]


def __getattr__(name: str):
    if name == "run_probe":
        from pysim.probe.search import run_probe

        return run_probe
    raise AttributeError(f"module 'pysim.probe' has no attribute '{name}'")
