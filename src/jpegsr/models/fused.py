"""An inference-only copy of an s-LWSR-family model with its elementwise work folded away.

The trained modules stay as they are (they are what training and the weights files use);
:func:`fuse_for_inference` returns a copy for inference in one dtype (float32 or bfloat16)
that computes the same function with fewer passes over memory:

* each EDSR residual block runs as two oneDNN convolutions with fused post-ops, conv + ReLU
  then conv + the block's input (``torch.ops.mkldnn._convolution_pointwise``), instead of
  four kernels (conv, ReLU, conv, add);
* the second half's ``0.5 * mirror + 0.5 * pool`` loses its two multiplications: the 0.5 is
  folded into the fusion 1x1 convolution's weights for that half of its input;
* the output mean shift is folded into the bias of the last convolution.

Where oneDNN is not available (a build without it, or a non-CPU device) the same folded
weights run through plain PyTorch ops, so the copy is always correct, only not always faster.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from jpegsr.models.blocks import MeanShift, ResBlock
from jpegsr.models.slwsr import SLWSR, FusionGroup


def onednn_fusion_available(device: torch.device) -> bool:
    """Whether oneDNN's fused convolutions can run on ``device`` in this PyTorch build."""
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


def _conv_args(conv: nn.Conv2d) -> tuple[list[int], list[int], list[int], int]:
    pad = conv.padding
    if isinstance(pad, str):
        raise ValueError("fused convolutions need numeric padding")
    return list(pad), list(conv.stride), list(conv.dilation), conv.groups


class FusedResBlock(nn.Module):
    """``x + conv2(relu(conv1(x)))`` as two convolutions with fused post-ops."""

    def __init__(self, block: ResBlock) -> None:
        super().__init__()
        self.conv1, self.conv2 = block.body[0], block.body[2]
        self.onednn = True  # set by fuse_for_inference for the target device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2 = self.conv1, self.conv2
        if not (self.onednn and x.device.type == "cpu"):
            return x + c2(F.relu(c1(x)))
        ops = torch.ops.mkldnn
        h = ops._convolution_pointwise(x, c1.weight, c1.bias, *_conv_args(c1), "relu", [None], "")
        return ops._convolution_pointwise(
            h, x, c2.weight, c2.bias, *_conv_args(c2), "add", None, None, [None], ""
        )


class FusedFusionGroup(nn.Module):
    """:class:`FusionGroup` with the 0.5 of ``0.5 * (mirror + pool)`` in its 1x1 weights."""

    def __init__(self, group: FusionGroup) -> None:
        super().__init__()
        self.fuse = group.fuse
        self.blocks = group.blocks
        n = self.fuse.in_channels // 2
        with torch.no_grad():
            self.fuse.weight[:, n:] *= 0.5

    def forward(self, prev: torch.Tensor, mirror: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.fuse(torch.cat([prev, mirror + pool], dim=1)))


def _fold_output_mean(model: SLWSR) -> None:
    """Move SLWSR's output mean shift into the bias of the conv right before it."""
    last = model.tail[-1]
    if not (isinstance(last, nn.Conv2d) and last.bias is not None):
        return
    with torch.no_grad():
        last.bias += model.add_mean.mean.view(-1).to(last.bias.dtype)
    model.add_mean = nn.Identity()  # type: ignore[assignment]


def _replace(parent: nn.Module, onednn: bool) -> int:
    """Swap fusable children of ``parent`` (recursively) for their fused forms; their count."""
    count = 0
    for name, child in list(parent.named_children()):
        if isinstance(child, ResBlock):
            fused = FusedResBlock(child)
            fused.onednn = onednn
            setattr(parent, name, fused)
            count += 1
            continue
        if isinstance(child, FusionGroup):
            child = FusedFusionGroup(child)
            setattr(parent, name, child)
            count += 1
        if isinstance(child, SLWSR) and isinstance(child.add_mean, MeanShift):
            _fold_output_mean(child)
            count += 1
        count += _replace(child, onednn)
    return count


def fuse_for_inference(
    module: nn.Module, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> nn.Module | None:
    """A fused inference copy of ``module`` with its parameters in ``dtype``, channels-last;
    ``None`` when the module has nothing to fuse (run it as it is)."""
    if not any(isinstance(m, (ResBlock, FusionGroup, SLWSR)) for m in module.modules()):
        return None
    device = device or next(module.parameters()).device
    fused = copy.deepcopy(module).float()
    if isinstance(fused, SLWSR) and isinstance(fused.add_mean, MeanShift):
        _fold_output_mean(fused)
        n = 1 + _replace(fused, onednn_fusion_available(device))
    else:
        n = _replace(fused, onednn_fusion_available(device))
    if n == 0:
        return None
    fused.to(device=device, dtype=dtype, memory_format=torch.channels_last).eval()
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused
