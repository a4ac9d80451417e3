#!/usr/bin/env bash
# Parity of the committed test models with ONNX Runtime: runs ort_reference.mjs, which
# checks tests/data/models/*.onnx against the PyTorch outputs stored beside them, and
# prints its one line "[ort-parity] N ok, M failed".
# onnxruntime-node is installed once from the lock file with --ignore-scripts: its install
# script only fetches GPU providers, and the CPU library ships in the package.
set -u
here=$(cd "$(dirname "$0")" && pwd)

fail() { echo "ort-parity: $*" >&2; echo "[ort-parity] 0 ok, 1 failed"; exit 1; }

command -v node >/dev/null || fail "node is missing; apt-get install -y nodejs npm"
if [ ! -f "$here/node_modules/onnxruntime-node/package.json" ]; then
  command -v npm >/dev/null || fail "npm is missing; apt-get install -y npm"
  (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline) >"$here/npm.log" 2>&1 ||
    fail "npm could not install onnxruntime-node (see tests/models/npm.log)"
fi
exec node "$here/ort_reference.mjs" --models "$here/../data/models"
