#!/usr/bin/env bash
# Browser tests of "The whole picture" (static/insight.js and its views): starts a real
# `convscope serve` over a temporary copy of the models folder, and a second one that
# wants a token, drives the page in headless Chromium through playwright-core (installed
# as for run.sh) and prints one line "[web-insight] N ok, M failed". Screenshots go to
# build/screenshots/insight-*.png.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/build/convscope"
chromium="${CHROMIUM:-/usr/bin/chromium}"

fail() { echo "web-insight tests: $*" >&2; echo "[web-insight] 0 ok, 1 failed"; exit 1; }
[ -x "$bin" ] || fail "$bin is missing; run make first"
[ -x "$chromium" ] || fail "$chromium is missing; apt-get install -y chromium"
command -v node >/dev/null || fail "node is missing; apt-get install -y nodejs npm"
"$root/tests/npm_ci.sh" "$here" || fail "npm could not install playwright-core for node $(node --version)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/convscope-web-insight.XXXXXX")
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -f "$root/models/fmnist.csm" ] || fail "models/fmnist.csm is missing"
start_server() {
  local name=$1; shift
  mkdir -p "$tmp/$name/models"
  cp "$root/models/fmnist.csm" "$tmp/$name/models/"
  HOME="$tmp" env -u CONVSCOPE_TOKEN -u CONVSCOPE_VGG16_WEIGHTS -u CONVSCOPE_LISTEN -u CONVSCOPE_MODELS \
    "$bin" serve --listen 127.0.0.1:0 --models "$tmp/$name/models" --static "$root/static" \
    --openapi "$root/openapi.yaml" --access-log off --no-vgg16 "$@" >"$tmp/$name/server.log" 2>&1 &
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
start_server locked --token insight-token
locked_base=$base
mkdir -p "$root/build/screenshots"
node "$here/insight.mjs" --base "$open_base" --locked "$locked_base" --token insight-token \
  --shots "$root/build/screenshots" --chromium "$chromium" --tmp "$tmp" "$@"
rc=$?
if [ $rc -ne 0 ]; then echo "--- server log ---" >&2; tail -n 30 "$tmp/open/server.log" >&2; fi
exit $rc
