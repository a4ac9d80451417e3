#!/usr/bin/env bash
# Installs the Debian packages convscope needs when they are missing (as root), or
# prints the one apt-get line to run. Usage: scripts/deps.sh build|test|bench|fuzz
set -eu
need=(gcc make pkg-config libopenblas-dev libopenblas0-pthread zlib1g-dev libpng-dev
      libjansson-dev libmicrohttpd-dev libjpeg62-turbo-dev libhdf5-dev
      libcurl4-openssl-dev dataset-fashion-mnist libonnx-dev protobuf-c-compiler libprotobuf-c-dev libzip-dev
      libdnnl-dev libdeflate-dev)
case "${1:-build}" in
  test)  need+=(curl nginx wrk chromium nodejs npm wordnet-base libonnx-testdata) ;;
  bench) need+=(curl wrk nodejs npm python3-numpy python3-torch python3-torchvision python3-onnx) ;;
  # libFuzzer's runtime is only a recommendation of clang's.
  fuzz)  need+=(clang libclang-rt-14-dev) ;;
esac
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
# Node.js and npm may come from elsewhere than Debian; a working pair is enough. Debian 12's
# nodejs is 18.x: the test packages are pinned to versions whose "engines" accept it, and
# tests/npm_ci.sh refuses any that does not accept the node found here.
if command -v node >/dev/null && command -v npm >/dev/null; then
  kept=(); for p in "${missing[@]}"; do [ "$p" = nodejs ] || [ "$p" = npm ] || kept+=("$p"); done
  missing=("${kept[@]+"${kept[@]}"}")
  [ ${#missing[@]} -eq 0 ] && exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "convscope needs these Debian packages; run as root:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
