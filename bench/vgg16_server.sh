#!/usr/bin/env bash
# bench/vgg16_server.sh BINARY - the server's peak resident memory and Grad-CAM latency
# while two clients ask for VGG16 Grad-CAM overlays at once.
#
# The weights are random, written in the Keras layout by build/bench/vgg16
# --write-weights (the real file cannot be downloaded here; size and speed are the same).
# Bar: peak RSS under 800 MiB (the weights alone are 528 MiB).
set -euo pipefail
bin=${1:-build/convscope}
rounds=${BENCH_ROUNDS:-6}
tmp=$(mktemp -d -t convscope-vggbench-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

mkdir -p "$tmp/models"
cp models/fmnist.csm "$tmp/models/"
build/bench/vgg16 --write-weights "$tmp/models/vgg16_weights_tf_dim_ordering_tf_kernels.h5" >/dev/null
# shellcheck source=bench/serve.sh
. "$(dirname "$0")/serve.sh"
start_server "$bin"
for _ in $(seq 600); do
  [ "$(curl -s -X POST -o /dev/null -w "%{http_code}" "$base/v1/models/vgg16/predict?sample=test:0")" = 200 ] && break
  sleep 0.2
done
rss_loaded=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")

client() {
  for _ in $(seq "$rounds"); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -F image=@tests/data/photos/chelsea.png "$base/v1/models/vgg16/gradcam"
  done > "$tmp/client$1"
}
start=$(date +%s.%N)
client 1 & c1=$!
client 2 & c2=$!
wait $c1 $c2
end=$(date +%s.%N)
peak=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
failed=$(cat "$tmp"/client* | awk '$1 != 200' | wc -l)
med=$(awk '{print $2}' "$tmp"/client* | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}')
printf 'vgg16 server: weights loaded %d MiB RSS; two clients x %d Grad-CAM overlays of a 451x300 photo\n' "$rss_loaded" "$rounds"
printf 'vgg16 server: median %.0f ms per request, %.2f requests/s, %d failed, peak RSS %d MiB (bar: < 800 MiB: %s)\n' \
  "$(awk -v m="$med" 'BEGIN {print m * 1000}')" "$(awk -v n="$rounds" -v a="$start" -v b="$end" 'BEGIN {print 2 * n / (b - a)}')" "$failed" "$peak" \
  "$([ "$peak" -lt 800 ] && echo met || echo MISSED)"
