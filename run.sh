#!/usr/bin/env bash
# Run the tierflow service on the embedded default (a SQLite file, ./tierflow.db) with a demo
# account, at http://127.0.0.1:8000 (API docs at /docs). Installs what it needs first.
# Extra arguments go to `tierflow serve` (e.g. ./run.sh --port 9000).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/tierflow serve --demo "$@"
