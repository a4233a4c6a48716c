"""Map a model-table entry to a loader and a weight source without downloading anything.

A Resolution says which code builds the model (timm, torchvision, open_clip, a converted
self-supervised ResNet-50, torch.hub, transformers), under which resolved name and pretrained
tag, and where its weights come from (a local file, a hub/URL cache entry, or seeded random
init). `cache_candidates` lists the local files that would satisfy an offline run, `cache_dir`
the cache folder they are looked for in (pysim.models.caches: one variable moves each cache).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from pysim.config import ModelEntry, is_pattern, representation_id
from pysim.errors import InputError
from pysim.models.alignment import AlignmentSource, resolve_alignment
from pysim.models.caches import hf_hub_cache, open_clip_cache_dir
from pysim.models.ssl_table import (
    SSL_IMPLS,
    SSL_MODELS,
    STUDY_IMPL,
    STUDY_TRANSFORM_TEXT,
    TIMM_IMPL,
    XCIT_REPO,
)
from pysim.registry import MODEL_SOURCES, load

RANDOM_SEED = 0
ALIGN_REPO = "kakaobrain/align-base"
# what `pysim-validate --resolve` says of a loader's preprocessing (the exact pipeline: features)
LOADER_TRANSFORMS = {
    "timm": "timm's data config of the model (resolve_data_config + create_transform)",
    "torchvision": "the weights' transforms() (ImageClassification preset)",
    "open_clip": "open_clip's preprocess of the model",
    "resnet50": "Resize(256) CenterCrop(224) ImageNet mean/std (torchvision v2, tensor resize)",
    "hub": "Resize(256) CenterCrop(224) ImageNet mean/std (torchvision v2, tensor resize)",
    "transformers": "Resize(289) CenterCrop(289) mean/std 0.5 (torchvision v2, tensor resize)",
}


@dataclass
class Resolution:
    """How one model is built and where its weights come from."""

    model_id: str
    loader: str                    # timm | torchvision | open_clip | resnet50 | hub | transformers
    name: str                      # resolved architecture / model name
    tag: str | None = None         # pretrained tag (timm tag, open_clip tag, torchvision enum)
    weight_source: str = ""        # file:<path> | hf-hub:<repo>[/<file>] | url:<url> | random...
    weights_file: str | None = None
    cache_candidates: list[Path] = field(default_factory=list)
    cache_dir: Path | None = None  # the cache folder the candidates are looked for in
    extra: dict = field(default_factory=dict)
    architecture: str = ""         # the code that builds the architecture ("" : the loader's)
    transform: str = ""            # the preprocessing it gets ("" : the loader's own)
    needs: list[Path] = field(default_factory=list)  # further local paths an offline run needs
    alignment: AlignmentSource | None = None  # the entry's feature alignment (gLocal transform)

    @property
    def architecture_source(self) -> str:
        return self.architecture or f"{self.loader} {self.name}"

    @property
    def transform_source(self) -> str:
        return self.transform or LOADER_TRANSFORMS.get(self.loader, f"{self.loader}'s own")

    @property
    def pretrained(self) -> bool:
        return not self.weight_source.startswith("random")

    def cached(self) -> bool:
        """Whether the weights are available without network (local file or filled cache)."""
        if not all(Path(p).exists() for p in self.needs):
            return False
        if not self.pretrained:
            return True
        if self.weights_file is not None:
            return Path(self.weights_file).is_file()
        return any(Path(p).exists() for p in self.cache_candidates)


def weights_path(entry: ModelEntry, base_dir: str | os.PathLike | None) -> str | None:
    """The entry's `weights` as an absolute path (relative paths: against the table's dir)."""
    if entry.weights is None:
        return None
    path = Path(entry.weights).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return str(path.resolve())


def _torch_cache(url: str) -> Path:
    """The torch hub checkpoint file of a URL (TORCH_HOME/hub/checkpoints/<basename>)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])


def _from_torch_cache(res: Resolution, url: str, filename: str | None = None) -> Resolution:
    path = _torch_cache(url)
    res.weight_source = f"url:{url}"
    res.cache_candidates = [path.parent / filename if filename else path]
    res.cache_dir = path.parent
    return res


