"""All-pairs representational similarity (DESIGN §4): every registered metric family for m models.

`compute_similarities` works on arrays; `read_dataset_features` reads one dataset's features
files for the pysim-similarity stage (pysim.stages.similarity). The names are imported on
first use, so that parsing a metric list (which imports the family modules) stays free of torch.
"""

from importlib import import_module
from typing import Any

_NAMES = {"compute_similarities": "pysim.similarity.engine",
          "similarities_of_prepared": "pysim.similarity.engine",
          "read_dataset_features": "pysim.similarity.files",
          "parse_size": "pysim.similarity.memory"}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'pysim.similarity' has no attribute {name!r}")
    return getattr(import_module(_NAMES[name]), name)
