#!/usr/bin/env bash
# Install everything (worker + dev extras) into .venv and run lint, types and the test suite.
set -euo pipefail
source "$(dirname "$0")/_venv.sh" "worker,dev"
ruff check headshots tests bench
ruff format --check headshots tests bench
mypy
pytest "$@"
