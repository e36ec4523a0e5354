"""Lazy imports of optional libraries, with an install hint when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

_HINTS = {
    "core": "pip install micrec",
}


def require(module: str, *, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise ImportError saying which package (and micrec extra) brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module
        how = _HINTS.get(extra, f"pip install 'micrec[{extra}]'")
        raise ImportError(f"{module} is needed for this: {how} (or pip install {pkg}); "
                          f"importing it failed with: {exc}") from exc
