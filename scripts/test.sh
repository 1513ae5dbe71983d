#!/usr/bin/env bash
# Install, then run the default test suite (slow checks are marked and excluded; run them with -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/services.sh
export CITYAGENT_HOME="${CITYAGENT_HOME:-$(mktemp -d)/home}"
.venv/bin/ruff check .
.venv/bin/python -m pytest -m "not slow" --timeout 900 "$@"
