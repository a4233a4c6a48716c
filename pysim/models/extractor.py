"""Features at named modules: forward hooks capture each module's output in one forward
pass, then tokens are selected or pooled (cls token / mean of patch tokens / spatial average)
and each result is flattened to n x d.

The hooks stop the forward pass once every module has run, so layers behind cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from pysim.config import is_pattern, module_matches
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


def expand_modules(model: torch.nn.Module, names: Sequence[str]) -> list[str]:
    """Module names with each pattern (`blocks.*`: per dotted part) replaced by the model's
    matching modules, in the model's order."""
    known = [n for n, _ in model.named_modules() if n]
    return expand_module_names(known, names, type(model).__name__)


def expand_module_names(known: Sequence[str], names: Sequence[str], owner: str) -> list[str]:
    """`names` with each pattern replaced by the matching names of `known` (in their order)."""
    out: list[str] = []
    for name in names:
        if not is_pattern(name):
            out.append(name)
            continue
        hits = [n for n in known if module_matches(n, name)]
        if not hits:
            raise InputError(f"module pattern '{name}' matches no module of {owner}")
        out.extend(hits)
    return list(dict.fromkeys(out))


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


def default_pooling(ndim: int, token_extraction: str | None) -> str | None:
    """Pooling of a module output by its shape: tokens cls (or the entry's token mode),
    spatial maps avg, n x d none."""
    if ndim == 3:
        return {"avg_pool": "mean", "cls_token+avg_pool": None}.get(token_extraction or "",
                                                                     "cls")
    return "avg" if ndim >= 4 else None


class FeatureExtractor:
    """Callable images -> n x d features taken at `module_name` of `model` (and, with
    `modules`, features at every listed module from the same forward pass)."""

    def __init__(self, model: torch.nn.Module, module_name: str,
                 forward: Callable[[torch.Tensor], Any] | None = None,
                 token_extraction: str | None = None, num_prefix_tokens: int = 1,
                 provenance: dict[str, Any] | None = None,
                 modules: Sequence[str] | None = None, pooling: str | None = None,
                 multi: bool = False):
        self.model = model
        self.module_names = list(modules or [module_name])
        self.module_name = self.module_names[0]
        self.module = find_module(model, self.module_name)
        self.forward = forward or model
        self.token_extraction = token_extraction
        self.num_prefix_tokens = num_prefix_tokens
        self.provenance = provenance or {}
        self.pooling = pooling
        self.multi = multi or len(self.module_names) > 1
        self.poolings: dict[str, str | None] = {}  # pooling used per module (after a batch)
        # applied to the primary module's n x d features (e.g. a gLocal alignment transform)
        self.feature_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._outputs: dict[str, Any] = {}
        self._active = False  # the hooks act only inside module_outputs(); plain forwards run
        for name in self.module_names:
            find_module(model, name).register_forward_hook(self._hook_of(name))

    def _hook_of(self, name: str):
        def hook(module, inputs, output):
            if self._active and name not in self._outputs:
                self._outputs[name] = output
                if len(self._outputs) == len(self.module_names):
                    raise _StopForward
        return hook

    def module_outputs(self, images: torch.Tensor) -> dict[str, Any]:
        """The raw output of every named module for a batch, from one forward pass."""
        self._outputs, self._active = {}, True
        try:
            self.forward(images)
        except _StopForward:
            pass
        finally:
            self._active = False
        missing = [n for n in self.module_names if n not in self._outputs]
        if missing:
            raise InputError(f"module '{missing[0]}' was not called in the forward pass")
        out, self._outputs = self._outputs, {}
        return out

    def module_output(self, images: torch.Tensor) -> Any:
        """The raw output of the (primary) named module for a batch."""
        return self.module_outputs(images)[self.module_name]

    def select(self, out: Any, name: str | None = None) -> torch.Tensor:
        """Token selection or pooling, then flattening, of a module output (tuple: first);
        then the feature transform, if any, for the primary module."""
        name = name or self.module_name
        feats = self._select(out, name)
        if self.feature_transform is not None and name == self.module_name:
            feats = self.feature_transform(feats)
        return feats

    def _select(self, out: Any, name: str) -> torch.Tensor:
        if isinstance(out, (tuple, list)):
            out = out[0]
        if hasattr(out, "pooler_output") and out.pooler_output is not None:
            out = out.pooler_output
        if self.pooling is None and not self.multi:
            return self._legacy(out, name)
        pooling = self.pooling or default_pooling(out.ndim, self.token_extraction)
        self.poolings[name] = pooling or self.token_extraction or "none"
        if pooling is None:
            return self._legacy(out, name)
        return _pool(out, pooling, self.num_prefix_tokens, name)

    def _legacy(self, out: torch.Tensor, name: str) -> torch.Tensor:
        mode = self.token_extraction
        if mode is not None and out.ndim != 2:  # n x d already: as thingsvision, nothing to pick
            if out.ndim != 3:
                raise InputError(f"token_extraction {mode!r} needs a token sequence at "
                                 f"'{name}', got shape {tuple(out.shape)}")
            parts = []
            if mode.startswith("cls_token"):
                parts.append(out[:, 0])
            if mode.endswith("avg_pool"):
                parts.append(out[:, self.num_prefix_tokens:].mean(dim=1))
            out = torch.cat(parts, dim=1)
        return out.reshape(out.shape[0], -1)

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """n x d features of every named module (list order) from one forward pass."""
        # clone: a token slice is a view that would keep the whole token tensor alive
        return {n: self.select(o, n).clone() for n, o in self.module_outputs(images).items()}

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.select(self.module_output(images)).clone()


def _pool(out: torch.Tensor, pooling: str, num_prefix_tokens: int, name: str) -> torch.Tensor:
    """cls: first token; mean: mean of the patch tokens; avg: mean over the spatial dims."""
    want = 3 if pooling in ("cls", "mean") else 4
    if out.ndim != want:
        raise InputError(f"pooling '{pooling}' needs a {want}-d output at '{name}', got shape "
                         f"{tuple(out.shape)}")
    if pooling == "cls":
        return out[:, 0]
    if pooling == "mean":
        return out[:, num_prefix_tokens:].mean(dim=1)
    return out.mean(dim=(2, 3))
