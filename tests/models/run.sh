#!/usr/bin/env bash
# Parity of the committed test models with ONNX Runtime: runs ort_reference.mjs, which
# checks tests/data/models/*.onnx against the PyTorch outputs stored beside them, and
# prints its one line "[ort-parity] N ok, M failed".
# onnxruntime-node is installed from the lock file (tests/npm_ci.sh) with --ignore-scripts:
# its install script only fetches GPU providers, and the CPU library ships in the package.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

fail() { echo "ort-parity: $*" >&2; echo "[ort-parity] 0 ok, 1 failed"; exit 1; }

command -v node >/dev/null || fail "node is missing; apt-get install -y nodejs npm"
"$root/tests/npm_ci.sh" "$here" --ignore-scripts ||
  fail "npm could not install onnxruntime-node for node $(node --version)"
exec node "$here/ort_reference.mjs" --models "$here/../data/models"
