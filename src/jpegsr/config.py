"""Typed training configuration loaded from YAML; unknown or misspelt keys are errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from jpegsr.defaults import SCALES

MIN_PATCH = 8  # the smallest training crop side (LR pixels) a config may ask for


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message is for the user."""


def _check(ok: bool, key: str, rule: str, value: object) -> None:
    """Refuse ``value`` of ``key`` unless ``ok``: one line naming the key and the rule."""
    if not ok:
        raise ConfigError(f"{key}: must be {rule}, got {value!r}")


def _at_least(low: int, **values: int) -> None:
    for key, value in values.items():
        _check(value >= low, key, f">= {low}", value)


def _jpeg_quality(key: str, q: int) -> None:
    _check(1 <= q <= 100, key, "a JPEG quality in 1..100", q)


def _downscales(key: str, factors: list[float]) -> None:
    _check(bool(factors) and all(0 < f <= 1 for f in factors), key,
           "a non-empty list of factors in (0, 1]", factors)  # fmt: skip


@dataclass
class DataConfig:
    train_dirs: list[str] = field(default_factory=lambda: ["../shared/datasets/train"])
    scale: int = 4
    qualities: list[int] = field(default_factory=lambda: [20])
    # relative sampling weight of each entry of ``qualities`` (same length); empty: uniform.
    # Oversampling the low qualities is one of issue #12's recipe levers.
    quality_weights: list[float] = field(default_factory=list)
    # what the network is fed: "compressed" JPEG LR (the paper's setting), "clean" LR (the
    # clean-trained Table 1 rows), or "denoised": the JPEG LR pre-denoised by our DnCNN (the
    # (M) rows: the paper trains its SR model on pre-denoised inputs, section 4.2.2)
    input: Literal["compressed", "clean", "denoised"] = "compressed"
    lr_patch: int = 48
    # extra copies of each training image downscaled by these factors before degradation
    # (scale augmentation: more distinct content from a small set); 1.0 is the image itself
    hr_scales: list[float] = field(default_factory=lambda: [1.0])
    val_count: int = 10  # training images held out for validation (never benchmark images)
    val_quality: int = 20
    # folders of further clean photos trained on whole, after the held-out split of
    # ``train_dirs`` (which they leave unchanged); e.g. .extra_photos/train
    # (scripts/fetch_extra_photos.py), whose own held-out photos live in a separate folder
    extra_train_dirs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check(self.scale in SCALES, "data.scale", f"one of {SCALES}", self.scale)
        _check(bool(self.qualities), "data.qualities", "a non-empty list", self.qualities)
        for q in [*self.qualities, self.val_quality]:
            _jpeg_quality("data.qualities / data.val_quality", q)
        _at_least(MIN_PATCH, **{"data.lr_patch": self.lr_patch})
        _at_least(0, **{"data.val_count": self.val_count})
        _downscales("data.hr_scales", self.hr_scales)
        if len(set(self.qualities)) != len(self.qualities):
            raise ConfigError(f"data.qualities: repeated entries in {self.qualities}")
        w = self.quality_weights
        if w and (len(w) != len(self.qualities) or min(w) < 0 or sum(w) <= 0):
            raise ConfigError(
                "data.quality_weights: expected one non-negative weight per quality "
                f"({len(self.qualities)}), not all zero; got {w}"
            )

    def quality_probabilities(self) -> dict[int, float] | None:
        """Each quality's sampling probability, or None for uniform sampling."""
        if not self.quality_weights:
            return None
        total = sum(self.quality_weights)
        return {q: w / total for q, w in zip(self.qualities, self.quality_weights, strict=True)}


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["step", "cosine"] = "step"
    halve_every: int = 200_000  # step schedule: lr halves every this many iterations
    min_lr: float = 1e-6  # cosine schedule floor
    warmup: int = 0
    ema_decay: float = 0.0  # 0 disables; the EMA weights are exported when enabled
    grad_clip: float = 0.0
    # parameter-name prefixes to train (e.g. ["coarse."]: a part grown onto a trained model);
    # every other parameter stays as loaded. Empty: train everything.
    train_only: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optim.lr", "> 0", self.lr)
        _check(self.min_lr >= 0, "optim.min_lr", ">= 0", self.min_lr)
        _check(all(0 <= b < 1 for b in self.betas), "optim.betas", "in [0, 1)", self.betas)
        _check(0 <= self.ema_decay < 1, "optim.ema_decay", "in [0, 1) (0: off)", self.ema_decay)
        _check(self.grad_clip >= 0, "optim.grad_clip", ">= 0 (0: off)", self.grad_clip)
        _at_least(1, **{"optim.halve_every": self.halve_every})
        _at_least(0, **{"optim.warmup": self.warmup})


