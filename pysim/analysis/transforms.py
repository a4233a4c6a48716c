"""Transforms of the similarities before the cross-dataset consistency (the paper's Appendix D):
`tan` stretches values near +-1, `arccos` turns a cosine-like similarity into an angle.

Both act on values clipped to [-1, 1] (a warning names values more than 1e-6 outside). tan is
finite and increasing there (|s| <= 1 < pi/2, tan(+-1) = +-1.557); arccos is decreasing and
maps [-1, 1] onto [pi, 0], which keeps every correlation between two transformed matrices'
signs (both sides are transformed alike).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

TRANSFORMS = ("none", "tan", "arccos")
EDGE_TOLERANCE = 1e-6


def transform_similarities(values: np.ndarray, transform: str, label: str = "") -> np.ndarray:
    """The similarities under one transform (`none` returns them unchanged)."""
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform '{transform}' (one of {', '.join(TRANSFORMS)})")
    if transform == "none":
        return values
    finite = values[np.isfinite(values)]
    outside = int((np.abs(finite) > 1 + EDGE_TOLERANCE).sum())
    if outside:
        log.warning("%s: %d similarities outside [-1, 1] clipped before %s", label or "values",
                    outside, transform)
    clipped = np.clip(values, -1.0, 1.0)
    return np.tan(clipped) if transform == "tan" else np.arccos(clipped)
