#!/usr/bin/env bash
# The whole test suite: set up if needed (Debian packages included), lint, type-check, check
# the import contracts, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system
export RAY_USAGE_STATS_ENABLED=0 RAY_SERVE_LOG_TO_STDERR=0
.venv/bin/ruff check --output-format concise .
.venv/bin/mypy rayrollout tests benchmarks
.venv/bin/lint-imports --no-cache  # the architecture's import contracts (pyproject.toml)
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
