"""jpegsr: x4 super-resolution of heavily compressed JPEGs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_model", "upscale"]

if TYPE_CHECKING:
    from jpegsr.inference import upscale
    from jpegsr.weights_io import load_model


def __getattr__(name: str) -> Any:
    """Import the API on first use, so ``import jpegsr`` does not pay for importing torch."""
    if name == "upscale":
        from jpegsr.inference import upscale as fn

        globals()["upscale"] = fn
        return fn
    if name == "load_model":
        from jpegsr.weights_io import load_model as fn

        globals()["load_model"] = fn
        return fn
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
