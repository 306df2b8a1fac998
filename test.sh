#!/usr/bin/env bash
# Run the whole test suite. Installs what it needs first. Extra arguments go to pytest.
# TIERFLOW_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test also runs every
# database test on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")"
export TIERFLOW_BROWSER_TESTS=1  # the designer-page test drives Debian's Chromium
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
