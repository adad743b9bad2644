#!/usr/bin/env bash
# Set-up for a fresh machine, safe to run again: Debian packages the build and the tests need,
# a virtual environment at .venv, and the package installed into it (editable) with its extras,
# which builds engine._core (CMake fetches ONNX Runtime's headers if none are installed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# grpc++/protobuf (and the abseil they build on) for the C++ server, GoogleTest for the C++
# tests, h2load for the load benchmark, PostgreSQL for the registry's server-database tests.
apt_packages=(build-essential libgrpc++-dev libprotobuf-dev libabsl-dev protobuf-compiler-grpc libgtest-dev
              nghttp2-client postgresql)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
py=.venv/bin/python
$py -m pip install -q --upgrade pip
# Build requirements (installed here because the editable install builds without isolation,
# which makes rebuilds incremental).
$py -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
# torch is pinned (train extra) to the CPU build; a plain `torch` would pull CUDA wheels.
$py -m pip install -q --no-build-isolation -e ".[cpu,train,monitor,postgres,objectstore,test]"
$py -c "import engine, engine._core; print('setup: engine', engine.__version__, 'ready')"
