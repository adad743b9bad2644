#!/usr/bin/env bash
# Build and run the C++ unit tests (csrc/tests) with ctest, optionally under a sanitizer.
# Usage: scripts/native_tests.sh [thread | address,undefined]
# Needs the .venv of scripts/setup.sh (for onnxruntime's library and the model generator).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python="$root/.venv/bin/python"
sanitize=${1:-}
build_dir="$root/build/native-tests${sanitize:+-${sanitize//,/-}}"
ort_library=$("$python" -c 'from engine._runtime import find_ort_library; print(find_ort_library())')
"$python" "$root/tests/native/make_models.py" "$build_dir/models"
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DENGINE_BUILD_PYTHON=OFF -DENGINE_BUILD_TESTS=ON -DENGINE_WERROR=ON \
  -DENGINE_SANITIZE="${sanitize//,/;}" \
  -DENGINE_TEST_ORT_LIBRARY="$ort_library" -DENGINE_TEST_MODEL_DIR="$build_dir/models" >/dev/null
cmake --build "$build_dir" -j 2
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/csrc/tests/tsan.supp"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"
# ORT's own allocations are not ours to police: leaks inside libonnxruntime are not reported.
export ASAN_OPTIONS="detect_leaks=0"
ctest --test-dir "$build_dir" --output-on-failure -j 2
