#!/usr/bin/env bash
# Install headshots (worker extra) into .venv, check the setup, and run everything on this machine:
# an embedded Redis (unless HEADSHOTS_REDIS_URL is set), one worker, and every bot with a token.
set -euo pipefail
source "$(dirname "$0")/_venv.sh" "worker"
headshots doctor || echo "headshots doctor found problems (see above); starting anyway" >&2
exec headshots up "$@"
