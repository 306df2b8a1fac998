#!/usr/bin/env bash
# Installs what tierflow needs on a fresh Debian-like machine, idempotently:
# Graphviz's `dot` (Debian package) when missing, a virtualenv in .venv, and the project with
# its dev extras. Re-running is cheap: pip runs again only when pyproject.toml changed.
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

stamp=".venv/.tierflow-setup"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing tierflow and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