def _from_hf_cache(res: Resolution, hub_id: str, repo_id: str,
                   filenames: tuple[str, ...]) -> Resolution:
    """Weights from the HF hub cache (HF_HOME/hub): the first of `filenames` found, if any."""
    from huggingface_hub import try_to_load_from_cache

    cache = hf_hub_cache()
    found = []
    for name in filenames:
        hit = try_to_load_from_cache(repo_id, name, cache_dir=cache)
        if isinstance(hit, str):
            found.append(Path(hit))
    res.weight_source = f"hf-hub:{hub_id}"
    res.cache_candidates = found or [Path(f"<hf-cache>/{repo_id}/{filenames[0]}")]
    res.cache_dir = cache
    return res


def _weights_or(res: Resolution, entry: ModelEntry, wfile: str | None) -> Resolution | None:
    """Fill the weight source for a local file or random init; None if hub weights apply."""
    if wfile is not None:
        if not Path(wfile).is_file():
            raise InputError(f"weights file {wfile} not found")
        res.weights_file, res.weight_source = wfile, f"file:{wfile}"
        return res
    if not entry.pretrained:
        res.weight_source = f"random (seed {RANDOM_SEED})"
        res.tag = None
        return res
    return None


def _resolve_timm_name(entry: ModelEntry, name: str, wfile: str | None) -> Resolution:
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag

    arch, _ = split_model_name_tag(name)
    if not timm.is_model(arch):
        raise InputError(f"timm has no architecture '{arch}' (timm {timm.__version__})")
    try:
        cfg = get_pretrained_cfg(name, allow_unregistered=True)
    except RuntimeError as exc:
        raise InputError(f"timm: {exc}") from None
    tag = cfg.tag if cfg is not None else None
    res = Resolution(entry.model_id, "timm", f"{arch}.{tag}" if tag else arch, tag)
    if _weights_or(res, entry, wfile):
        return res
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise InputError(f"timm '{name}' has no pretrained weights (set \"pretrained\": false "
                         "or give \"weights\")")
    if cfg.hf_hub_id:
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else \
            ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
             "open_clip_pytorch_model.bin")
        return _from_hf_cache(res, cfg.hf_hub_id, cfg.hf_hub_id, files)
    return _from_torch_cache(res, cfg.url)


def resolve_timm(entry: ModelEntry, wfile: str | None) -> Resolution:
    """A timm entry: model_name is the architecture (and optional .tag)."""
    return _resolve_timm_name(entry, entry.model_name, wfile)


def resolve_torchvision(entry: ModelEntry, wfile: str | None) -> Resolution:
    import torchvision.models as tvm

    name = entry.model_name
    if name not in tvm.list_models():
        raise InputError(f"torchvision has no model '{name}'")
    tag = entry.model_parameters.get("weights", "DEFAULT")
    enum = None
    try:
        enum = tvm.get_model_weights(name)[tag] if tag else None
    except (KeyError, ValueError):
        raise InputError(f"torchvision '{name}' has no weights '{tag}'") from None
    res = Resolution(entry.model_id, "torchvision", name,
                     str(enum).split(".")[-1] if enum else None)
    res.extra["weights_enum"] = str(enum) if enum else None
    res.extra["transforms_of"] = res.tag  # the weights' preprocessing, even for random init
    if _weights_or(res, entry, wfile):
        return res
    if enum is None:
        raise InputError(f"torchvision '{name}': no weights given (model_parameters.weights)")
    return _from_torch_cache(res, enum.url)


def resolve_open_clip(entry: ModelEntry, wfile: str | None) -> Resolution:
    import open_clip

    params = entry.model_parameters
    variant = params.get("variant") or entry.model_name
    tag = params.get("dataset") or params.get("pretrained")
    if variant not in open_clip.list_models():
        raise InputError(f"open_clip has no model '{variant}' (open_clip {open_clip.__version__})")
    res = Resolution(entry.model_id, "open_clip", variant, tag)
    if _weights_or(res, entry, wfile):
        return res
    cfg = open_clip.get_pretrained_cfg(variant, tag) if tag else {}
    if not cfg:
        raise InputError(f"open_clip '{variant}' has no pretrained tag {tag!r} "
                         f"(known: {', '.join(open_clip.list_pretrained_tags_by_model(variant))})")
    if cfg.get("hf_hub"):  # open_clip prefers the HF hub when a tag has both
        repo, filename = os.path.split(cfg["hf_hub"])  # "org/name/" -> no filename
        files = (filename,) if filename else ("open_clip_model.safetensors",
                                              "open_clip_pytorch_model.bin")
        return _from_hf_cache(res, cfg["hf_hub"], repo, files)
    cache = open_clip_cache_dir()  # passed to open_clip by the loader: the same folder
    res.weight_source = f"url:{cfg['url']}"
    res.cache_candidates = [cache / os.path.basename(cfg["url"])]
    res.cache_dir = cache
    return res


