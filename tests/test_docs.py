"""The documentation site: it builds with warnings as errors, its API reference names every
public name, and the examples of its pages and docstrings run against the virtual microphone.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the docs extra: pip install -e '.[docs]'")
from sphinx.util.inventory import InventoryFile

from conftest import pulse_available

DOCS = Path(__file__).resolve().parent.parent / "docs"
PUBLIC_MODULES = ("micrec", "micrec.aio", "micrec.flet", "micrec.web", "micrec.backends")
PAGES = ("quickstart", "cli", "flet", "web", "deployment", "voice-activity", "segments", "dsp", "encoders",
         "benchmarks", "architecture", "streaming", "changelog", "api/index",
         "api/micrec", "api/aio", "api/flet", "api/web", "api/backends")
_BUILD_TIMEOUT = 900

pytestmark = pytest.mark.skipif(not DOCS.joinpath("conf.py").exists(), reason="no docs/ beside the tests")


def sphinx(builder: str, out: Path) -> subprocess.CompletedProcess[str]:
    """``sphinx-build -W --keep-going -b builder docs out``, as CI and scripts/docs.sh run it."""
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
                           str(DOCS), str(out)], capture_output=True, text=True, timeout=_BUILD_TIMEOUT,
                          env={**os.environ, "PYTHONWARNINGS": ""})


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs-html")
    result = sphinx("html", out)
    assert result.returncode == 0 and "WARNING" not in result.stderr, result.stderr[-4000:]
    return out


def _inventory(html: Path) -> set[str]:
    with open(html / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    items = inventory.data if hasattr(inventory, "data") else inventory  # Sphinx 8.2+: an object
    return {name for objects in items.values() for name in objects}


def test_site_builds_with_warnings_as_errors(html: Path) -> None:
    for page in PAGES:
        assert (html / f"{page}.html").is_file(), page
    assert "AudioRecorder" in (html / "api" / "micrec.html").read_text()


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_in_the_reference(html: Path, module_name: str) -> None:
    module = importlib.import_module(module_name)
    documented = _inventory(html)
    missing = [name for name in module.__all__ if f"{module_name}.{name}" not in documented]
    assert not missing, f"{module_name}.__all__ names missing from docs/api: {missing}"


@pytest.mark.pulse
@pytest.mark.skipif(not pulse_available(), reason="the examples record from a virtual microphone (PulseAudio)")
def test_examples_run_against_the_virtual_microphone(tmp_path: Path) -> None:
    result = sphinx("doctest", tmp_path)
    report = (tmp_path / "output.txt").read_text() if (tmp_path / "output.txt").exists() else ""
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    ran = sum(int(n) for n in re.findall(r"^\s*(\d+) tests?$", report, flags=re.MULTILINE))
    assert ran >= 20, report[-3000:]
    assert "0 failures in tests" in report and "0 failures in setup code" in report, report[-3000:]
