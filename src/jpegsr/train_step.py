"""One training step, apart from the loop: forward (bf16 autocast), the three losses, backward,
Adam, EMA. :mod:`jpegsr.train` runs it over batches; ``benchmarks/train_speed.py`` times it.

Nothing here reads a value back from the device: the returned loss terms are detached tensors,
so a GPU runs ahead until the loop chooses to log.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass

import torch
from torch import nn

from jpegsr import models
from jpegsr.config import TrainConfig
from jpegsr.data import to_unit_float
from jpegsr.losses import TwoStageLoss


def make_optimizer(model: nn.Module, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with one fused kernel over all parameters where this torch build has it, else the
    multi-tensor (foreach) form; both compute the same update."""
    params = list(model.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)


@dataclass
class StepOutput:
    loss: torch.Tensor  # detached, on the device
    terms: dict[str, torch.Tensor]


class TrainStep:
    """Owns the model, its EMA copy, the optimizer and the loss of one run."""

    def __init__(self, model: nn.Module, config: TrainConfig, world: int = 1) -> None:
        self.config = config
        self.descriptor = models.describe(config.model, config.data.scale)
        model = model.to(config.device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.ema = copy.deepcopy(model).eval() if config.optim.ema_decay else None
        self._ema_pairs = None  # (EMA parameters, model parameters), listed once
        if self.ema is not None:
            self._ema_pairs = (list(self.ema.parameters()), list(model.parameters()))
        self.optimizer = make_optimizer(model, config.optim.lr, config.optim.betas)
        self.criterion = TwoStageLoss(config.loss)
        net: nn.Module = nn.parallel.DistributedDataParallel(model) if world > 1 else model
        self.net = net
        self._forward = torch.compile(net, mode=config.compile_mode) if config.compile else net
        self._compiled = config.compile

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        with torch.autocast(self.config.device, dtype=torch.bfloat16, enabled=self.config.bf16):
            try:
                out = self._forward(x)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: run eagerly
                if not self._compiled:
                    raise
                msg = f"jpegsr: torch.compile failed ({type(exc).__name__}); running eagerly"
                print(msg, file=sys.stderr)
                self._forward, self._compiled = self.net, False
                out = self.net(x)
        return self.descriptor.outputs(out)

    def __call__(self, pixels: dict[str, torch.Tensor], lr: float, iteration: int) -> StepOutput:
        """One update on a uint8 batch (``lq``, ``lr``, ``hr``) at learning rate ``lr``."""
        cfg = self.config
        batch = {k: to_unit_float(v) for k, v in pixels.items()}
        x = batch["lq"] if cfg.data.input == "compressed" else batch["lr"]
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        recovered, sr = self._run(x)
        loss, terms = self.criterion(recovered, sr, batch["lr"], batch["hr"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        if self._ema_pairs is not None:
            # warm the average up so it does not keep the random init for long
            d = min(cfg.optim.ema_decay, (1 + iteration) / (10 + iteration))
            with torch.no_grad():
                torch._foreach_lerp_(*self._ema_pairs, 1 - d)
        return StepOutput(loss.detach(), terms)

    def state(self) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])

    @property
    def exported(self) -> nn.Module:
        """The weights a run ships: the EMA when enabled."""
        return self.ema if self.ema is not None else self.model
