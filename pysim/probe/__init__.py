"""Linear probes: test accuracy of a linear classifier on one model's features of one dataset."""

from pysim.probe.data import ProbeData, load_probe_data, stratified_split
from pysim.probe.search import ProbeSettings, run_probe

__all__ = ["ProbeData", "ProbeSettings", "load_probe_data", "run_probe", "stratified_split"]
