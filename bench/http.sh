#!/usr/bin/env bash
# bench/http.sh BINARY - HTTP throughput and latency of `convscope serve` with wrk.
#
# Starts the server on a free loopback port with the served model (models/fmnist.csm,
# else a quickly trained one), then POSTs a 28x28 PNG to predict at 1, 16 and 64
# connections and a Grad-CAM overlay at 16, and prints one table: requests per second,
# median and 99th-percentile latency, failed requests (non-200 or socket errors).
# Target on 2 cores: >= 5000 predictions/s at 64 connections, p99 < 50 ms, 0 failed.
#
# Environment: BENCH_SECONDS (default 8), BENCH_ARGS (extra serve flags, e.g.
# "--http-mode thread" or "--blas-threads 2" to compare).
set -euo pipefail
bin=${1:-build/convscope}
secs=${BENCH_SECONDS:-8}
command -v wrk >/dev/null || { echo "bench/http.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d -t convscope-bench-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

mkdir -p "$tmp/models"
if [ -f models/fmnist.csm ]; then cp models/fmnist.csm "$tmp/models/"
elif [ -f build/tests/api-fixture.csm ]; then cp build/tests/api-fixture.csm "$tmp/models/fmnist.csm"
else "$bin" train --epochs 1 --limit 2000 --out "$tmp/models/fmnist.csm" >/dev/null; fi

# shellcheck source=bench/serve.sh
. "$here/serve.sh"
# shellcheck disable=SC2086
start_server "$bin" --no-vgg16 ${BENCH_ARGS:-}
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$base/v1/datasets/fashion-mnist/test/18.png" -o "$tmp/bag.png"
export BENCH_IMAGE=$tmp/bag.png BENCH_TYPE=image/png

run() { # name connections path
  local threads=2; [ "$2" -lt 2 ] && threads=1
  local line
  line=$(wrk -t"$threads" -c"$2" -d"${secs}s" --latency -s "$here/post_image.lua" "$base$3" | grep '^BENCH' || true)
  [ -n "$line" ] || { printf '%-28s %5s  wrk failed\n' "$1" "$2"; return; }
  eval "$(sed -E 's/^BENCH //' <<<"$line")"
  printf '%-28s %5d %10.0f %9.2f %9.2f %9d\n' "$1" "$2" "$rps" "$p50" "$p99" $((non200 + sockerr))
}

echo "convscope HTTP bench: $(nproc) cores, ${secs}s per row, $(grep -o '(pool.*\|(thread.*\|(epoll.*' "$tmp/server.log" | head -1)"
printf '%-28s %5s %10s %9s %9s %9s\n' "request" "conns" "req/s" "p50 ms" "p99 ms" "failed"
run "predict 28x28 PNG" 1 /v1/models/fmnist/predict
run "predict 28x28 PNG" 16 /v1/models/fmnist/predict
run "predict 28x28 PNG" 64 /v1/models/fmnist/predict
run "gradcam overlay 540x540" 16 /v1/models/fmnist/gradcam
run "gradcam json" 16 "/v1/models/fmnist/gradcam?format=json"
