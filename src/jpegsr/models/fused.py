"""An inference-only copy of an s-LWSR-family model with its elementwise work folded away.

The trained modules stay as they are (they are what training and the weights files use);
:func:`fuse_for_inference` returns a copy for inference in one dtype (float32 or bfloat16)
that computes the same function with fewer passes over memory:

* each EDSR residual block runs as two oneDNN convolutions with fused post-ops, conv + ReLU
  then conv + the block's input (``torch.ops.mkldnn._convolution_pointwise``), instead of
  four kernels (conv, ReLU, conv, add);
* the 1x1 convolutions over a concatenation (the information pool, the second half's fusion)
  run one convolution per part, each adding onto the last in its post-op, so the
  concatenation is never built; the fusion's ``0.5 * mirror + 0.5 * pool`` becomes two parts
  with the 0.5 folded into their weights;
* the output mean shift is folded into the bias of the last convolution, and that
  convolution moves before the last pixel shuffle (:func:`shuffle_then_conv`): it runs on the
  coarse grid and the shuffle moves 3 channels instead of 32.

Where oneDNN is not available (a build without it, or a non-CPU device) the same folded
weights run through plain PyTorch ops, so the copy is always correct, only not always faster.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from jpegsr.models.blocks import ConcatConv1x1, MeanShift, ResBlock
from jpegsr.models.slwsr import SLWSR, Body, FusionGroup


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


class SplitConv1x1(nn.Module):
    """:class:`ConcatConv1x1` without the concatenation: one 1x1 convolution per part, each
    adding onto the last in its post-op (``conv(p0, W0) + b + conv(p1, W1) + ...``)."""

    def __init__(self, weights: list[torch.Tensor], bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weights = nn.ParameterList(nn.Parameter(w.detach().clone()) for w in weights)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.onednn = True  # set by fuse_for_inference for the target device

    @classmethod
    def of(cls, conv: ConcatConv1x1, n_parts: int) -> SplitConv1x1:
        """For ``n_parts`` parts of equal width."""
        return cls(list(torch.split(conv.weight, conv.in_channels // n_parts, dim=1)), conv.bias)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        ws = list(self.weights)
        out = F.conv2d(parts[0], ws[0], self.bias)
        for part, w in zip(parts[1:], ws[1:], strict=True):
            if self.onednn and part.device.type == "cpu":
                out = torch.ops.mkldnn._convolution_pointwise(
                    part, out, w, None, [0, 0], [1, 1], [1, 1], 1, "add", None, None, [None], ""
                )
            else:
                out = out + F.conv2d(part, w)
        return out


class FusedFusionGroup(nn.Module):
    """:class:`FusionGroup` on ``(prev, mirror, pool)`` with neither the concatenation nor the
    ``0.5 * mirror + 0.5 * pool``: the 0.5 sits in the 1x1 weights of both halves."""

    def __init__(self, group: FusionGroup) -> None:
        super().__init__()
        w_prev, w_side = torch.split(group.fuse.weight, group.fuse.in_channels // 2, dim=1)
        self.fuse = SplitConv1x1([w_prev, 0.5 * w_side, 0.5 * w_side], group.fuse.bias)
        self.blocks = group.blocks

    def forward(self, prev: torch.Tensor, mirror: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.fuse([prev, mirror, pool]))


def _fold_output_mean(model: SLWSR) -> None:
    """Move SLWSR's output mean shift into the bias of the conv right before it."""
    last = model.tail[-1]
    if not (isinstance(last, nn.Conv2d) and last.bias is not None):
        return
    with torch.no_grad():
        last.bias += model.add_mean.mean.view(-1).to(last.bias.dtype)
    model.add_mean = nn.Identity()  # type: ignore[assignment]