def _resolve_hub(entry: ModelEntry, repo: str, model: str, wfile: str | None) -> Resolution:
    import torch.hub

    res = Resolution(entry.model_id, "hub", model, None, extra={"repo": repo})
    if _weights_or(res, entry, wfile):
        return res
    owner_name, _, ref = repo.partition(":")
    res.weight_source = f"torch.hub:{repo}:{model}"
    res.cache_dir = Path(torch.hub.get_dir())
    res.cache_candidates = [res.cache_dir / f"{owner_name.replace('/', '_')}_{ref or 'main'}"]
    return res


def resolve_ssl(entry: ModelEntry, wfile: str | None) -> Resolution:
    """A self-supervised id of the study: thingsvision 2.6.10's SSLExtractor models (its
    checkpoints, architectures and one transform), or with model_parameters.ssl_impl "timm"
    pysim's timm variant of a ViT (timm weights and timm's transform; not the study's)."""
    spec = SSL_MODELS.get(entry.model_name)
    if spec is None:
        raise InputError(f"unknown self-supervised model '{entry.model_name}' "
                         f"(known: {', '.join(SSL_MODELS)})")
    impl = entry.model_parameters.get("ssl_impl", STUDY_IMPL)
    if impl not in SSL_IMPLS:
        raise InputError(f"model_parameters.ssl_impl must be one of {', '.join(SSL_IMPLS)}, "
                         f"got {impl!r}")
    if impl == TIMM_IMPL:
        if not spec.timm:
            raise InputError(f"ssl_impl 'timm': no timm equivalent of '{entry.model_name}'")
        res = _resolve_timm_name(entry, spec.timm, wfile)
        if spec.kind == "dinov2_hub":  # the study fed DINOv2 224-px inputs, as its hub models do
            res.extra["default_kwargs"] = {"img_size": 224}
        res.architecture = f"timm {res.name} (ssl_impl timm: pysim's variant, not the study's)"
        return res
    study = STUDY_TRANSFORM_TEXT
    if spec.kind in ("dino_vit", "mae_vit"):
        ref = "facebookresearch/dino vision_transformer.py" if spec.kind == "dino_vit" else \
            "facebookresearch/mae models_vit.py"
        res = Resolution(entry.model_id, "ssl_vit", entry.model_name, None,
                         extra={"kind": spec.kind, "vit": spec.vit_kwargs, "url": spec.url},
                         architecture=f"pysim ReferenceViT on timm VisionTransformer = {ref} "
                                      "(as thingsvision 2.6.10)", transform=study)
        if _weights_or(res, entry, wfile):
            return res
        return _from_torch_cache(res, spec.url)
    if spec.kind == "dinov2_hub":
        res = Resolution(entry.model_id, "ssl_hub", spec.entry, None,
                         extra={"repo": spec.repo, "url": spec.url},
                         architecture=f"torch.hub {spec.repo} {spec.entry} (as thingsvision "
                                      "2.6.10)", transform=study)
        res.needs = [hub_repo_dir(spec.repo)]
        if _weights_or(res, entry, wfile):
            return res
        res = _from_torch_cache(res, spec.url)
        res.weight_source = f"torch.hub:{spec.repo}:{spec.entry} ({spec.url})"
        res.cache_dir = res.needs[0].parent
        return res
    if spec.kind == "hub":
        res = _resolve_hub(entry, spec.repo, spec.entry, wfile)
        res.architecture = f"torch.hub {spec.repo} {spec.entry} (as thingsvision 2.6.10)"
        res.transform, res.extra["study_transform"] = study, True
        res.extra["also_runs"] = [XCIT_REPO]  # dino's XCiT entries torch.hub-load xcit
        if res.pretrained and not res.weights_file:  # the entry also loads these two
            res.needs = [hub_repo_dir(XCIT_REPO), _torch_cache(spec.url)]
        return res
    res = Resolution(entry.model_id, "resnet50", "torchvision resnet50 (fc removed)",
                     entry.model_name, extra={"url": spec.url, "study_transform": True},
                     architecture="torchvision resnet50, fc removed (as thingsvision 2.6.10)",
                     transform=study)
    if _weights_or(res, entry, wfile):
        return res
    return _from_torch_cache(res, spec.url, f"{entry.model_name}.pth")  # the converted file


