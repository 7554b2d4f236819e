"""One training step, apart from the loop: forward (bf16 autocast), the three losses, backward,
Adam, EMA. :mod:`jpegsr.train` runs it over batches; ``benchmarks/train_speed.py`` times it.

Nothing here reads a value back from the device: the returned loss terms are detached tensors,
so a GPU runs ahead until the loop chooses to log.

With ``cuda_graph: true`` the whole update (forward, losses, backward, Adam, EMA) is captured
once as a CUDA graph and replayed every iteration, so the host launches one graph instead of
about a thousand kernels (the GPU step is launch-bound at this network's size). The batch, the
learning rate and the EMA weight then live in fixed device tensors that are refilled before
each replay. On a CPU the same fixed-tensor step runs eagerly (what the tests check).
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass

import torch
from torch import nn

from jpegsr import models
from jpegsr.config import ConfigError, TrainConfig
from jpegsr.data import to_unit_float
from jpegsr.losses import TwoStageLoss


def make_optimizer(
    model: nn.Module, lr: float, betas: tuple[float, float], capturable: bool = False
) -> torch.optim.Adam:
    """Adam with one fused kernel over all parameters where this torch build has it, else the
    multi-tensor (foreach) form; both compute the same update. ``capturable`` keeps its state
    on the device so a CUDA graph can capture its step."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True, capturable=capturable)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True, capturable=capturable)


def freeze_all_but(model: nn.Module, prefixes: list[str]) -> None:
    """Train only the parameters whose names start with one of ``prefixes`` (all if empty)."""
    if not prefixes:
        return
    names = [name for name, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(name.startswith(prefix) for name in names):
            raise ConfigError(f"optim.train_only: no parameter of the model starts with {prefix!r}")
    for name, p in model.named_parameters():
        p.requires_grad_(p.requires_grad and name.startswith(tuple(prefixes)))


WARMUP_CALLS = 3  # eager updates before a CUDA graph is captured


@dataclass
class _FixedInputs:
    """What a captured step reads: the batch, the learning rate and the EMA weight, each in
    one device tensor that is refilled, never replaced."""

    pixels: dict[str, torch.Tensor]
    lr: torch.Tensor
    ema_weight: torch.Tensor

    @classmethod
    def like(cls, pixels: dict[str, torch.Tensor], lr: float) -> _FixedInputs:
        device = next(iter(pixels.values())).device
        return cls(
            {k: torch.empty_like(v) for k, v in pixels.items()},
            torch.tensor(lr, dtype=torch.float32, device=device),
            torch.tensor(0.0, dtype=torch.float32, device=device),
        )


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
        freeze_all_but(model, config.optim.train_only)
        self.ema = copy.deepcopy(model).eval() if config.optim.ema_decay else None
        self._ema_pairs = None  # (EMA parameters, model parameters), listed once
        if self.ema is not None:
            self._ema_pairs = (list(self.ema.parameters()), list(model.parameters()))
        # a captured Adam step keeps its state on the GPU (the CPU path runs eagerly)
        graph_on_gpu = config.cuda_graph and torch.device(config.device).type == "cuda"
        self.optimizer = make_optimizer(
            model, config.optim.lr, config.optim.betas, capturable=graph_on_gpu
        )
        self.criterion = TwoStageLoss(config.loss)
        net: nn.Module = nn.parallel.DistributedDataParallel(model) if world > 1 else model
        self.net = net
        self._forward = torch.compile(net, mode=config.compile_mode) if config.compile else net
        self._compiled = config.compile
        self._fixed: _FixedInputs | None = None  # cuda_graph: the tensors a replay reads
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_out: StepOutput | None = None
        self._eager_calls = 0
        self._graph_failed = False

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        # a graph must not keep autocast's cache of cast weights from its capture
        cache = not self.config.cuda_graph
        with torch.autocast(self.config.device, dtype=torch.bfloat16, enabled=self.config.bf16,
                            cache_enabled=cache):  # fmt: skip
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

    def ema_weight(self, iteration: int) -> float:
        """How far the EMA moves towards the model after ``iteration``: warmed up so the
        average does not keep the random init for long."""
        return 1 - min(self.config.optim.ema_decay, (1 + iteration) / (10 + iteration))

    def __call__(self, pixels: dict[str, torch.Tensor], lr: float, iteration: int) -> StepOutput:
        """One update on a uint8 batch (``lq``, ``lr``, ``hr``) at learning rate ``lr``."""
        if self.config.cuda_graph and not self._graph_failed:
            return self._fixed_step(pixels, lr, iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return self._update(pixels, self.ema_weight(iteration), zero_grad=True)

    def _update(
        self, pixels: dict[str, torch.Tensor], ema_weight: float | torch.Tensor, zero_grad: bool
    ) -> StepOutput:
        """Forward, losses, backward, Adam and EMA on uint8 ``pixels``: what a graph captures."""
        cfg = self.config
        batch = {k: to_unit_float(v) for k, v in pixels.items()}
        x = batch["lr"] if cfg.data.input == "clean" else batch["lq"]
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        recovered, sr = self._run(x)
        loss, terms = self.criterion(recovered, sr, batch["lr"], batch["hr"])
        if zero_grad:
            self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        if self._ema_pairs is not None:
            ema, params = self._ema_pairs
            with torch.no_grad():
                if isinstance(ema_weight, torch.Tensor):  # ema += w * (model - ema), w on device
                    diffs = torch._foreach_sub(params, ema)
                    torch._foreach_mul_(diffs, ema_weight)
                    torch._foreach_add_(ema, diffs)
                else:
                    torch._foreach_lerp_(ema, params, ema_weight)
        return StepOutput(loss.detach(), terms)

    def _fixed_step(self, pixels: dict[str, torch.Tensor], lr: float, iteration: int) -> StepOutput:
        """The update on fixed device tensors: eager for the first WARMUP_CALLS calls, then
        captured once as a CUDA graph and replayed (on a CPU: eager on the same tensors)."""
        if self._fixed is None:
            self._fixed = _FixedInputs.like(pixels, lr)
            for group in self.optimizer.param_groups:
                group["lr"] = self._fixed.lr
        fixed = self._fixed
        for key, value in pixels.items():
            fixed.pixels[key].copy_(value, non_blocking=True)
        fixed.lr.fill_(lr)
        fixed.ema_weight.fill_(self.ema_weight(iteration))
        on_gpu = fixed.lr.device.type == "cuda"
        if not on_gpu or self._eager_calls < WARMUP_CALLS:
            self._eager_calls += 1
            if not on_gpu:
                return self._update(fixed.pixels, fixed.ema_weight, zero_grad=True)
            side = torch.cuda.Stream()  # warm-up away from the capture's stream (CUDA docs)
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self._update(fixed.pixels, fixed.ema_weight, zero_grad=True)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self._graph is None:
            self.optimizer.zero_grad(set_to_none=True)  # the graph's backward writes fresh grads
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    self._graph_out = self._update(fixed.pixels, fixed.ema_weight, zero_grad=False)
            except RuntimeError as exc:  # capture refused: train on without the graph
                print(f"jpegsr: CUDA graph capture failed ({exc}); running eagerly",
                      file=sys.stderr)  # fmt: skip
                self._graph_failed = True
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                return self._update(pixels, self.ema_weight(iteration), zero_grad=True)
            self._graph = graph
        self._graph.replay()
        out = self._graph_out
        assert out is not None
        # copies: the graph's own outputs are overwritten by the next replay
        return StepOutput(out.loss.clone(), {k: v.clone() for k, v in out.terms.items()})

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
