"""Tensor decoding (`pysim-extract --decode gpu`): JPEG decoded by torchvision on the device,
the model's own preprocessing as tensor ops on the device.

The CPU path (`--decode cpu`, the default) decodes with PIL in the DataLoader workers and
applies the model's torchvision transform to the PIL image. The tensor path derives its ops
from that same transform object (`tensor_preprocess`): each step of the pipeline (Resize,
CenterCrop, ToTensor / PILToTensor + ToDtype, Normalize, convert-to-RGB) becomes the
equivalent `torchvision.transforms.v2.functional` op; a step that has no exact tensor
equivalent is an InputError naming it, never a silent difference.

Workers only read the encoded bytes of JPEG samples (by their magic bytes, not the file
extension); other formats (png, webp) are decoded to uint8 tensors with PIL in the worker and
join the same tensor path. On CUDA the batch's JPEGs are decoded with one batched
`torchvision.io.decode_jpeg(..., device="cuda")` call in the main process and preprocessed
there, images of equal size resized together; on the CPU the same code runs in the workers
(the DataLoader's collate function) with torchvision's CPU decoder. A JPEG the device decoder
refuses is retried alone, then decoded with PIL; one that PIL cannot decode either is skipped
as corrupt with PIL's reason, as on the CPU path.
"""

from __future__ import annotations

import io
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from pysim.data.wds import SplitReader
from pysim.errors import InputError

JPEG_MAGIC = b"\xff\xd8\xff"
# torchvision 0.29 deprecates its image codecs in favour of TorchCodec (a warning per call)
warnings.filterwarnings("ignore", message=r"The image decoding and encoding capabilities of "
                        r"TorchVision are deprecated", category=DeprecationWarning)


def is_jpeg(data: bytes) -> bool:
    """JPEG by content (SOI marker), whatever the member's extension says."""
    return data[:3] == JPEG_MAGIC


