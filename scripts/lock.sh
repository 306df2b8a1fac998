#!/usr/bin/env bash
# Refresh requirements.lock, the pinned versions every install uses (./run.sh, ./test.sh, CI),
# from pyproject.toml's ranges with uv's resolver. Run it after changing a dependency, review the
# diff (a `holidays` upgrade changes business calendars of new definition versions), commit both.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION="0.13.9"
if [ ! -x .venv/bin/python ]; then "${PYTHON:-python3}" -m venv .venv; fi
if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  .venv/bin/python -m pip install -q "uv==$UV_VERSION"
fi
.venv/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
  --no-header --quiet "$@" -o requirements.lock
sed -i '1i # Pinned by scripts/lock.sh (uv pip compile pyproject.toml --extra dev); do not edit.' \
  requirements.lock
echo "lock: requirements.lock refreshed"
