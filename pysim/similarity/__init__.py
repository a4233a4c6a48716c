"""All-pairs representational similarity (DESIGN §4): CKA, RSA and mutual kNN for m models.

`compute_similarities` works on arrays; `similarity_file` is the pysim-similarity stage
(features files in, similarity file out).
"""

from pysim.similarity.engine import compute_similarities
from pysim.similarity.files import similarity_file
from pysim.similarity.memory import parse_size

__all__ = ["compute_similarities", "parse_size", "similarity_file"]
