#!/usr/bin/env bash
# The whole test suite: set up if needed (the dev extra, the Debian packages), then three parts
# at once:
#   static  ruff, mypy, the import contracts (lint-imports)    background, log printed at the end
#   unit    pytest tests/unit: pure, no Ray                     background, log printed at the end
#   integration  pytest tests/integration: one local Ray        foreground, streamed live
# The background parts run at the lowest CPU priority (nice 19): Ray runs its workers at nice
# 15, so anything less nice would take the CPU from the integration tests' replicas. Exit
# status 0 when every part passed, else 1, and the summary names the parts that failed.
#
# With arguments, one pytest run of just those, as before (no static checks), e.g.
#   ./scripts/test.sh tests/unit/test_layout.py -k contracts
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev --system
export RAY_USAGE_STATS_ENABLED=0 RAY_SERVE_LOG_TO_STDERR=0
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider)

if [ $# -gt 0 ]; then
  exec "${pytest[@]}" "$@"
fi

static() {
  local rc=0
  echo "+ ruff check"; .venv/bin/ruff check --output-format concise . || rc=1
  echo "+ mypy"; .venv/bin/mypy rayrollout tests benchmarks examples || rc=1
  # the architecture's import contracts (pyproject.toml)
  echo "+ lint-imports"; .venv/bin/lint-imports --no-cache || rc=1
  return "$rc"
}

logs=$(mktemp -d "${TMPDIR:-/tmp}/rayrollout-test.XXXXXX")
parts=(static unit)
declare -A pid rc
# Each background part leads its own process group (set -m), so that an interrupted run stops
# it and everything it started, and nothing else.
set -m
(renice -n 19 -p "$BASHPID" >/dev/null 2>&1 || true; static) </dev/null >"$logs/static.log" 2>&1 &
pid[static]=$!
nice -n 19 "${pytest[@]}" tests/unit </dev/null >"$logs/unit.log" 2>&1 &
pid[unit]=$!
set +m
stop_background() {
  for p in "${parts[@]}"; do
    kill -- "-${pid[$p]}" 2>/dev/null || true
  done
}
trap stop_background INT TERM

echo "static checks and unit tests running in the background (logs in $logs); integration tests:"
set +e
"${pytest[@]}" --durations=25 tests/integration
rc[integration]=$?
for p in "${parts[@]}"; do
  wait "${pid[$p]}"
  rc[$p]=$?
done
set -e
trap - INT TERM

for p in "${parts[@]}"; do
  echo
  echo "==================================== $p ($logs/$p.log) ===================================="
  cat "$logs/$p.log"
done
echo
failed=()
for p in "${parts[@]}" integration; do
  if [ "${rc[$p]}" -eq 0 ]; then echo "$p: passed"; else echo "$p: FAILED (exit ${rc[$p]})"; failed+=("$p"); fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "test command FAILED: ${failed[*]}"
  exit 1
fi
echo "test command passed: static checks, unit tests, integration tests"
