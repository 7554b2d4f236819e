"""An inference-only copy of an s-LWSR-family model with its elementwise work folded away.

The trained modules stay as they are (they are what training and the weights files use);
:func:`fuse_for_inference` returns a copy for inference in one dtype (float32 or bfloat16)
that computes the same function (away from a 2-pixel border: the last point) with less work
and fewer passes over memory:

* each EDSR residual block runs as two oneDNN convolutions with fused post-ops, conv + ReLU
  then conv + the block's input (``torch.ops.mkldnn._convolution_pointwise``), instead of
  four kernels (conv, ReLU, conv, add); where nothing later reads the block's input (20 of a
  body's 26 blocks, :func:`_mark_in_place`), the second convolution adds onto that input in
  place instead of writing a new tensor, and each part of a split 1x1 convolution adds onto
  the sum in place: fewer large allocations, each of which costs page faults;
* the 1x1 convolutions over a concatenation (the information pool, the second half's fusion)
  run one convolution per part, each adding onto the last in its post-op, so the
  concatenation is never built; the fusion's ``0.5 * mirror + 0.5 * pool`` becomes two parts
  with the 0.5 folded into their weights;
* the output mean shift is folded into the bias of the last convolution, and the whole
  linear tail (upsampling convolutions, pixel shuffles, last convolution) becomes one 5x5
  convolution on the coarse grid and one pixel shuffle (:func:`fold_linear_tail`): a sixth
  of its work, and no 128-channel features at twice the size. This one is equal only away
  from a 2-pixel border, which every pass of :func:`jpegsr.inference.upscale_array` crops.

Where oneDNN is not available (a build without it, or a non-CPU device) the same folded
weights run through plain PyTorch ops, so the copy is always correct, only not always faster.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from jpegsr.models.blocks import ConcatConv1x1, MeanShift, ResBlock, SubPixelConvs
from jpegsr.models.slwsr import SLWSR, Body, FusionGroup


def onednn_fusion_available(device: torch.device, dtype: torch.dtype = torch.float32) -> bool:
    """Whether oneDNN's fused convolutions can run on ``device`` in ``dtype`` in this PyTorch
    build. In bf16 they need a CPU that runs it natively (oneDNN refuses it on an AVX2-only
    one), where the plain convolutions still run it, emulated."""
    available = (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )
    if available and dtype == torch.bfloat16:
        return onednn_runs_bf16()
    return available


def onednn_runs_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 BF16 or AMX); where it does not,
    its bf16 convolutions refuse to run and plain ones emulate it, many times slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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
        self.in_place = False  # add onto the input itself (set where nothing else reads it)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2 = self.conv1, self.conv2
        if not (self.onednn and x.device.type == "cpu"):
            r = c2(F.relu(c1(x)))
            return x.add_(r) if self.in_place else x + r
        ops = torch.ops.mkldnn
        h = ops._convolution_pointwise(x, c1.weight, c1.bias, *_conv_args(c1), "relu", [None], "")
        args = (c2.weight, c2.bias, *_conv_args(c2), "add", None, None, [None], "")
        if self.in_place:
            return ops._convolution_pointwise_(x, h, *args)
        return ops._convolution_pointwise(h, x, *args)


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
        if not (self.onednn and parts[0].device.type == "cpu"):
            out = F.conv2d(parts[0], ws[0], self.bias)
            for part, w in zip(parts[1:], ws[1:], strict=True):
                out.add_(F.conv2d(part, w))
            return out
        ops, args = torch.ops.mkldnn, ([0, 0], [1, 1], [1, 1], 1)
        out = ops._convolution_pointwise(parts[0], ws[0], self.bias, *args, "none", [None], "")
        for part, w in zip(parts[1:], ws[1:], strict=True):
            ops._convolution_pointwise_(out, part, w, None, *args, "add", None, None, [None], "")
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


def fold_linear_tail(tail: nn.Sequential, in_channels: int, scale: int) -> SubPixelConvs | None:
    """The sub-pixel tail of an SR network (3x3 convolutions and pixel shuffles only, e.g.
    conv C -> 4C, shuffle 2, conv C -> 4C, shuffle 2, conv C -> 3) as one convolution on the
    coarse grid (C -> 3 scale², k x k) and one ``PixelShuffle(scale)``; ``None`` when the tail
    holds anything else. The tail is linear and moving its input by one coarse pixel moves
    its output by ``scale`` pixels, so it is such a convolution; its weights are read off
    the tail's response to impulses, in float64. At x4 this replaces ~240,000 multiply-adds
    per input pixel, most of them on 2x-upsampled features of 128 channels, by 38,400, and
    the largest tensor of the whole network is never made.

    Equal to the tail except within ``k // 2`` coarse pixels (2 at x2, x3 and x4) of the
    border, where the tail's zero padding of its finer grids differs from one zero padding of
    the coarse grid; :func:`jpegsr.inference.upscale_array` crops a wider mirrored border
    from every pass, so its results do not change."""
    leaves = [m for m in tail.modules() if not list(m.children())]
    if not all(isinstance(m, nn.Conv2d | nn.PixelShuffle) for m in leaves):
        return None
    ref = copy.deepcopy(tail).to("cpu", torch.float64, memory_format=torch.contiguous_format)
    ref.eval()  # probed on the CPU whatever the tail's device; the caller moves the result
    radius = 4  # probe well beyond the receptive field, then measure it
    size = 2 * radius + 1
    impulses = torch.zeros(in_channels, in_channels, size, size, dtype=torch.float64)
    impulses[range(in_channels), range(in_channels), radius, radius] = 1.0
    with torch.no_grad():
        bias_out = ref(torch.zeros(1, in_channels, size, size, dtype=torch.float64))[0]
        for m in ref.modules():  # the linear part alone: exact zeros outside its reach
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.zero_()
        response = ref(impulses)  # (C, 3, size*s, size*s): each input channel
    out_ch = response.shape[1]
    # response[c, o, s*i + a, s*j + b]: weight of input (c, offset (radius - i, radius - j))
    # for output sub-pixel (o, a, b) of coarse pixel (i, j)
    cells = response.reshape(in_channels, out_ch, size, scale, size, scale)
    cells = cells.permute(1, 3, 5, 0, 2, 4).reshape(out_ch * scale * scale, in_channels, size, size)
    reach = cells.abs().amax(dim=(0, 1))
    reach = reach > 1e-12 * reach.max()  # rounding-level values count as zero
    rows = torch.nonzero(reach.any(dim=1)).flatten()
    cols = torch.nonzero(reach.any(dim=0)).flatten()
    k_half = int(max(radius - rows.min(), rows.max() - radius, radius - cols.min(),
                     cols.max() - radius))  # fmt: skip
    if k_half >= radius:
        return None  # a receptive field wider than the probe: leave the tail as it is
    kept = cells[:, :, radius - k_half : radius + k_half + 1, radius - k_half : radius + k_half + 1]
    # cross-correlation: output (i, j) reads input (i + dy - k_half); the impulse sat at
    # (radius, radius), so tap dy holds the response of coarse pixel radius + k_half - dy
    weight = kept.flip(-2, -1)
    k = 2 * k_half + 1
    conv = nn.Conv2d(in_channels, out_ch * scale * scale, k, padding=k_half)
    bias = bias_out[:, scale * radius : scale * (radius + 1), scale * radius : scale * (radius + 1)]
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias.reshape(-1))
    return SubPixelConvs(conv, nn.PixelShuffle(scale))


def _fold_tail(model: SLWSR) -> None:
    """Replace SLWSR's tail by :func:`fold_linear_tail`'s one convolution and shuffle."""
    folded = fold_linear_tail(model.tail, model.body.n_feats, model.scale)
    if folded is not None:
        model.tail = folded


def _mark_in_place(body: Body) -> None:
    """Let each fused block of ``body`` add onto its input in place where :meth:`Body.forward`
    never reads that input again: in the first half, a group's first block (its input is a
    fresh sum), except in group 1, whose input is the head (the pool and the global skip read
    it), and the blocks after the second (the second block's input is the group's first
    output, which the pool and the next group's feed read); in the second half, every block
    (a fusion's output and the blocks after it are read by nothing else). The body's own input
    is never changed."""
    for g, group in enumerate(body.first_half):
        for j, block in enumerate(group):
            if isinstance(block, FusedResBlock):
                block.in_place = j >= 2 or (j == 0 and g > 0)
    for fusion in body.second_half:
        for block in fusion.blocks:
            if isinstance(block, FusedResBlock):
                block.in_place = True


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
        _fold_tail(module)
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
    onednn = onednn_fusion_available(device, dtype)
    for m in fused.modules():
        if isinstance(m, FusedResBlock | SplitConv1x1):
            m.onednn = onednn
        if isinstance(m, Body):
            _mark_in_place(m)
    fused.to(device=device, dtype=dtype, memory_format=torch.channels_last).eval()
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused
