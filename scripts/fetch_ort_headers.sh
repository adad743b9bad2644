#!/usr/bin/env bash
# Fetch ONNX Runtime's C/C++ headers (they are not in the pip wheel) from Debian's
# libonnxruntime-dev package, suite trixie, through apt with the mirror this machine already
# uses. Headers only; the library itself comes from the onnxruntime wheel at run time.
#
# Usage: fetch_ort_headers.sh CACHE_DIR
# Prints the include directory (CACHE_DIR/root/usr/include/onnxruntime) on success.
set -euo pipefail

cache_dir=${1:?usage: fetch_ort_headers.sh CACHE_DIR}
include_dir="$cache_dir/root/usr/include/onnxruntime"
if [ -f "$include_dir/onnxruntime_c_api.h" ]; then
  echo "$include_dir"
  exit 0
fi
mkdir -p "$cache_dir/lists/partial" "$cache_dir/archives/partial"

# The mirror: the first URIs: line of a deb822 sources file, else the first deb line.
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror=$(awk '/^URIs:/ {print $2; exit}' "$f")
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
    /etc/apt/sources.list)
fi
if [ -z "$mirror" ]; then
  echo "fetch_ort_headers: no Debian mirror found in /etc/apt sources;" \
       "set ONNXRUNTIME_INCLUDE_DIR or install libonnxruntime-dev" >&2
  exit 1
fi
# A security mirror does not carry trixie/main: strip a trailing -security path.
mirror=${mirror%-security}

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
sources="$cache_dir/trixie.list"
echo "deb [signed-by=$keyring] $mirror trixie main" > "$sources"
apt_opts=(-o "Dir::Etc::SourceList=$sources" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$cache_dir/lists" -o "Dir::Cache::Archives=$cache_dir/archives"
          -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1")
apt-get "${apt_opts[@]}" update >&2
(cd "$cache_dir/archives" && apt-get "${apt_opts[@]}" download libonnxruntime-dev >&2)
deb=$(ls "$cache_dir"/archives/libonnxruntime-dev_*.deb | head -1)
dpkg -x "$deb" "$cache_dir/root"
if [ ! -f "$include_dir/onnxruntime_c_api.h" ]; then
  echo "fetch_ort_headers: $deb holds no onnxruntime_c_api.h" >&2
  exit 1
fi
echo "$include_dir"
