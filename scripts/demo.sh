#!/usr/bin/env bash
# The main job: set up if needed (the package and its runtime dependencies: no torch, no test
# tools), then run the demo on an embedded local Ray.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_USAGE_STATS_ENABLED=0 RAY_SERVE_LOG_TO_STDERR=0
exec .venv/bin/rayrollout demo "$@"
