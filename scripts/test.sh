#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite (the docs build and its examples included),
# the linters, then the packaging and Python matrix (scripts/ci_matrix.sh: sdist and wheel built and
# checked, the wheel's unit tests and real-stack smoke on Python 3.11, 3.12 and 3.13). Arguments go
# to pytest and skip the matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
.venv/bin/ruff check src tests benchmarks docs
.venv/bin/mypy
echo "main suite: $((SECONDS - started)) s"
if [ $# -eq 0 ]; then
  bash scripts/ci_matrix.sh
fi
echo "scripts/test.sh took $((SECONDS - started)) s"
