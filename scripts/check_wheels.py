"""CI: micrec's dependencies, every extra included, resolve to wheels on every desktop platform.

For each platform (Windows x86_64, macOS arm64 and x86_64, Linux x86_64) and Python 3.11-3.13,
the requirements of ``micrec[<every extra but test and docs>]`` are read from pyproject.toml,
their markers evaluated for that platform, and resolved by ``pip install --dry-run
--only-binary=:all: --platform ... --python-version ... --target ...`` (what ``pip download``
checks, from the wheels' metadata alone, without downloading them), which fails when any of them
(or of their own dependencies) has no wheel there. pip evaluates the markers of the dependencies' own
requirements for the machine it runs on, not the target: a gap in a Windows-only dependency of
a dependency would not be seen.

Usage: ``python scripts/check_wheels.py [--python 3.12 ...] [--platform win_amd64 ...]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import cast

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
#: pip platform tags (older compatible ones are implied) and the marker values of each platform.
PLATFORMS: dict[str, tuple[list[str], dict[str, str]]] = {
    "win_amd64": (["win_amd64"], {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
                                   "platform_machine": "AMD64"}),
    "macos_arm64": (["macosx_14_0_arm64"], {"sys_platform": "darwin", "platform_system": "Darwin",
                                            "os_name": "posix", "platform_machine": "arm64"}),
    "macos_x86_64": (["macosx_14_0_x86_64"], {"sys_platform": "darwin", "platform_system": "Darwin",
                                              "os_name": "posix", "platform_machine": "x86_64"}),
    # pip expands macOS tags to the older versions, but not manylinux ones: glibc 2.28 (Debian 10+,
    # RHEL 8+) and every older tag a wheel may carry.
    "linux_x86_64": ([f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)]
                     + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"],
                     {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                      "platform_machine": "x86_64"}),
}
PYTHONS = ("3.11", "3.12", "3.13")
NOT_SHIPPED = {"test", "docs"}  # development extras, not what users install


def requirements(platform: str, python: str) -> list[str]:
    """micrec's own requirements (base and every shipped extra) that apply on ``platform``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra, reqs in project["optional-dependencies"].items():
        if extra not in NOT_SHIPPED:
            lines += reqs
    env: dict[str, str] = {**cast("dict[str, str]", default_environment()), **PLATFORMS[platform][1],
                           "python_version": python, "python_full_version": f"{python}.0", "extra": ""}
    found = []
    for line in lines:
        req = Requirement(line)
        if req.name == "micrec" or (req.marker is not None and not req.marker.evaluate(env)):
            continue  # micrec[...] self-references are expanded above; markers for elsewhere are dropped
        req.marker = None
        found.append(str(req))
    return sorted(set(found))


def check(platform: str, python: str, dest: Path) -> bool:
    tags = [arg for tag in PLATFORMS[platform][0] for arg in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
               "--only-binary=:all:", *tags, "--python-version", python, "--implementation", "cp",
               "--target", str(dest / f"{platform}-{python}"), *requirements(platform, python)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    status = "ok" if result.returncode == 0 else "NO WHEELS"
    print(f"{platform} Python {python}: {status}", flush=True)
    if result.returncode:
        print(result.stderr.strip()[-3000:])
    return result.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", choices=PYTHONS)
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="micrec-wheels-") as dest:
        results = [check(platform, python, Path(dest)) for platform in args.platform or PLATFORMS
                   for python in args.python or PYTHONS]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
