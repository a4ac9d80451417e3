#!/usr/bin/env bash
# ONNX export against ONNX Runtime: test_onnx_export exports every model of its list
# (the notebook's network, the committed ONNX and Keras test models, graphs of every
# layer kind) with its own outputs into a scratch folder, and export_check.mjs runs
# them in ONNX Runtime. Prints its one line "[onnx-export] N ok, M failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

fail() { echo "onnx-export: $*" >&2; echo "[onnx-export] 0 ok, 1 failed"; exit 1; }

bin="$root/build/tests/test_onnx_export"
[ -x "$bin" ] || fail "$bin is missing; run make test"
command -v node >/dev/null || fail "node is missing; apt-get install -y nodejs npm"
"$root/tests/npm_ci.sh" "$here" --ignore-scripts ||
  fail "npm could not install onnxruntime-node for node $(node --version)"
dir=$(mktemp -d "${TMPDIR:-/tmp}/convscope-onnx-export-XXXXXX") || fail "no scratch folder"
trap 'rm -rf "$dir"' EXIT
(cd "$root" && "$bin" --write "$dir" >/dev/null 2>"$dir/export.log") ||
  { cat "$dir/export.log" >&2; fail "test_onnx_export --write failed"; }
node "$here/export_check.mjs" "$dir"
