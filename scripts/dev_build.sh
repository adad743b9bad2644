#!/usr/bin/env bash
# Rebuild engine._core incrementally for development and put it where the editable install
# imports it from. Takes a lock, since several people may build one work tree at once.
# First run (no build yet): a full `pip install -e .` of the package into .venv.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python="$root/.venv/bin/python"
mkdir -p "$root/build"
exec 9>"$root/build/.dev_build.lock"
flock 9
build_dir=$(ls -d "$root"/build/cp3* 2>/dev/null | head -1 || true)
if [ -z "$build_dir" ] || { [ ! -f "$build_dir/build.ninja" ] && [ ! -f "$build_dir/Makefile" ]; }; then
  "$python" -m pip install --no-build-isolation -e "$root" >&2
  exit 0
fi
cmake --build "$build_dir" -j 2
site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
# Copy then rename: processes that have the old library mapped keep its inode intact
# (overwriting it in place crashes them).
for so in "$build_dir"/_core*.so; do
  name=$(basename "$so")
  cp "$so" "$site/engine/.$name.tmp"
  mv -f "$site/engine/.$name.tmp" "$site/engine/$name"
done
