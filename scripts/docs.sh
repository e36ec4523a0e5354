#!/usr/bin/env bash
# Build the documentation site (Sphinx; warnings are errors) into docs/_build/html and print its
# file:// URL; opens it in a browser where there is a display. `--doctest` also runs the examples
# of the pages and docstrings against a virtual microphone (the test suite does this too).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/sphinx-build ] || bash scripts/setup.sh >&2
out=docs/_build/html
timeout 900 .venv/bin/python -m sphinx -E -W --keep-going -q -b html docs "$out"  # -E: every page's sidebar anew
if [ "${1:-}" = "--doctest" ]; then
  timeout 900 .venv/bin/python -m sphinx -W --keep-going -q -b doctest docs docs/_build/doctest
fi
url="file://$PWD/$out/index.html"
echo "$url"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && command -v xdg-open >/dev/null; then
  timeout 10 xdg-open "$url" >/dev/null 2>&1 || true
fi