HUB_LOADERS = ("hub", "ssl_hub")  # loaders that run a torch.hub repo's own code


def hub_repo_dir(repo: str) -> Path:
    """torch.hub's cache folder of `owner/name:ref` (<TORCH_HOME>/hub/owner_name_ref)."""
    import torch.hub

    owner_name, _, ref = repo.partition(":")
    return Path(torch.hub.get_dir()) / f"{owner_name.replace('/', '_')}_{ref or 'main'}"


def _resolve_align(entry: ModelEntry, wfile: str | None) -> Resolution:
    if importlib.util.find_spec("transformers") is None:
        raise InputError("Kakaobrain ALIGN needs transformers, a dependency of pysim that is "
                         "not installed here (reinstall pysim, e.g. make setup)")
    res = Resolution(entry.model_id, "transformers", f"AlignModel {ALIGN_REPO}", None)
    if _weights_or(res, entry, wfile):
        return res
    return _from_hf_cache(res, ALIGN_REPO, ALIGN_REPO, ("model.safetensors", "pytorch_model.bin"))


def resolve_custom(entry: ModelEntry, wfile: str | None) -> Resolution:
    """The study's `custom` entries: OpenCLIP_<variant>_<tag>, Kakaobrain ALIGN, DreamSim."""
    if entry.model_name == "OpenCLIP":
        return resolve_open_clip(entry, wfile)
    if entry.model_name == "Kakaobrain_Align":
        return _resolve_align(entry, wfile)
    if entry.model_name == "DreamSim":
        from pysim.models.dreamsim import resolve_dreamsim

        return resolve_dreamsim(entry, wfile)
    raise InputError(f"no loader for source 'custom' and model_name '{entry.model_name}'")


def resolve_hub(entry: ModelEntry, wfile: str | None) -> Resolution:
    """A torch.hub entry: model_parameters.repo ('owner/name:ref') and model_name."""
    repo = entry.model_parameters.get("repo")
    if not repo:
        raise InputError("source 'hub' needs model_parameters.repo ('owner/name:ref')")
    return _resolve_hub(entry, repo, entry.model_name, wfile)


def resolve(entry: ModelEntry, base_dir: str | os.PathLike | None = None) -> Resolution:
    """Resolve one entry with its source's registered resolver (pysim.registry.MODEL_SOURCES);
    raises InputError naming the model and the reason if it cannot."""
    wfile = weights_path(entry, base_dir)
    try:
        if entry.source not in MODEL_SOURCES:
            raise InputError(f"no loader for source '{entry.source}' and model_name "
                             f"'{entry.model_name}'")
        res = load(MODEL_SOURCES, entry.source)(entry, wfile)
        res.alignment = resolve_alignment(entry)
        return res
    except InputError as exc:
        raise InputError(f"model '{entry.model_id}': {exc}") from None


def architecture_modules(entry: ModelEntry) -> tuple[list[str], str]:
    """Every module name of the entry's architecture and its class name, built without weights:
    on the meta device (no memory, no init cost) where the source allows, else seeded on the CPU."""
    import torch

    from pysim.registry import MODEL_LOADERS

    arch = replace(entry, pretrained=False, weights=None)
    res = resolve(arch)
    if res.loader in HUB_LOADERS:  # building it would run the repo's hubconf.py
        raise InputError(f"the architecture of torch.hub entry '{res.name}' is not built "
                         "here: validation never runs a hub repo's code")
    build = load(MODEL_LOADERS, res.loader)
    try:
        with torch.device("meta"):
            model = build(arch, res)[0]
    except Exception:  # noqa: BLE001 - a source that moves tensors to the CPU while building
        model = build(arch, res)[0]
    return [n for n, _ in model.named_modules() if n], type(model).__name__


def representation_ids(entry: ModelEntry) -> list[str] | None:
    """A layer-wise entry's representation ids (primary first), patterns expanded against the
    architecture's own modules, as extraction will expand them (InputError: none match); None
    when a pattern cannot be expanded here (the architecture cannot be built, e.g. a torch.hub
    repository not cached)."""
    from pysim.models.extractor import expand_module_names

    modules = list(entry.modules)
    if any(is_pattern(m) for m in modules):
        try:
            known, owner = architecture_modules(entry)
        except Exception:  # noqa: BLE001 - e.g. a torch.hub repo not cached here
            return None
        modules = expand_module_names(known, modules, owner)
    return [representation_id(entry.model_id, m, k == 0) for k, m in enumerate(modules)]


