#!/usr/bin/env bash
# Create .venv and install cityagent with the tested version set (constraints.txt). Idempotent; ~3 min fresh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, from the CPU build on this machine's disk; later pins cannot pull a CUDA build then.
.venv/bin/pip install -q -c constraints.txt "torch==2.13.0" 2> >(grep -v "^WARNING: Location" >&2)
.venv/bin/pip install -q -c constraints.txt -e ".[test,serve,agent,notebook]" 2> >(grep -v "^WARNING: Location" >&2)
.venv/bin/python -c "import cityagent, torch; print('cityagent', cityagent.__version__, 'with torch', torch.__version__)"
