#!/usr/bin/env bash
# Installs what tierflow needs on a fresh Debian-like machine, idempotently:
# Graphviz's `dot` (Debian package) when missing, a virtualenv in .venv, and the project with
# its dev extras, at the versions of requirements.lock. Re-running is cheap: pip runs again only
# when pyproject.toml or requirements.lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v dot >/dev/null 2>&1; then
  echo "setup: installing Graphviz (dot)"
  apt_install graphviz
fi

# Debian's Chromium for the browser test (Playwright drives it; it never downloads a browser)
if [ "${TIERFLOW_BROWSER_TESTS:-}" = "1" ] && [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing Chromium for the browser tests"
  apt_install chromium
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi

# Dependencies come from requirements.lock (exact versions, refreshed by scripts/lock.sh); the
# project itself is installed editable on top, without re-resolving them.
stamp=".venv/.tierflow-setup"
want="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing tierflow and its pinned dependencies (requirements.lock) into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
