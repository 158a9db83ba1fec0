#!/usr/bin/env bash
# Set up a fresh clone: a virtualenv in .venv (Python 3.11 if there is one, else 3.10 or newer)
# with the package installed in editable mode, and
#   (no option)  the runtime dependencies only: what the demo needs (Ray Serve, ONNX Runtime,
#                NumPy, SciPy, pydantic, httpx, PyYAML, psycopg, click, rich); no torch, no tools;
#   --dev        the dev extra too: what the test command needs (torch, scikit-learn, pytest,
#                ruff, mypy, import-linter, ...);
#   --system     the Debian packages the tests use: prometheus, chromium, postgresql (apt-get).
# Idempotent and quick when nothing changed: a stamp per level in .venv, renewed when
# pyproject.toml changes. The dev level includes the runtime one, so the demo after the tests
# installs nothing; the tests after the demo add the dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0 system=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --system) system=1 ;;
    *) echo "usage: scripts/setup.sh [--dev] [--system]" >&2; exit 2 ;;
  esac
done

pick_python() {
  for c in "${PYTHON:-}" python3.11 python3.12 python3.13 python3.10 python3; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 10))' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  echo "rayrollout needs Python 3.10 or newer (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

# A stamp is current when it exists and pyproject.toml (the dependencies) is not newer.
current() { [ -f "$1" ] && [ ! pyproject.toml -nt "$1" ]; }

if [ ! -x .venv/bin/python ]; then
  python=$(pick_python)
  "$python" -m venv .venv
fi
runtime_stamp=.venv/.rayrollout-runtime
dev_stamp=.venv/.rayrollout-dev
if [ "$dev" = 1 ]; then
  if ! current "$dev_stamp"; then
    .venv/bin/python -m pip install -q --upgrade pip
    # torch==2.13.0 (pinned in the dev extra) is a CPU build; a looser range pulls a CUDA build.
    .venv/bin/python -m pip install -q -e ".[dev]"
    touch "$dev_stamp" "$runtime_stamp"
  fi
elif ! current "$runtime_stamp" && ! current "$dev_stamp"; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
  touch "$runtime_stamp"
fi

if [ "$system" = 1 ]; then
  need=()
  command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  # the store tests start a real PostgreSQL server from Debian's binaries
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
  fi
fi
