#!/usr/bin/env bash
# tests/deploy/scaleout_test.sh - several replicas behind nginx, as docker/compose.yaml
# runs them, without Docker: three `convscope serve` processes on loopback ports share
# one models folder, and nginx runs docker/nginx.conf itself, rendered for those ports
# (only the marked upstream server lines and the runtime paths change, so the test and
# the compose file cannot drift apart).
#
# Checks: the API through nginx (health, models, predictions from a sample and from an
# uploaded PNG, Grad-CAM, 404 and 413 passing through as JSON, training and job polling
# pinned to the trainer); no client request fails while wrk posts predictions and one
# replica is SIGKILLed and restarted (nginx resends them); a new model file renamed into
# the shared folder is served by every replica within seconds, and a corrupt one by none.
#
# Prints one line "[scaleout] N ok, M failed" on standard output (details and FAIL lines
# on standard error) and exits non-zero on failure. Needs nginx, wrk and curl
# (scripts/deps.sh test); listens on 127.0.0.1 only; about 40 s.
#
# SCALEOUT_COMPOSE=PROJECT runs the same checks on docker/compose.yaml brought up for real
# (docker_test.sh does, as compose project PROJECT): through its nginx at SCALEOUT_LB,
# with SCALEOUT_TOKEN for training; the replicas are the project's containers, reached
# with docker exec, one is killed by its process ID and restarted by Docker's restart
# policy, and new model files are written into the shared volume through the trainer.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${CONVSCOPE_BIN:-build/convscope}
here=tests/deploy
tmp=$(mktemp -d -t convscope-scaleout-XXXXXX)
models=$tmp/models
pids=()            # every process this script started, killed by PID at the end
replica_pid=()     # by replica index
replica_port=()
compose=${SCALEOUT_COMPOSE:-}
replica_cid=()     # compose: containers by replica index (0: the trainer)
# shellcheck source=tests/deploy/lib.sh
. tests/deploy/lib.sh
t_start=$(date +%s)

