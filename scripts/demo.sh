#!/usr/bin/env bash
# Set up (scripts/setup.sh) and record a few seconds with `micrec demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/micrec demo "$@"
