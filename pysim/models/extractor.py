"""Features at one named module: a forward hook captures the module's output, then tokens
are selected (cls token / average of patch tokens) and the result is flattened to n x d.

The hook stops the forward pass right after the module, so layers behind it cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pysim.errors import InputError

TOKEN_MODES = ("cls_token", "avg_pool", "cls_token+avg_pool")


class _StopForward(Exception):
    """Raised by the hook once the named module has produced its output."""


def find_module(model: torch.nn.Module, module_name: str) -> torch.nn.Module:
    """The submodule called `module_name` (dotted path as in named_modules())."""
    modules = dict(model.named_modules())
    if module_name not in modules:
        close = [n for n in modules if n.endswith(module_name.split(".")[-1])][:5]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise InputError(f"module '{module_name}' not found in {type(model).__name__}{hint}")
    return modules[module_name]


def token_mode(model_parameters: dict[str, Any]) -> str | None:
    """Token extraction asked for by an entry (seed keys token_extraction, extract_cls_token)."""
    mode = model_parameters.get("token_extraction")
    if mode is None and model_parameters.get("extract_cls_token"):
        mode = "cls_token"
    if mode in ("avg", "average", "mean"):
        mode = "avg_pool"
    if mode is not None and mode not in TOKEN_MODES:
        raise InputError(f"unknown token_extraction {mode!r} (known: {', '.join(TOKEN_MODES)})")
    return mode


class FeatureExtractor:
    """Callable images -> n x d features taken at `module_name` of `model`."""

    def __init__(self, model: torch.nn.Module, module_name: str,
                 forward: Callable[[torch.Tensor], Any] | None = None,
                 token_extraction: str | None = None, num_prefix_tokens: int = 1,
                 provenance: dict[str, Any] | None = None):
        self.model = model
        self.module_name = module_name
        self.module = find_module(model, module_name)
        self.forward = forward or model
        self.token_extraction = token_extraction
        self.num_prefix_tokens = num_prefix_tokens
        self.provenance = provenance or {}
        self._output = None
        self._active = False  # the hook acts only inside module_output(); plain forwards run
        self.module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if self._active:
            self._output = output
            raise _StopForward

    def module_output(self, images: torch.Tensor) -> Any:
        """The raw output of the named module for a batch (forward stops right after it)."""
        self._output, self._active = None, True
        try:
            self.forward(images)
        except _StopForward:
            pass
        finally:
            self._active = False
        if self._output is None:
            raise InputError(f"module '{self.module_name}' was not called in the forward pass")
        out, self._output = self._output, None
        return out

    def select(self, out: Any) -> torch.Tensor:
        """Token selection and flattening of a module output (tuple outputs: first element)."""
        if isinstance(out, (tuple, list)):
            out = out[0]
        if hasattr(out, "pooler_output") and out.pooler_output is not None:
            out = out.pooler_output
        mode = self.token_extraction
        if mode is not None:
            if out.ndim != 3:
                raise InputError(f"token_extraction {mode!r} needs a token sequence at "
                                 f"'{self.module_name}', got shape {tuple(out.shape)}")
            parts = []
            if mode.startswith("cls_token"):
                parts.append(out[:, 0])
            if mode.endswith("avg_pool"):
                parts.append(out[:, self.num_prefix_tokens:].mean(dim=1))
            out = torch.cat(parts, dim=1)
        return out.reshape(out.shape[0], -1)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        # clone: a token slice is a view that would keep the whole token tensor alive
        return self.select(self.module_output(images)).clone()
