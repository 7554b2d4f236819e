"""Shared by the test modules: loading a repository script (``scripts/``, ``benchmarks/``: not
package modules) as a module, to test its functions."""

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_script() -> Callable[[str], ModuleType]:
    """``repo_script("benchmarks/machines.py")``: that file, loaded as a fresh module."""

    def load(relpath: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(Path(relpath).stem, REPO / relpath)
        assert spec is not None and spec.loader is not None, relpath
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