# --------------------------------------------------------------------------------------------
# the model's transform -> tensor ops
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One tensor op: resize, crop, float (uint8 -> [0, 1]) or normalize."""

    op: str
    size: tuple[int, ...] = ()
    interpolation: str = ""
    max_size: int | None = None
    antialias: bool = True
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def describe(self) -> str:
        if self.op == "resize":
            extra = f", max_size={self.max_size}" if self.max_size else ""
            return (f"resize({list(self.size)}, {self.interpolation}, "
                    f"antialias={self.antialias}{extra})")
        if self.op == "crop":
            return f"center_crop({list(self.size)})"
        if self.op == "normalize":
            return (f"normalize(mean={[round(v, 6) for v in self.mean]}, "
                    f"std={[round(v, 6) for v in self.std]})")
        return "to_float(/255)"


@dataclass(frozen=True)
class TensorPreprocess:
    """The tensor version of a model's transform: uint8 C x H x W images -> float N x C x h x w."""

    steps: tuple[Step, ...]

    def describe(self) -> list[str]:
        return [s.describe() for s in self.steps]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The steps on one batch of equally sized images (N x C x H x W, uint8)."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        for s in self.steps:
            if s.op == "resize":
                x = F.resize(x, list(s.size), interpolation=InterpolationMode(s.interpolation),
                             max_size=s.max_size, antialias=s.antialias)
            elif s.op == "crop":
                x = F.center_crop(x, list(s.size))
            elif s.op == "float":
                x = F.to_dtype(x, torch.float32, scale=True)
            else:
                x = F.normalize(x, list(s.mean), list(s.std))
        return x

    def __call__(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Preprocess a list of uint8 C x H x W images (any sizes) into one float batch."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for k, image in enumerate(images):
            groups.setdefault(tuple(image.shape), []).append(k)
        if len(groups) == 1:
            return self.apply(torch.stack(list(images)))
        out: torch.Tensor | None = None
        for ks in groups.values():
            y = self.apply(torch.stack([images[k] for k in ks]))
            if out is None:
                out = y.new_empty((len(images), *y.shape[1:]))
            elif y.shape[1:] != out.shape[1:]:
                raise InputError(f"the model's preprocessing gives images of different sizes "
                                 f"({tuple(out.shape[1:])} and {tuple(y.shape[1:])}): it has no "
                                 f"crop to a fixed size")
            out[torch.tensor(ks, device=y.device)] = y
        return out


_SHORT = {"torchvision.transforms.transforms": "torchvision.transforms",
          "torchvision.transforms.v2._geometry": "torchvision.transforms.v2",
          "torchvision.transforms.v2._misc": "torchvision.transforms.v2",
          "torchvision.transforms.v2._type_conversion": "torchvision.transforms.v2",
          "torchvision.transforms.v2._color": "torchvision.transforms.v2"}


# torchvision's ToTensor and the copies that skip tensors (a PIL image on the CPU path)
_TO_TENSOR = ("torchvision.transforms.ToTensor", "timm.data.transforms.MaybeToTensor",
              "open_clip.transform.MaybeToTensor")


def _name(t: Any) -> str:
    """Module-qualified name of a step's class (or of a plain function step)."""
    kind = t if isinstance(t, (type, types.FunctionType)) else type(t)
    module = getattr(kind, "__module__", "") or ""
    return f"{_SHORT.get(module, module)}.{kind.__qualname__}".lstrip(".")


def _step_name(t: Any) -> str:
    """How an untranslatable step is named in the error: its class (or function) and repr."""
    text = " ".join(repr(t).split())
    return _name(t) if text.startswith("<") else f"{_name(t)} = {text[:100]}"


def _size(size: Any) -> tuple[int, ...]:
    if isinstance(size, int):
        return (size,)
    return tuple(int(v) for v in size)


def _interp(mode: Any, pil: bool, step: Any) -> str:
    """The tensor interpolation equal to a Resize step's on a PIL image or on a tensor."""
    from torchvision.transforms import InterpolationMode

    if isinstance(mode, int):  # legacy PIL constants
        from torchvision.transforms.functional import _interpolation_modes_from_int

        mode = _interpolation_modes_from_int(mode)
    if isinstance(mode, str):
        mode = InterpolationMode(mode.lower())
    if mode in (InterpolationMode.BILINEAR, InterpolationMode.BICUBIC,
                InterpolationMode.NEAREST_EXACT):
        return mode.value
    if mode == InterpolationMode.NEAREST:
        # PIL's nearest samples pixel centres: torch's nearest-exact, not its legacy nearest
        return (InterpolationMode.NEAREST_EXACT if pil else mode).value
    raise _untranslatable(step, f"{getattr(mode, 'value', mode)} interpolation (translated: "
                                "bilinear, bicubic, nearest)")


def _untranslatable(step: Any, why: str = "") -> InputError:
    because = f": {why}" if why else ""
    return InputError(f"--decode gpu: the model's preprocessing step {_step_name(step)} has no "
                      f"tensor equivalent{because}; use --decode cpu")


class _Builder:
    """Walks a transform pipeline, tracking whether the image is still PIL (uint8)."""

    def __init__(self):
        self.steps: list[Step] = []
        self.pil = True        # before any to-tensor step the CPU path holds a PIL image
        self.is_float = False  # after ToTensor / ToDtype(scale) the values are in [0, 1]

    def to_float(self, step: Any) -> None:
        if self.is_float:
            raise _untranslatable(step, "the image is already a float tensor")
        self.steps.append(Step("float"))
        self.pil, self.is_float = False, True

    def to_uint8_tensor(self) -> None:
        self.pil = False

    def resize(self, step: Any, size: Any, interpolation: Any, max_size: Any,
               antialias: Any) -> None:
        if size is None:
            raise _untranslatable(step, "no target size")
        # PIL resampling always filters over the whole support: antialias on a PIL image
        aa = True if self.pil else bool(antialias) if antialias is not None else True
        self.steps.append(Step("resize", _size(size), _interp(interpolation, self.pil, step),
                               int(max_size) if max_size else None, aa))

    def crop(self, size: Any) -> None:
        size = _size(size)
        self.steps.append(Step("crop", size if len(size) == 2 else size * 2))

    def normalize(self, step: Any, mean: Any, std: Any) -> None:
        if not self.is_float:
            raise _untranslatable(step, "normalize before the image is a float tensor")
        self.steps.append(Step("normalize", mean=tuple(float(v) for v in mean),
                               std=tuple(float(v) for v in std)))

    def walk(self, t: Any) -> None:
        import torchvision.transforms as T1
        import torchvision.transforms.v2 as T2
        from torchvision.transforms._presets import ImageClassification

        if isinstance(t, (T1.Compose, T2.Compose)):
            for sub in t.transforms:
                self.walk(sub)
            return
        name = _name(t)
        if isinstance(t, ImageClassification) and type(t) is ImageClassification:
            self.resize(t, t.resize_size, t.interpolation, None, t.antialias)
            self.crop(t.crop_size)
            self.to_float(t)
            self.normalize(t, t.mean, t.std)
        elif type(t) in (T1.Resize, T2.Resize):
            self.resize(t, t.size, t.interpolation, t.max_size, t.antialias)
        elif type(t) in (T1.CenterCrop, T2.CenterCrop):
            self.crop(t.size)
        elif isinstance(t, T1.ToTensor) and name in _TO_TENSOR:
            self.to_float(t)
        elif type(t) in (T1.PILToTensor, T2.PILToTensor, T2.ToImage, T2.ToPureTensor) or \
                name == "timm.data.transforms.MaybePILToTensor":
            if self.is_float and type(t) is not T2.ToPureTensor:
                raise _untranslatable(t, "the image is already a float tensor")
            self.to_uint8_tensor()
        elif type(t) in (T1.ConvertImageDtype, T2.ConvertImageDtype) or type(t) is T2.ToDtype:
            dtype = t.dtype
            scale = getattr(t, "scale", True)
            if isinstance(dtype, dict) or dtype != torch.float32 or not scale:
                raise _untranslatable(t, "only a scaled conversion to float32 is translated")
            self.to_float(t)
        elif type(t) in (T1.Normalize, T2.Normalize):
            self.normalize(t, t.mean, t.std)
        elif name == "open_clip.transform.MaybeConvertMode" and t.mode == "RGB" or \
                name == "open_clip.transform._convert_to_rgb" or type(t) is T2.RGB:
            pass  # images are decoded to RGB (JPEG decoder mode RGB, PIL convert("RGB"))
        else:
            raise _untranslatable(t)


def tensor_preprocess(transform: Callable) -> TensorPreprocess:
    """The tensor version of a model's torchvision transform; InputError naming any step
    that cannot be translated exactly."""
    builder = _Builder()
    builder.walk(transform)
    if not builder.is_float:
        raise InputError("--decode gpu: the model's preprocessing never converts the image to a "
                         "float tensor (no ToTensor step); use --decode cpu")
    return TensorPreprocess(tuple(builder.steps))


# --------------------------------------------------------------------------------------------
# reading, decoding and batching
# --------------------------------------------------------------------------------------------

def pil_to_uint8(data: bytes) -> torch.Tensor:
    """Decode any image PIL reads, as the CPU path does (convert("RGB")), to uint8 3 x H x W."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        array = np.array(img.convert("RGB"), dtype=np.uint8, copy=True)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class EncodedSplitReader(SplitReader):
    """Item i -> (encoded JPEG bytes as a 1-d uint8 tensor, or any other image decoded with
    PIL to uint8 3 x H x W, label, i, reason or None)."""

    def __init__(self, index):
        super().__init__(index, None)

    def __getitem__(self, i: int):
        try:
            data = self.read_bytes(i)
            item = torch.frombuffer(bytearray(data), dtype=torch.uint8) if is_jpeg(data) \
                else pil_to_uint8(data)
        except Exception as exc:  # noqa: BLE001 - any decoder failure marks the sample corrupt
            return None, self.index.label[i], i, f"{type(exc).__name__}: {exc}"
        return item, self.index.label[i], i, None


@dataclass
class EncodedBatch:
    """A batch of the tensor path before decoding (1-d items: JPEG bytes; 3-d: uint8 images)."""

    items: list[torch.Tensor]
    positions: list[int]
    labels: list[int] = field(default_factory=list)


def _decode_one(data: torch.Tensor, device: str) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def decode_images(items: Sequence[torch.Tensor], device: str
                  ) -> list[torch.Tensor | str]:
    """uint8 3 x H x W images on `device` for encoded JPEGs (1-d) and decoded images (3-d);
    a reason string for an image that neither the device decoder nor PIL can decode."""
    from torchvision.io import ImageReadMode, decode_jpeg

    out: list[torch.Tensor | str] = [None] * len(items)  # type: ignore[list-item]
    jpegs = [k for k, item in enumerate(items) if item.ndim == 1]
    for k, item in enumerate(items):
        if item.ndim != 1:
            out[k] = item.to(device, non_blocking=True)
    if jpegs and device.startswith("cuda"):
        # torchvision allocates the outputs on the current stream but decodes on a stream of
        # its own without waiting: blocks freed with kernels still queued could be overwritten
        # (pytorch/vision PR 9606). The stream is idle here in extract_split (features left the
        # device); the sync makes it so for any caller.
        torch.cuda.current_stream(torch.device(device)).synchronize()
        try:  # one batched nvjpeg call for the batch
            decoded = decode_jpeg([items[k] for k in jpegs], mode=ImageReadMode.RGB,
                                  device=device)
            for k, image in zip(jpegs, decoded, strict=True):
                out[k] = image
            jpegs = []
        except torch.cuda.OutOfMemoryError:
            raise  # pysim-extract's exit 75: retried with a smaller batch
        except RuntimeError:
            pass  # one bad image fails the whole call: decode them one by one
    for k in jpegs:
        try:
            out[k] = _decode_one(items[k], device)
            continue
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError:
            pass
        try:  # the reference decoder: what it cannot read, the CPU path skips too
            image = pil_to_uint8(items[k].numpy().tobytes())
        except Exception as exc:  # noqa: BLE001 - any decoder failure marks the sample corrupt
            out[k] = f"{type(exc).__name__}: {exc}"
            continue
        out[k] = image.to(device)
    return out


def finish_batch(batch: EncodedBatch, pipeline: TensorPreprocess, device: str):
    """Decode and preprocess a batch on `device`: (images or None, labels, positions, bad)."""
    with torch.autocast(device_type=torch.device(device).type, enabled=False):
        decoded = decode_images(batch.items, device)
        keep = [k for k, d in enumerate(decoded) if not isinstance(d, str)]
        bad = [(batch.positions[k], d) for k, d in enumerate(decoded) if isinstance(d, str)]
        images = pipeline([decoded[k] for k in keep]) if keep else None
    labels = torch.tensor([batch.labels[k] for k in keep], dtype=torch.int64)
    positions = torch.tensor([batch.positions[k] for k in keep], dtype=torch.int64)
    return images, labels, positions, bad


class TensorCollate:
    """collate_fn of the tensor path: on the CPU decode + preprocess here (in the worker);
    on CUDA hand the encoded batch to the main process (`finish_batch` on the device)."""

    def __init__(self, pipeline: TensorPreprocess, device: str):
        self.pipeline = pipeline
        self.device = device

    def __call__(self, batch):
        good = [b for b in batch if b[0] is not None]
        bad = [(b[2], b[3]) for b in batch if b[0] is None]
        encoded = EncodedBatch([b[0] for b in good], [b[2] for b in good],
                               [b[1] for b in good])
        if self.device.startswith("cuda"):
            positions = torch.tensor(encoded.positions, dtype=torch.int64)
            return encoded, torch.tensor(encoded.labels, dtype=torch.int64), positions, bad
        images, labels, positions, more = finish_batch(encoded, self.pipeline, self.device)
        return images, labels, positions, bad + more
