"""Per-model feature preparation: float32 tensor, optional L2 normalisation, validity check."""

from __future__ import annotations

import numpy as np
import torch

from pysim.errors import InputError

NORMALIZE_MODES = ("l2", "none")


def prepare_features(features: np.ndarray | torch.Tensor, normalize: str = "l2",
                     device: str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """n x d tensor on `device` (float32, or float64 for the families that whiten: their
    result moves with the float32 rounding of nearly constant directions), rows L2-normalised
    (norms taken in float64) if asked.

    A zero-norm sample becomes a NaN row, so the model is flagged invalid instead of silently
    dividing by zero.
    """
    if normalize not in NORMALIZE_MODES:
        raise InputError(f"--normalize must be one of {', '.join(NORMALIZE_MODES)}, "
                         f"got {normalize!r}")
    x = torch.as_tensor(features)
    if x.ndim != 2:
        raise InputError(f"features must be a 2-d array (n x d), got shape {tuple(x.shape)}")
    x = x.to(device=device, dtype=torch.float32)
    if normalize == "l2":
        norms = torch.linalg.vector_norm(x.double(), dim=1, keepdim=True)
        norms = torch.where(norms > 0, norms, torch.full_like(norms, float("nan")))
        x = x.double() / norms
    return x.to(dtype).contiguous()


def invalid_reason(x: torch.Tensor) -> str | None:
    """Why a model's features cannot give a similarity (NaN/inf or all samples equal), or None."""
    if not bool(torch.isfinite(x).all()):
        return "features contain NaN/inf (or a zero-norm sample under l2 normalisation)"
    if x.shape[0] > 1 and bool((x == x[:1]).all()):
        return "features are constant (every sample has the same feature vector)"
    return None
