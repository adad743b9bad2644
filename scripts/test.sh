#!/usr/bin/env bash
# The test command: set-up, the C++ unit tests (ctest), then the Python suite (pytest).
# Extra arguments go to pytest, e.g. scripts/test.sh -k batcher.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/native_tests.sh"
cd "$root"
# Lint first: it takes a second, and fails before the long suite runs.
.venv/bin/ruff check --quiet engine server training tests benchmarks scripts
.venv/bin/python -m pytest -q "$@"