def shuffle_then_conv(conv: nn.Conv2d, r: int) -> nn.Conv2d:
    """The 3x3 convolution on the coarse grid that, followed by ``PixelShuffle(r)``, equals
    ``PixelShuffle(r)`` followed by ``conv`` (3x3, zero padding 1): each fine output pixel
    reads fine neighbours that sit in the coarse pixel or its 8 neighbours, so the fine
    kernel's taps move to (coarse offset, sub-pixel channel). Zero padding matches too: a fine
    pixel outside the image is a sub-pixel of a coarse pixel outside it."""
    if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1):
        raise ValueError("only a 3x3 convolution with padding 1 and stride 1 folds")
    o, c = conv.out_channels, conv.in_channels
    w = conv.weight.detach()
    k = torch.zeros(o, r, r, c, r, r, 3, 3, dtype=w.dtype)  # o, a, b | c, i, j | ky, kx
    for a in range(r):
        for dy in range(3):
            i, ky = (a + dy - 1) % r, (a + dy - 1) // r + 1
            for b in range(r):
                for dx in range(3):
                    j, kx = (b + dx - 1) % r, (b + dx - 1) // r + 1
                    k[:, a, b, :, i, j, ky, kx] += w[:, :, dy, dx]
    folded = nn.Conv2d(c * r * r, o * r * r, 3, padding=1, bias=conv.bias is not None)
    with torch.no_grad():
        folded.weight.copy_(k.reshape(o * r * r, c * r * r, 3, 3))
        if conv.bias is not None:
            folded.bias.copy_(conv.bias.detach().repeat_interleave(r * r))
    return folded


def _fold_last_shuffle(model: SLWSR) -> None:
    """Turn SLWSR's tail ``..., PixelShuffle(r), conv3x3`` into ``..., conv3x3', PixelShuffle(r)``:
    the last convolution then runs on the coarse grid (more channels, fewer pixels: fast on
    matrix units) and the large shuffle of its input becomes a small shuffle of its output."""
    up, last = model.tail[0], model.tail[-1]
    if not (len(model.tail) == 2 and isinstance(up, nn.Sequential)
            and isinstance(up[-1], nn.PixelShuffle) and isinstance(last, nn.Conv2d)):  # fmt: skip
        return
    r = up[-1].upscale_factor
    model.tail = nn.Sequential(*list(up)[:-1], shuffle_then_conv(last, r), nn.PixelShuffle(r))


def _fused(module: nn.Module) -> tuple[nn.Module, int]:
    """``module`` with its fusable parts (itself included) swapped for their fused forms, and
    how many it swapped. Changes the module it is given: call it on a copy."""
    if isinstance(module, ResBlock):
        return FusedResBlock(module), 1
    count = 0
    if isinstance(module, FusionGroup):
        module, count = FusedFusionGroup(module), 1
    elif isinstance(module, Body) and isinstance(module.pool, ConcatConv1x1):
        module.pool = SplitConv1x1.of(module.pool, module.pool.in_channels // module.n_feats)
        count = 1
    elif isinstance(module, SLWSR) and isinstance(module.add_mean, MeanShift):
        _fold_output_mean(module)
        _fold_last_shuffle(module)
        count = 1
    for name, child in list(module.named_children()):
        new, n = _fused(child)
        if new is not child:
            setattr(module, name, new)
        count += n
    return module, count


def fuse_for_inference(
    module: nn.Module, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> nn.Module | None:
    """A fused inference copy of ``module`` with its parameters in ``dtype``, channels-last, on
    ``device`` (default: the module's); ``None`` when it has nothing to fuse (run it as is)."""
    if not any(isinstance(m, ResBlock | FusionGroup | Body | SLWSR) for m in module.modules()):
        return None  # checked before copying: a wrapped runtime (onnxruntime) need not copy
    device = device or next(module.parameters()).device
    fused, _ = _fused(copy.deepcopy(module).float())
    onednn = onednn_fusion_available(device)
    for m in fused.modules():
        if isinstance(m, FusedResBlock | SplitConv1x1):
            m.onednn = onednn
    fused.to(device=device, dtype=dtype, memory_format=torch.channels_last).eval()
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused
