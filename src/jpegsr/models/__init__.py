"""Architectures (pure ``nn.Module``s, no I/O) and the registry that names them."""

from jpegsr.models.registry import (
    ModelDescriptor,
    build,
    count_parameters,
    describe,
    list_models,
    names,
    register,
    sr_output,
)

__all__ = [
    "ModelDescriptor",
    "build",
    "count_parameters",
    "describe",
    "list_models",
    "names",
    "register",
    "sr_output",
]
