#!/usr/bin/env bash
# End-to-end tests of the browser front-end: starts a real `convscope serve` on a free
# loopback port with a temporary copy of the models folder (training from the page must
# not replace the committed model), drives the page in headless Chromium through
# playwright-core, stops the server and prints one line "[web] N ok, M failed".
# Screenshots of the main views go to build/screenshots/. Extra arguments go to e2e.mjs
# (--only TEXT runs the first case and those whose name contains TEXT).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/build/convscope"
chromium="${CHROMIUM:-/usr/bin/chromium}"

fail() { echo "web tests: $*" >&2; echo "[web] 0 ok, 1 failed"; exit 1; }

[ -x "$bin" ] || fail "$bin is missing; run make first"
[ -x "$chromium" ] || fail "$chromium is missing; apt-get install -y chromium"
command -v node >/dev/null || fail "node is missing; apt-get install -y nodejs npm"

# playwright-core from the lock file, installed once per lock and node version.
"$root/tests/npm_ci.sh" "$here" || fail "npm could not install playwright-core for node $(node --version)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/convscope-web.XXXXXX")
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/models"
if [ -f "$root/models/fmnist.csm" ]; then
  cp "$root/models/fmnist.csm" "$tmp/models/"
else
  # No committed model yet: a quick one is enough to exercise the page.
  "$bin" train --epochs 1 --limit 3000 --out "$tmp/models/fmnist.csm" >"$tmp/train.log" 2>&1 ||
    { tail -n 5 "$tmp/train.log" >&2; fail "could not train a model for the tests"; }
fi

# Two ONNX test models beside it, so the page is also tried on models that are not
# Fashion-MNIST: resnet (36x36 RGB, ten numbered classes, residual branches) and
# mobilenetv2 (48x48 RGB, layers of 96 channels: more than one page of 64).
for m in resnet mobilenetv2; do
  cp "$root/tests/data/models/$m.onnx" "$tmp/models/" || fail "tests/data/models/$m.onnx is missing"
done
# And a damaged file: listed with the reason it cannot be served, every other model working.
printf 'not an ONNX file' >"$tmp/models/broken.onnx"

# Port 0: the server picks a free port and says which in its log.
# start_server NAME [FLAGS...]: a server on a free port (port 0: the server picks one and
# names it in its log) over its own copy of the models; sets $base. HOME points into the
# temporary folder, so a VGG16 weights file in ~/.keras/models is not found and the page
# shows the service's reason for the missing model.
start_server() {
  local name=$1; shift
  mkdir -p "$tmp/$name"
  cp -r "$tmp/models" "$tmp/$name/models"
  HOME="$tmp" env -u CONVSCOPE_TOKEN -u CONVSCOPE_VGG16_WEIGHTS -u CONVSCOPE_LISTEN -u CONVSCOPE_MODELS \
    "$bin" serve --listen 127.0.0.1:0 --models "$tmp/$name/models" --static "$root/static" \
    --openapi "$root/openapi.yaml" --access-log off "$@" >"$tmp/$name/server.log" 2>&1 &
  servers+=($!)
  base=""
  for _ in $(seq 1 100); do
    base=$(grep -oE 'listening on http://[0-9.]+:[0-9]+' "$tmp/$name/server.log" | head -n 1 | sed 's/^listening on //')
    [ -n "$base" ] && return 0
    kill -0 "${servers[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$tmp/$name/server.log" >&2
  fail "the $name server did not start"
}
start_server open
open_base=$base
# A second server that wants a token for training, for the token prompt.
start_server locked --token web-test-token
locked_base=$base

mkdir -p "$root/build/screenshots"
rm -f "$root/build/screenshots"/failed-*.png
node "$here/e2e.mjs" --base "$open_base" --locked "$locked_base" --token web-test-token --root "$root" --shots "$root/build/screenshots" --chromium "$chromium" --tmp "$tmp" "$@"
rc=$?
if [ $rc -ne 0 ]; then echo "--- server log ---" >&2; tail -n 30 "$tmp/open/server.log" >&2; fi
exit $rc
