"""All-pairs representational similarity (DESIGN §4): CKA, RSA and mutual kNN for m models.

`compute_similarities` works on arrays; `read_dataset_features` reads one dataset's features
files for the pysim-similarity stage (pysim.stages.similarity).
"""

from pysim.similarity.engine import compute_similarities, similarities_of_prepared
from pysim.similarity.files import read_dataset_features
from pysim.similarity.memory import parse_size

__all__ = ["compute_similarities", "parse_size", "read_dataset_features",
           "similarities_of_prepared"]
