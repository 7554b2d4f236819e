"""Saving and loading weights as ``.safetensors`` (never pickle: loading runs no code).

A weights file records its architecture name and scale in the safetensors metadata, so a
file alone is enough to rebuild the model. Shipped weights live in ``jpegsr/weights/``
and are addressed by their stem (``jpegsr.load_model("blind_long")``). A shipped model
that was renamed keeps its old name as an alias that warns (:data:`RENAMED_MODELS`).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from jpegsr import models
from jpegsr.defaults import AUTO_MODEL

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
FORMAT_VERSION = "1"
# old shipped name -> new name; the old name still loads the model, with a warning
RENAMED_MODELS = {"default": "q20"}  # renamed for what it does: trained at JPEG q=20 only


class WeightsError(ValueError):
    """A weights file or model name that cannot be used; the message is for the user."""


@dataclass
class LoadedModel:
    """A model ready for inference. ``prepared`` caches what inference derives from ``module``
    (its fused copies per device and precision): treat the weights as fixed once loaded."""

    module: nn.Module
    descriptor: models.ModelDescriptor
    source: str
    metadata: dict[str, str]
    prepared: dict[tuple[str, str], nn.Module | None] = field(default_factory=dict, repr=False)


def save_weights(
    model: nn.Module, arch: str, scale: int, path: str | Path, extra: dict[str, str] | None = None
) -> None:
    """Write ``model``'s parameters atomically with the metadata needed to rebuild it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"jpegsr_arch": arch, "scale": str(scale), "format_version": FORMAT_VERSION}
    meta.update(extra or {})
    state = {k: v.detach().contiguous().cpu().float() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.chmod(0o644)
    tmp.replace(path)


def shipped_models() -> list[str]:
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))


def trained_qualities(metadata: dict[str, str]) -> list[int]:
    """The JPEG qualities a model was trained on (empty: clean input or unknown)."""
    if metadata.get("input", "compressed") != "compressed":
        return []
    return [int(q) for q in metadata.get("qualities", "").split(",") if q.strip()]


def choose_for_quality(candidates: dict[str, list[int]], jpeg_quality: int | None) -> str:
    """The candidate trained nearest to ``jpeg_quality``; ties go to the narrower specialist.

    ``candidates`` maps a model name to its training qualities. Without a known quality (a PNG,
    a numpy array) the model trained on the widest range of qualities is the safe choice.
    """
    usable = {name: qs for name, qs in candidates.items() if qs}
    if not usable:
        raise WeightsError("no shipped model records the JPEG qualities it was trained on")
    if jpeg_quality is None:
        return min(usable, key=lambda n: (-(max(usable[n]) - min(usable[n])), -len(usable[n]), n))
    return min(
        usable,
        key=lambda n: (min(abs(jpeg_quality - q) for q in usable[n]), len(usable[n]), n),
    )


def choose_from_table(table: dict, available: list[str], jpeg_quality: int | None) -> str | None:
    """The model a selection table (``weights/auto.json``) names for the nearest quality.

    None when the table names no available model for it (then the metadata rule applies).
    """
    if jpeg_quality is None:
        name = table.get("unknown")
    else:
        entries = {int(q): n for q, n in table.get("by_quality", {}).items() if n in available}
        if not entries:
            return None
        name = entries[min(entries, key=lambda q: (abs(q - jpeg_quality), q))]
    return name if name in available else None


def choose_shipped(jpeg_quality: int | None) -> str:
    """The shipped model for an input of this JPEG quality.

    ``weights/auto.json`` (made by ``scripts/select_auto_models.py`` from PSNR on the
    validation images) decides when present; otherwise :func:`choose_for_quality`.
    """
    available = shipped_models()
    table_path = SHIPPED_DIR / "auto.json"
    if table_path.is_file():
        try:
            table = json.loads(table_path.read_text())
        except (OSError, ValueError) as exc:
            raise WeightsError(f"cannot read {table_path}: {exc}") from None
        name = choose_from_table(table, available, jpeg_quality)
        if name is not None:
            return name
    candidates = {
        n: trained_qualities(read_metadata(SHIPPED_DIR / f"{n}.safetensors")) for n in available
    }
    return choose_for_quality(candidates, jpeg_quality)


def resolve(name_or_path: str | Path) -> Path:
    """A weights path from a shipped model name, ``"auto"`` (the shipped model for a file of
    unknown JPEG quality) or a file path."""
    if str(name_or_path) == AUTO_MODEL:
        name_or_path = choose_shipped(None)
    if str(name_or_path) in RENAMED_MODELS and not Path(name_or_path).exists():
        new = RENAMED_MODELS[str(name_or_path)]
        warnings.warn(f"model {name_or_path!r} is now named {new!r}", FutureWarning, stacklevel=3)
        name_or_path = new
    p = Path(name_or_path)
    if p.suffix == ".safetensors" or p.exists():
        if not p.is_file():
            raise WeightsError(f"weights file not found: {p}")
        return p
    shipped = SHIPPED_DIR / f"{name_or_path}.safetensors"
    if shipped.is_file():
        return shipped
    for candidate in sorted(SHIPPED_DIR.glob("*.safetensors")):  # a registered arch name
        if read_metadata(candidate).get("jpegsr_arch") == str(name_or_path):
            return candidate
    known = ", ".join(shipped_models()) or "none"
    raise WeightsError(
        f"no shipped model or weights file named {str(name_or_path)!r} (shipped models: {known})"
    )


def read_metadata(path: Path) -> dict[str, str]:
    """A weights file's safetensors metadata (architecture, scale, and how it was trained)."""
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_model(
    name_or_path: str | Path = AUTO_MODEL, task: Literal["sr", "denoise"] = "sr"
) -> LoadedModel:
    """Build the architecture named in a weights file and load its parameters, for inference.
    ``task`` is what the caller means to run: an upscaler ("sr") or a denoiser."""
    path = resolve(name_or_path)
    try:
        meta = read_metadata(path)
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"cannot read weights {path}: {exc}") from None
    arch = meta.get("jpegsr_arch")
    if arch is None or "scale" not in meta:
        raise WeightsError(f"{path} is not a jpegsr weights file (no jpegsr_arch metadata)")
    try:
        scale = int(meta["scale"])
        module = models.build(arch, scale)
        descriptor = models.describe(arch, scale)
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"{path}: {exc}") from None
    if descriptor.task != task:
        kinds = {"sr": "an upscaler", "denoise": "a denoiser"}
        raise WeightsError(f"{path} holds {kinds[descriptor.task]}, not {kinds[task]}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not match architecture {arch}: {exc}") from None
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return LoadedModel(module=module, descriptor=descriptor, source=str(path), metadata=meta)
