#!/usr/bin/env bash
# The main job: set-up, then serve the demo model over gRPC (KServe v2) until Ctrl-C.
# Extra arguments go to `engine serve`, e.g. scripts/run.sh --grpc-port 9001.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
exec "$root/.venv/bin/engine" serve --demo "$@"