cleanup() {
  local rc=$?
  set +e
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]+"${pids[@]}"}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
  if [ "$bad" -ne 0 ]; then
    for f in "$tmp"/replica*.err "$tmp"/nginx/error.log; do
      [ -s "$f" ] && { log "--- $f"; tail -n 15 "$f" >&2; }
    done
  fi
  log "took $(($(date +%s) - t_start)) s"
  if [ -n "${SCALEOUT_KEEP:-}" ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  echo "[scaleout] $ok ok, $bad failed"
  [ "$bad" -eq 0 ] || exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need=(wrk curl)
[ -n "$compose" ] || need+=(nginx)
for c in "${need[@]}"; do command -v "$c" >/dev/null || die "$c is not installed (scripts/deps.sh test)"; done
[ -x "$bin" ] || die "$bin is not built (make build/convscope)"

# Replica I, directly (not through nginx): rget I PATH prints the body, rstatus I PATH
# the status. A process on its loopback port, or a container through docker exec.
rget() {
  if [ -n "$compose" ]; then docker exec "${replica_cid[$1]}" curl -s --max-time 10 "http://127.0.0.1:8080$2" || true
  else curl -s --max-time 10 "http://127.0.0.1:${replica_port[$1]}$2" || true; fi
}
rstatus() {
  if [ -n "$compose" ]; then
    docker exec "${replica_cid[$1]}" curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:8080$2" ||
      echo 000
  else req /dev/null "http://127.0.0.1:${replica_port[$1]}$2"; fi
}
# predictions_served I: the predictions replica I has logged.
predictions_served() {
  if [ -n "$compose" ]; then docker logs "${replica_cid[$1]}" 2>/dev/null | grep -c ' POST /v1/models/fmnist/predict ' || true
  else cat "$tmp"/replica"$1".access.* 2>/dev/null | grep -c ' POST /v1/models/fmnist/predict ' || true; fi
}
# put_model FILE: into the shared folder under a temporary name, then renamed over the
# served file, as a trainer or an operator does.
put_model() {
  if [ -n "$compose" ]; then
    docker exec -i "${replica_cid[0]}" sh -c \
      'cat >/models/.fmnist.csm.incoming && mv -f /models/.fmnist.csm.incoming /models/fmnist.csm' <"$1"
  else
    cp "$1" "$models/.fmnist.csm.incoming"
    mv -f "$models/.fmnist.csm.incoming" "$models/fmnist.csm"
  fi
}
auth=()
[ -n "$compose" ] && auth=(-H "Authorization: Bearer ${SCALEOUT_TOKEN:?SCALEOUT_TOKEN}")

# --- the shared models folder and the replicas ----------------------------------------------
mkdir -p "$models" "$tmp/staging"
if [ -f models/fmnist.csm ]; then cp models/fmnist.csm "$models/"
elif [ -f build/tests/api-fixture.csm ]; then cp build/tests/api-fixture.csm "$models/fmnist.csm"
else "$bin" train --epochs 1 --limit 2000 --seed 1 --out "$models/fmnist.csm" >"$tmp/train0.log" 2>&1 ||
  die "training a starting model"; fi
# The model that will replace it, trained meanwhile (a seed no other model here has).
"$bin" train --epochs 1 --limit 2000 --seed 4242 --out "$tmp/staging/new.csm" >"$tmp/train1.log" 2>&1 &
train_pid=$!; pids+=("$train_pid")

# start_replica INDEX PORT: PORT 0 picks a free one; a restart passes the port it had,
# because nginx's upstream lists fixed addresses.
start_replica() {
  local i=$1 port=$2 err=$tmp/replica$1.err
  : >"$err"
  "$bin" serve --listen "127.0.0.1:$port" --models "$models" --no-vgg16 --threads 2 \
    --access-log "$tmp/replica$i.access.$(date +%s%N)" 2>>"$err" &
  replica_pid[$i]=$!; pids+=("$!")
  for _ in $(seq 100); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$err" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    kill -0 "${replica_pid[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] && [ "$port" != 0 ] || return 1
  replica_port[$i]=$port
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && return 0; sleep 0.1; done
  return 1
}
if [ -n "$compose" ]; then
  # The project's replicas by their compose number, and its trainer as replica 0.
  containers_of() {
    docker ps -q --filter "label=com.docker.compose.project=$compose" --filter "label=com.docker.compose.service=$1" |
      while read -r c; do echo "$(docker inspect -f '{{index .Config.Labels "com.docker.compose.container-number"}}' "$c") $c"; done |
      sort -n | cut -d' ' -f2
  }
  mapfile -t found < <(containers_of convscope)
  [ "${#found[@]}" = 3 ] || die "compose project $compose runs ${#found[@]} replicas, not 3"
  replica_cid=("$(containers_of trainer)" "${found[@]}")
  [ -n "${replica_cid[0]}" ] || die "compose project $compose has no trainer"
  for i in 1 2 3; do
    [ "$(rstatus "$i" /readyz)" = 200 ] || die "replica $i (${replica_cid[$i]}) is not ready"
  done
  log "replicas: containers ${replica_cid[*]:1} (trainer ${replica_cid[0]})"
else
for i in 1 2 3; do start_replica "$i" 0 || die "replica $i did not become ready"; done
log "replicas on ports ${replica_port[*]}"

# --- nginx: docker/nginx.conf rendered for these ports ---------------------------------------
# The parameters after the name on the marked lines ("max_fails=2 fail_timeout=5s;").
params=$(sed -n 's/^ *server [^ ]* \(.*;\) *# @replicas$/\1/p' docker/nginx.conf)
tparams=$(sed -n 's/^ *server [^ ]* \(.*;\) *# @trainer$/\1/p' docker/nginx.conf)
[ -n "$params" ] && [ -n "$tparams" ] || die "docker/nginx.conf lost its @replicas or @trainer line"
servers=
for i in 1 2 3; do servers+="        server 127.0.0.1:${replica_port[$i]} $params\n"; done
mkdir -p "$tmp/nginx"
chmod 0755 "$tmp" "$tmp/nginx" # nginx's workers (nobody, when started as root) write temp files here
# render_nginx PORT: docker/nginx.conf for these replicas, listening on 127.0.0.1:PORT.
render_nginx() {
  sed -e "s|^ *server [^ ]* .*# @replicas\$|$servers|" \
      -e "s|^ *server [^ ]* .*# @trainer\$|        server 127.0.0.1:${replica_port[1]} $tparams|" \
      -e "s|^\( *listen \)8080;|\1127.0.0.1:$1;|" \
      -e "s|/tmp/|$tmp/nginx/|g" -e "s|/var/log/nginx/|$tmp/nginx/|g" \
      docker/nginx.conf >"$tmp/nginx/nginx.conf"
  grep -q "listen 127.0.0.1:$1;" "$tmp/nginx/nginx.conf" || die "rendering docker/nginx.conf (listen)"
  [ "$(grep -c "server 127.0.0.1:" "$tmp/nginx/nginx.conf")" = 4 ] || die "rendering docker/nginx.conf (servers)"
}
# start_nginx: nginx in the foreground (a child of this script), answering /healthz. A
# port taken between choosing it and nginx binding it is tried again with another; any
# other failure ends the test with nginx's own last words in the FAIL line.
start_nginx() {
  local try port
  for try in 1 2 3; do
    port=$(free_port) || die "no free port for nginx"
    render_nginx "$port"
    nginx -t -q -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/t.log" ||
      die "nginx -t on the rendered docker/nginx.conf: $(tail -n 3 "$tmp/nginx/t.log" | tr '\n' ' ')"
    nginx -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' \
      2>>"$tmp/nginx/error.log" &
    nginx_pid=$!; pids+=("$nginx_pid")
    lb=http://127.0.0.1:$port
    for _ in $(seq 100); do
      curl -fs --max-time 2 -o /dev/null "$lb/healthz" && return 0
      kill -0 "$nginx_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true
    log "nginx on port $port (try $try) did not answer: $(tail -n 3 "$tmp/nginx/error.log" | tr '\n' ' ')"
    grep -q 'Address already in use' "$tmp/nginx/error.log" || break
  done
  die "nginx did not answer /healthz: $(tail -n 3 "$tmp/nginx/error.log" | tr '\n' ' ')"
}
start_nginx
log "nginx on $lb"
fi
[ -z "$compose" ] || lb=${SCALEOUT_LB:?SCALEOUT_LB}

# --- the API through nginx --------------------------------------------------------------------
is_error() { grep -q "^{\"error\":{\"code\":\"$1\"" "$2"; } # the service's JSON error shape

st=$(req "$tmp/h.json" "$lb/healthz")
check "healthz through nginx" eval '[ "$st" = 200 ] && grep -q "\"status\":\"ok\"" "$tmp/h.json"'
check "readyz through nginx" eval '[ "$(req /dev/null "$lb/readyz")" = 200 ]'
st=$(req "$tmp/models.json" "$lb/v1/models")
check "GET /v1/models through nginx" eval '[ "$st" = 200 ] && grep -q "\"fmnist\"" "$tmp/models.json"'
st=$(req "$tmp/p1.json" "$lb/v1/models/fmnist/predict?sample=test:18" -X POST)
check "predict sample=test:18 through nginx" eval '[ "$st" = 200 ] && grep -q "\"predictions\":\[{\"top\":\[{" "$tmp/p1.json"'
st=$(req "$tmp/t18.png" "$lb/v1/datasets/fashion-mnist/test/18.png")
check "dataset PNG through nginx" eval '[ "$st" = 200 ] && is_png "$tmp/t18.png"'
st=$(req "$tmp/p2.json" "$lb/v1/models/fmnist/predict" -H 'Content-Type: image/png' --data-binary "@$tmp/t18.png")
check "predict an uploaded PNG through nginx" eval '[ "$st" = 200 ] && grep -q "\"predictions\":\[{\"top\"" "$tmp/p2.json"'
st=$(req "$tmp/p3.json" "$lb/v1/models/fmnist/predict" -F "image=@$tmp/t18.png")
check "predict a multipart upload through nginx" eval '[ "$st" = 200 ] && grep -q "\"predictions\":\[{\"top\"" "$tmp/p3.json"'
st=$(req "$tmp/cam.png" "$lb/v1/models/fmnist/gradcam?sample=test:18" -X POST)
check "Grad-CAM PNG through nginx" eval '[ "$st" = 200 ] && is_png "$tmp/cam.png"'
st=$(req "$tmp/404.json" "$lb/v1/models/nope")
check "404 passes through as JSON" eval '[ "$st" = 404 ] && is_error not_found "$tmp/404.json"'
# nginx's limit is the service's (16 MiB): a body of exactly that size reaches a replica,
# which answers for itself (not a PNG: 415 or 422), and one byte more gets nginx's 413,
# in the service's JSON error shape.
head -c $((16 * 1024 * 1024)) /dev/zero >"$tmp/big.bin"
st=$(req "$tmp/415.json" "$lb/v1/models/fmnist/predict" -H 'Content-Type: image/png' --data-binary "@$tmp/big.bin")
check "a 16 MiB body reaches a replica ($st)" \
  eval '{ [ "$st" = 415 ] || [ "$st" = 422 ]; } && grep -q "^{\"error\":{\"code\":\"" "$tmp/415.json"'
printf x >>"$tmp/big.bin"
st=$(req "$tmp/413.json" "$lb/v1/models/fmnist/predict" -H 'Content-Type: image/png' --data-binary "@$tmp/big.bin")
check "413 through nginx is JSON" eval '[ "$st" = 413 ] && is_error payload_too_large "$tmp/413.json"'
rm -f "$tmp/big.bin"

# Training goes to the trainer only, so its job can be polled through nginx every time.
st=$(req "$tmp/job.json" "$lb/v1/models/fmnist/train" -X POST "${auth[@]+"${auth[@]}"}" -H 'Content-Type: application/json' \
  -d '{"epochs":1,"train_limit":60000,"test_limit":1000}')
job=$(grep -o '"id":"[^"]*"' "$tmp/job.json" | head -n 1 | cut -d'"' -f4 || true)
check "POST train through nginx: 202" eval '[ "$st" = 202 ] && [ -n "$job" ]'
if [ -n "$job" ]; then
  polls=0
  for _ in 1 2 3 4 5 6; do [ "$(req /dev/null "$lb/v1/jobs/$job")" = 200 ] && polls=$((polls + 1)); done
  check "job polled through nginx 6 times, found every time ($polls)" test "$polls" = 6
  # Cancel it: nothing is saved by a cancelled job, so the served model stays.
  st=$(req "$tmp/del.json" "$lb/v1/jobs/$job" -X DELETE "${auth[@]+"${auth[@]}"}")
  state=$(job_end "$lb/v1/jobs/$job" 100 0.1)
  check "job cancelled through nginx ($st, $state)" eval '[ "$st" = 202 ] && [ "$state" = cancelled ]'
fi

# --- a replica dies under load; no client notices -----------------------------------------
export SCALEOUT_IMAGE=$tmp/t18.png
wrk -t2 -c16 -d10s -s "$here/post_predict.lua" "$lb/v1/models/fmnist/predict" >"$tmp/wrk.out" 2>&1 &
wrk_pid=$!; pids+=("$wrk_pid")
sleep 3
restarted=0
if [ -n "$compose" ]; then
  # Killed as a crash is (not `docker kill`, which counts as stopping it on purpose):
  # Docker's restart policy brings the same container back.
  kill -9 "$(docker inspect -f '{{.State.Pid}}' "${replica_cid[2]}")"
  log "replica 2 killed (SIGKILL to its process) under load"
  for _ in $(seq 100); do
    [ "$(docker inspect -f '{{.RestartCount}}' "${replica_cid[2]}")" -ge 1 ] &&
      [ "$(rstatus 2 /readyz)" = 200 ] && { restarted=1; break; }
    sleep 0.1
  done
else
  kill -9 "${replica_pid[2]}"; wait "${replica_pid[2]}" 2>/dev/null || true
  log "replica 2 killed (SIGKILL) under load"
  sleep 1
  start_replica 2 "${replica_port[2]}" && restarted=1
fi
wait "$wrk_pid" || true
line=$(grep '^SCALEOUT ' "$tmp/wrk.out" || true)
log "wrk: ${line:-no summary}"
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
requests=$(field requests) status_errors=$(field status_errors) sockerr=$(field sockerr)
requests=${requests:-0} status_errors=${status_errors:--1} sockerr=${sockerr:--1}
if [ -n "$compose" ]; then how="by Docker's restart policy"; else how="on its port"; fi
check "replica 2 restarted $how" test "$restarted" = 1
check "wrk through nginx: $requests predictions" test "$requests" -gt 100
check "no request failed while a replica was killed ($status_errors 4xx/5xx, $sockerr socket errors)" \
  eval '[ "$status_errors" = 0 ] && [ "$sockerr" = 0 ]'
# Every replica answered some of them (least_conn spreads the load).
served=0
for i in 1 2 3; do
  n=$(predictions_served "$i")
  [ "$n" -gt 0 ] && served=$((served + 1))
done
check "all three replicas served predictions" test "$served" = 3
# The restarted replica is back in rotation once nginx's fail_timeout (5 s) has passed:
# rounds of 10 requests through the balancer until one reaches it (a minute at most).
before=$(predictions_served 2)
sent=0 after=$before
reached_replica_2() {
  for _ in $(seq 10); do req /dev/null "$lb/v1/models/fmnist/predict?sample=test:1" -X POST >/dev/null; done
  sent=$((sent + 10))
  after=$(predictions_served 2)
  [ "$after" -gt "$before" ]
}
poll 60 reached_replica_2 || true
check "restarted replica back in rotation ($((after - before)) of the $sent requests after it came back)" \
  test "$after" -gt "$before"

# --- a new model in the shared folder: every replica switches --------------------------------
# summary I: the model replica I serves, as its summary tells it.
summary() { rget "$1" /v1/models/fmnist | grep -o '"trained_at":"[^"]*"\|"seed":[0-9]*' | tr '\n' ' ' || true; }
old=$(summary 1)
same=1
for i in 2 3; do [ "$(summary "$i")" = "$old" ] || same=0; done
check "replicas agree on the starting model" test "$same" = 1
wait "$train_pid" || die "training the replacement model ($(tail -n 3 "$tmp/train1.log"))"
put_model "$tmp/staging/new.csm"
t0=$(date +%s%N)
switched=0 slowest=0
for i in 1 2 3; do
  for _ in $(seq 100); do # 10 s at most
    if summary "$i" | grep -q '"seed":4242'; then
      switched=$((switched + 1)); slowest=$((($(date +%s%N) - t0) / 1000000)); break
    fi
    sleep 0.1
  done
done
check "a new model renamed into the folder is served by all 3 replicas ($switched, slowest ${slowest} ms)" \
  test "$switched" = 3
ready=0
for i in 1 2 3; do [ "$(rstatus "$i" /readyz)" = 200 ] && ready=$((ready + 1)); done
check "all replicas ready after the switch" test "$ready" = 3
new=$(summary 1)

# A corrupt copy (bytes flipped in the middle: its CRC no longer matches) renamed into place.
cp "$tmp/staging/new.csm" "$tmp/staging/corrupt.csm"
size=$(stat -c %s "$tmp/staging/corrupt.csm")
printf '\377\377\377\377\377\377\377\377' |
  dd of="$tmp/staging/corrupt.csm" bs=1 seek=$((size / 2)) conv=notrunc status=none
put_model "$tmp/staging/corrupt.csm"
# replica_log I: what replica I logged (its standard error).
replica_log() {
  if [ -n "$compose" ]; then docker logs "${replica_cid[$1]}" 2>&1; else cat "$tmp/replica$1.err"; fi
}
all_refused() {
  refused=0
  for i in 1 2 3; do replica_log "$i" | grep -q 'refused the changed file' && refused=$((refused + 1)); done
  [ "$refused" = 3 ]
}
poll 20 all_refused || true
check "every replica noticed the corrupt file and refused it ($refused of 3)" test "$refused" = 3
kept=0 ready=0
for i in 1 2 3; do
  [ "$(summary "$i")" = "$new" ] && kept=$((kept + 1))
  [ "$(rstatus "$i" /readyz)" = 200 ] && ready=$((ready + 1))
done
check "a corrupt model file is served by none ($kept of 3 kept the previous one)" test "$kept" = 3
check "all replicas stay ready with a corrupt file in the folder ($ready of 3)" test "$ready" = 3
st=$(req "$tmp/p4.json" "$lb/v1/models/fmnist/predict?sample=test:18" -X POST)
check "predictions still answered through nginx" test "$st" = 200
