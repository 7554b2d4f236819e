"""An explicit registry of architectures: name -> builder + typed descriptor.

No import-time scanning: every architecture module registers itself in
``jpegsr.models.__init__`` by a plain function call, so a reader sees the full list in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class ModelDescriptor:
    """What a caller must know to feed a model: scale, channels, size rules, output kind.

    Upscalers (``task == "sr"``) take float RGB in [0, 1], NCHW. ``two_stage`` models return
    a tuple ``(recovered_lr, sr)``; the others return ``sr`` alone (see :func:`sr_output`).
    Denoisers (``task == "denoise"``, scale 1) take and return ``in_channels`` channels.
    """

    name: str
    scale: int
    in_channels: int = 3
    out_channels: int = 3
    size_multiple: int = 1  # input height and width must be multiples of this
    min_size: int = 1  # smallest input side the architecture accepts
    two_stage: bool = False
    description: str = ""
    bf16: bool = True  # runs under bfloat16 autocast (checked in tests/test_models.py)
    task: Literal["sr", "denoise"] = "sr"

    def outputs(
        self, output: torch.Tensor | tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(recovered LR, or None for single-stage models; SR) from the module's output."""
        recovered = output[0] if self.two_stage and isinstance(output, tuple) else None
        return recovered, sr_output(output)

    def sr(self, output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The super-resolved image from the module's output."""
        return sr_output(output)


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    descriptor: Callable[[int], ModelDescriptor]
    scales: tuple[int, ...]


_REGISTRY: dict[str, _Entry] = {}


def register(
    name: str,
    builder: Callable[..., nn.Module],
    *,
    scales: tuple[int, ...] = (2, 3, 4),
    two_stage: bool = False,
    size_multiple: int = 1,
    min_size: int = 1,
    description: str = "",
    task: Literal["sr", "denoise"] = "sr",
    channels: int = 3,
) -> None:
    """Register ``builder(scale=...) -> nn.Module`` under ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")

    def describe(scale: int) -> ModelDescriptor:
        return ModelDescriptor(
            name=name,
            scale=scale,
            size_multiple=size_multiple,
            min_size=min_size,
            two_stage=two_stage,
            description=description,
            task=task,
            in_channels=channels,
            out_channels=channels,
        )

    _REGISTRY[name] = _Entry(builder=builder, descriptor=describe, scales=scales)


def names() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(names())}") from None


def task_of(name: str) -> str | None:
    """ "sr" or "denoise" for a registered name; None for an unknown one."""
    entry = _REGISTRY.get(name)
    return None if entry is None else entry.descriptor(entry.scales[0]).task


def describe(name: str, scale: int = 4) -> ModelDescriptor:
    entry = _entry(name)
    if scale not in entry.scales:
        raise ValueError(f"model {name!r} supports scales {entry.scales}, not x{scale}")
    return entry.descriptor(scale)


def build(name: str, scale: int = 4) -> nn.Module:
    """Build a freshly initialised model ``name`` for ``scale``."""
    describe(name, scale)  # validates name and scale
    return _entry(name).builder(scale=scale)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sr_output(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The super-resolved image from a model's output, whatever its kind."""
    return output[-1] if isinstance(output, tuple) else output


class SROnly(nn.Module):
    """A model with its SR output alone (a two-stage model's recovered LR dropped): what an
    exporter or another runtime is given."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        return sr_output(self.inner(lq))


def list_models(scale: int = 4) -> list[dict[str, object]]:
    """Every registered architecture that runs at ``scale`` (x1: the denoisers), with its
    parameter count."""
    rows: list[dict[str, object]] = []
    for name in names():
        d = describe(name, scale) if scale in _entry(name).scales else None
        if d is None:
            continue
        rows.append(
            {
                "name": name,
                "scale": scale,
                "parameters": count_parameters(build(name, scale)),
                "two_stage": d.two_stage,
                "size_multiple": d.size_multiple,
                "description": d.description,
            }
        )
    return rows