def representations(entry: ModelEntry) -> str:
    """representation_ids as one report line (or why a pattern was not expanded)."""
    ids = representation_ids(entry)
    if ids is None:
        try:
            architecture_modules(entry)
        except Exception as exc:  # noqa: BLE001 - the reason, for the report
            return (f"module_name {list(entry.modules)} not expanded: cannot build the "
                    f"architecture here ({type(exc).__name__}: {str(exc).strip()[:200]})")
    return ", ".join(ids or [])


def _resolve_all(models: dict[str, ModelEntry], base_dir: str | os.PathLike | None
                 ) -> tuple[list[str], dict[str, Resolution], dict[str, str]]:
    """Report lines, the resolutions, and the reason of each model that cannot be resolved."""
    lines, resolved, failed = [], {}, {}
    for model_id, entry in models.items():
        try:
            res = resolve(entry, base_dir)
        except InputError as exc:
            failed[model_id] = str(exc).split(": ", 1)[-1]
            lines.append(f"  {model_id} -> UNRESOLVED: {failed[model_id]}")
            continue
        resolved[model_id] = res
        state = "no download" if not res.pretrained else "local file" if res.weights_file \
            else ("cached" if res.cached() else "not cached")
        tag = f" [{res.tag}]" if res.tag else ""
        lines.append(f"  {model_id} -> {res.loader} {res.name}{tag}; weights {res.weight_source}"
                     f" ({state}); architecture {res.architecture_source}; transform "
                     f"{res.transform_source}")
        if res.alignment is not None:
            lines.append(f"    alignment: {res.alignment.describe()}")
        if entry.multi:
            try:
                lines.append(f"    representations: {representations(entry)}")
            except InputError as exc:
                failed[model_id] = str(exc)
                lines.append(f"    representations: UNRESOLVED: {exc}")
    header = f"resolve: {len(models) - len(failed)}/{len(models)} models"
    return [header, *lines], resolved, failed


def resolve_report(models: dict[str, ModelEntry],
                   base_dir: str | os.PathLike | None = None) -> str:
    """One line per model: id -> loader, name, tag, weight source (cached or not); no download.

    Raises InputError with a one-line summary if any model cannot be resolved.
    """
    lines, _, failed = _resolve_all(models, base_dir)
    report = "\n".join(lines)
    if failed:
        import sys

        print(report, file=sys.stderr)
        raise InputError(f"{len(failed)} of {len(models)} models cannot be resolved: "
                         f"{', '.join(failed)}")
    return report


def check_weights(models: dict[str, ModelEntry],
                  base_dir: str | os.PathLike | None = None) -> str:
    """resolve_report, and every pretrained model's weights must be local (offline, no download).

    Raises one InputError line naming every model whose weights are missing, with where they
    were looked for, and every model that cannot be resolved.
    """
    lines, resolved, failed = _resolve_all(models, base_dir)
    missing = []
    for model_id in models:
        wfile = weights_path(models[model_id], base_dir)
        if wfile is not None and not Path(wfile).is_file():  # missing, not unresolvable
            failed.pop(model_id, None)
            missing.append(f"{model_id} (file:{wfile}: not found)")
        elif model_id in resolved and not resolved[model_id].cached():
            res = resolved[model_id]
            missing.append(f"{model_id} ({res.weight_source}: not in {res.cache_dir})")
        if model_id in resolved and resolved[model_id].alignment is not None \
                and not resolved[model_id].alignment.cached():
            src = resolved[model_id].alignment
            missing.append(f"{model_id} ({src.kind} transform {src.url}: not at {src.path})")
    n = len(models)
    problems = []
    if missing:
        problems.append(f"weights missing for {len(missing)} of {n} models (offline): "
                        f"{', '.join(missing)}")
    if failed:
        problems.append(f"{len(failed)} of {n} models cannot be resolved: "
                        + ", ".join(f"{m} ({why})" for m, why in failed.items()))
    if problems:
        raise InputError("; ".join(problems))
    pretrained = sum(res.pretrained for res in resolved.values())
    return "\n".join([*lines, f"weights: all {pretrained} pretrained models available offline"])