@dataclass
class LossConfig:
    recover: float = 1.0
    sr: float = 1.0
    cycle: float = 1.0
    ssim: float = 0.0  # weight of 1 - SSIM on Y between SR and HR (not the paper's; 0: off)
    # the distance of the recover, sr and cycle terms: the paper's L1, or l2 (mean squared
    # error, which is what PSNR scores; not the paper's)
    norm: Literal["l1", "l2"] = "l1"


@dataclass
class TrainConfig:
    name: str
    model: str
    iterations: int
    batch_size: int = 16
    seed: int = 0
    out_dir: str = "runs"
    checkpoint_every: int = 100
    val_every: int = 500
    log_every: int = 10
    bf16: bool = True  # bf16 autocast where the device runs it natively, else fp32
    channels_last: bool = True
    threads: int = 0  # 0: torch's default
    device: Literal["cpu", "cuda"] = "cpu"  # cuda: train on a GPU (never needed; faster)
    compile: bool = False  # torch.compile the network (falls back to eager if it fails)
    # torch.compile mode: "reduce-overhead" replays CUDA graphs (for a host-bound GPU step)
    compile_mode: Literal["default", "reduce-overhead", "max-autotune-no-cudagraphs"] = "default"
    # capture the whole step as one CUDA graph and replay it (device cuda, one process, no
    # compile): the GPU step is launch-bound at this network's size
    cuda_graph: bool = False
    init_from: str = ""  # weights file to fine-tune from
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        _at_least(1, iterations=self.iterations, batch_size=self.batch_size,
                  checkpoint_every=self.checkpoint_every, val_every=self.val_every,
                  log_every=self.log_every)  # fmt: skip
        _at_least(0, threads=self.threads)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


@dataclass
class DenoiserTrainConfig:
    """A blind Gaussian denoiser (the (M) rows' DnCNN): grayscale crops of the clean training
    images, noise of a random standard deviation in [0, sigma_max] (0..255 scale) per crop,
    mean squared error. Chosen by ``load_config`` when ``model`` is a registered denoiser."""

    name: str
    model: str
    iterations: int
    train_dirs: list[str] = field(default_factory=lambda: ["../shared/datasets/train"])
    val_count: int = 10  # training images held out (the same split as the upscalers' runs)
    # extra copies of each training image downscaled by these factors (scale augmentation)
    hr_scales: list[float] = field(default_factory=lambda: [1.0])
    patch: int = 40
    sigma_max: float = 55.0
    batch_size: int = 64
    seed: int = 0
    out_dir: str = "runs"
    checkpoint_every: int = 100
    log_every: int = 20
    bf16: bool = True  # bf16 autocast where the device runs it natively, else fp32
    channels_last: bool = True
    threads: int = 0
    device: Literal["cpu", "cuda"] = "cpu"
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        _at_least(1, iterations=self.iterations, batch_size=self.batch_size,
                  checkpoint_every=self.checkpoint_every, log_every=self.log_every)  # fmt: skip
        _at_least(MIN_PATCH, patch=self.patch)
        _at_least(0, threads=self.threads, val_count=self.val_count)
        _check(self.sigma_max >= 0, "sigma_max", ">= 0", self.sigma_max)
        _downscales("hr_scales", self.hr_scales)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        items = [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        if origin is tuple:
            if len(items) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(items)}")
            return tuple(items)
        return items
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: unsupported union type")
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")


def from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {missing}")
    return cls(**kwargs)


def load_config(
    path: str | Path, overrides: dict[str, Any] | None = None
) -> TrainConfig | DenoiserTrainConfig:
    """Read a YAML training config; ``overrides`` replace top-level keys. A config whose
    ``model`` is a registered denoiser is a :class:`DenoiserTrainConfig`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)  # where, as line:column, on the same line
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    data.update(overrides or {})
    from jpegsr import models  # the registry says what kind of model a name is

    kind = models.task_of(data["model"]) if isinstance(data.get("model"), str) else None
    cls = DenoiserTrainConfig if kind == "denoise" else TrainConfig
    return from_dict(cls, data, str(path))


def to_dict(config: TrainConfig | DenoiserTrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
