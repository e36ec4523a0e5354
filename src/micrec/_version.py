"""micrec's version, as the installed distribution's metadata states it."""

from __future__ import annotations

import functools

# What a copy that was never installed (a bare source tree on sys.path) reports.
UNKNOWN_VERSION = "0+unknown"


@functools.cache
def package_version() -> str:
    """The version of the installed ``micrec`` distribution, or ``"0+unknown"`` without one."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("micrec")
    except PackageNotFoundError:
        return UNKNOWN_VERSION
