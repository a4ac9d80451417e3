#!/usr/bin/env bash
# tests/deploy/docker_test.sh - builds docker/Dockerfile and runs the image the way the
# deployment docs tell an operator to: read-only root, a tmpfs /tmp, no capabilities, a
# memory limit. Checks health, a prediction (dataset sample and uploaded PNG), a Grad-CAM
# PNG, a training job run inside the container and the new model version it serves, the
# non-root user, the Docker health status and a clean stop. Then docker/compose.yaml up
# for real with Debian's docker-compose (three replicas, the trainer, nginx built from the
# same Debian base by docker/nginx.Dockerfile), and the scale-out checks of
# scaleout_test.sh through it. Last line: "[docker] N ok, M failed"; exits non-zero on
# any failure.
#
# Needs root: it installs docker.io and debootstrap when missing and starts its own
# Docker engine, stopped by its PID at the end (docker_engine.sh: private socket, no
# bridge, no iptables; debian:bookworm-slim made with debootstrap and cached in
# .cache/docker/). Containers use the host's network namespace and listen on 127.0.0.1
# only.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
cache=${CONVSCOPE_DOCKER_CACHE:-$root/.cache/docker}
image=convscope:test
tmp=$(mktemp -d -t convscope-docker-XXXXXX)
containers=()
volumes=()
project=          # the compose project, once up
# shellcheck source=tests/deploy/lib.sh
. tests/deploy/lib.sh
# shellcheck source=tests/deploy/docker_engine.sh
. tests/deploy/docker_engine.sh
t_start=$(date +%s)

cleanup() {
  local rc=$?
  set +e
  if [ -n "$dockerd_pid" ]; then
    [ -n "$project" ] && compose down -v --timeout 5 >"$tmp/down.log" 2>&1
    for c in "${containers[@]+"${containers[@]}"}"; do docker rm -f "$c" >/dev/null 2>&1; done
    for v in "${volumes[@]+"${volumes[@]}"}"; do docker volume rm -f "$v" >/dev/null 2>&1; done
    engine_stop
  fi
  [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
  note "took $(($(date +%s) - t_start)) s"
  rm -rf "$tmp"
  echo "[docker] $ok ok, $bad failed"
  [ "$bad" -eq 0 ] || exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || die "needs root (it installs docker.io and starts a Docker engine)"

# --- the engine and the base image ----------------------------------------------------------
engine_packages curl docker-compose
engine_start
base_image

# --- the build: the documented command ------------------------------------------------------
build_args=(--network host -f docker/Dockerfile -t "$image")
if [ ! -f models/fmnist.csm ]; then
  note "models/fmnist.csm is not in the tree yet: building with a quickly trained stand-in"
  build_args+=(--build-arg QUICK_MODEL=1)
fi
t0=$(date +%s)
if [ -f .dockerignore ]; then
  docker build "${build_args[@]}" . >"$tmp/build.log" 2>&1 || { tail -n 30 "$tmp/build.log"; die "docker build"; }
else
  # No .dockerignore at the root yet: send exactly the paths docker/dockerignore allows,
  # so the daemon never receives build/, .git or this cache.
  mapfile -t allowed < <(sed -n 's|^!\(.*\)|\1|p' docker/dockerignore | sed 's|/$||')
  present=(docker/Dockerfile)
  for p in "${allowed[@]}"; do [ -e "$p" ] && present+=("$p"); done
  tar -cf - "${present[@]}" | docker build "${build_args[@]}" - >"$tmp/build.log" 2>&1 ||
    { tail -n 30 "$tmp/build.log"; die "docker build"; }
fi
pass "docker build ($(($(date +%s) - t0)) s)"
size=$(docker image inspect -f '{{.Size}}' "$image")
note "image size: $((size / 1000000)) MB"
check "image is small (< 220 MB, got $((size / 1000000)) MB)" test "$size" -lt 220000000
check "runtime image has no compiler or -dev packages" \
  docker run --rm --network none --entrypoint sh "$image" -c \
  '! command -v gcc && ! dpkg-query -W -f "\${Package}\n" | grep -q -- "-dev$"'

# --- run it hardened ------------------------------------------------------------------------
name=convscope-test-$$
containers+=("$name")
# The image listens on 0.0.0.0:8080; with the host's network namespace that would be
# every interface of this machine, so the test narrows it to loopback.
# One CPU and 700 MiB, which the service must read from its cgroup, v2 or v1 as the
# engine runs it (no thread count is set).
# Its HEALTHCHECK reads the port from CONVSCOPE_LISTEN, so this one gets a fixed port; one
# taken by another process between choosing and binding it (the server then exits saying
# "Address already in use") is tried again with another.
for try in 1 2 3; do
  port=$(free_port) || die "no free port"
  docker run -d --name "$name" --network host --read-only --tmpfs /tmp:rw,size=64m \
    --cap-drop ALL --security-opt no-new-privileges --cpus 1 --memory 700m --memory-swap 700m \
    -e CONVSCOPE_LISTEN="127.0.0.1:$port" -e CONVSCOPE_VGG16=0 "$image" >/dev/null ||
    die "docker run --read-only --cap-drop ALL --cpus 1 --memory 700m"
  container_port "$name" >/dev/null && break
  output_has 'Address already in use' docker logs "$name" || break
  note "port $port was taken before the container bound it (try $try)"
  docker rm -f "$name" >/dev/null
done
b=http://127.0.0.1:$port
for _ in $(seq 120); do
  curl -fs -o /dev/null "$b/readyz" && break
  [ "$(docker inspect -f '{{.State.Running}}' "$name")" = true ] || break
  sleep 0.5
done
curl -fs -o /dev/null "$b/readyz" || { docker logs "$name" 2>&1 | tail -n 20; die "container ready on $b"; }
pass "container ready (read-only root, no capabilities, 1 CPU, 700 MiB)"
docker logs "$name" >"$tmp/start.log" 2>&1
note "$(grep -o 'resources: .*' "$tmp/start.log" || echo 'no resources line in the log')"
check "start-up line: 1 CPU from the cgroup quota, 700 MiB from the cgroup limit" \
  grep -Eq "resources: 1 CPUs from the cgroup cpu\.(max|cfs_quota_us).*memory 700 MiB from the cgroup memory\.(max|limit_in_bytes)" "$tmp/start.log"
req "$tmp/ready.json" "$b/readyz" >/dev/null
check "/readyz: 1 CPU, 700 MiB, one HTTP thread" eval \
  'grep -q "\"cpus\":1," "$tmp/ready.json" && grep -q "\"memory_mib\":700[,.]" "$tmp/ready.json" &&
   grep -q "\"http_threads\":1," "$tmp/ready.json"'

# body FILE URL [curl args...]: writes the body, prints the status.
jnum() { grep -o "\"$1\":[0-9.]*" "$2" | head -n 1 | cut -d: -f2; }

check "GET /healthz" test "$(req "$tmp/h.json" "$b/healthz")" = 200
check "runs as uid 10001" test "$(docker exec "$name" id -u)" = 10001
check "read-only root; /tmp and /models writable" eval \
  '[ "$(docker inspect -f "{{.HostConfig.ReadonlyRootfs}}" "$name")" = true ] &&
   docker exec "$name" sh -c "touch /tmp/x && touch /models/.w && rm /models/.w"'
st=$(req "$tmp/p1.json" "$b/v1/models/fmnist/predict?sample=test:18" -X POST)
check "predict sample=test:18 (200, a top class)" \
  eval '[ "$st" = 200 ] && grep -q "\"top\":\[{\"index\":[0-9]*,\"label\":\"" "$tmp/p1.json"'
grep -q '"label":"Bag"' "$tmp/p1.json" && note "test:18 predicted: $(grep -o '"label":"[^"]*"' "$tmp/p1.json" | head -n 1)"
st=$(req "$tmp/t18.png" "$b/v1/datasets/fashion-mnist/test/18.png")
check "dataset image from the bundled dataset (PNG)" eval '[ "$st" = 200 ] && is_png "$tmp/t18.png"'
st=$(req "$tmp/p2.json" "$b/v1/models/fmnist/predict" -H 'Content-Type: image/png' --data-binary "@$tmp/t18.png")
check "predict an uploaded PNG" eval '[ "$st" = 200 ] && grep -q "\"predictions\":\[{\"top\"" "$tmp/p2.json"'
st=$(req "$tmp/cam.png" "$b/v1/models/fmnist/gradcam?sample=test:18" -X POST)
check "Grad-CAM overlay PNG" eval '[ "$st" = 200 ] && is_png "$tmp/cam.png"'
st=$(req "$tmp/i.html" "$b/")
check "front-end and contract served from the image" \
  eval '[ "$st" = 200 ] && [ "$(req /dev/null "$b/openapi.yaml")" = 200 ]'

# --- safe defaults: the image listens on every interface, so it needs a token ------------------
# In a network namespace of its own (--network none), where 0.0.0.0 reaches nobody.
docker run --rm --network none --read-only --tmpfs /tmp --cap-drop ALL -e CONVSCOPE_VGG16=0 "$image" \
  >"$tmp/open.log" 2>&1 && open_rc=0 || open_rc=$?
check "without a token it refuses to start (exit $open_rc), naming --insecure-open" \
  eval '[ "$open_rc" = 2 ] && grep -q -- "--insecure-open" "$tmp/open.log"'
name_open=convscope-test-open-$$
containers+=("$name_open")
docker run -d --name "$name_open" --network none --read-only --tmpfs /tmp --cap-drop ALL \
  -e CONVSCOPE_VGG16=0 -e CONVSCOPE_INSECURE_OPEN=1 "$image" >/dev/null
for _ in $(seq 60); do
  docker exec "$name_open" curl -fs -o /dev/null http://127.0.0.1:8080/readyz 2>/dev/null && break
  sleep 0.5
done
check "with CONVSCOPE_INSECURE_OPEN=1 it serves and /readyz says it is open" \
  output_has '"insecure_open":true' docker exec "$name_open" curl -fs http://127.0.0.1:8080/readyz
check "and its log warns" output_has "WARNING: --insecure-open" docker logs "$name_open"
docker rm -f "$name_open" >/dev/null 2>&1

# --- training inside the container -----------------------------------------------------------
req "$tmp/m0.json" "$b/v1/models/fmnist" >/dev/null
v0=$(jnum version "$tmp/m0.json")
# shellcheck disable=SC2034 # st is read by the eval'd condition below
st=$(req "$tmp/job.json" "$b/v1/models/fmnist/train" -X POST -H 'Content-Type: application/json' \
  -d '{"epochs":1,"train_limit":2000,"test_limit":1000}')
job=$(grep -o '"id":"[^"]*"' "$tmp/job.json" | head -n 1 | cut -d'"' -f4 || true)
check "POST train: 202 with a job id" eval '[ "$st" = 202 ] && [ -n "$job" ]'
state=none
[ -n "$job" ] && state=$(job_end "$b/v1/jobs/$job" 240 0.5)
check "training job succeeded (state $state)" test "$state" = succeeded
# Peak memory of the container so far (cgroup v1 or v2), for the limits in docs/deploy.md.
peak=$(docker exec "$name" sh -c 'cat /sys/fs/cgroup/memory.peak 2>/dev/null ||
  cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes 2>/dev/null' || true)
[ -n "$peak" ] && note "peak memory with a training job: $((peak / 1048576)) MiB"
req "$tmp/m1.json" "$b/v1/models/fmnist" >/dev/null
v1=$(jnum version "$tmp/m1.json")
check "new model version served ($v0 -> $v1)" test "${v1:-0}" -gt "${v0:-0}"
check "the new model was saved in the models volume" \
  docker exec "$name" sh -c 'test -s /models/fmnist.csm && test /models/fmnist.csm -nt /opt/convscope/models/fmnist.csm'

# --- Docker's own view ------------------------------------------------------------------------
# The HEALTHCHECK runs every 10 s; wait for its first verdict (bounded).
health=starting
for _ in $(seq 40); do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$name")
  [ "$health" != starting ] && break
  sleep 1
done
check "HEALTHCHECK reports healthy ($health)" test "$health" = healthy
check "not killed for memory" test "$(docker inspect -f '{{.State.OOMKilled}}' "$name")" = false
note "memory in use: $(docker stats --no-stream --format '{{.MemUsage}}' "$name" 2>/dev/null || echo '?')"
docker stop -t 20 "$name" >/dev/null
check "SIGTERM stops it cleanly (exit $(docker inspect -f '{{.State.ExitCode}}' "$name"))" \
  test "$(docker inspect -f '{{.State.ExitCode}}' "$name")" = 0

# --- a model that cannot fit the memory limit ---------------------------------------------------
# VGG16's weights (528 MiB; a sparse file of that size: the service decides from the size
# before reading a byte) under 500 MiB: unavailable with the reason, not killed later,
# while the Fashion-MNIST model keeps serving.
truncate -s 553467096 "$tmp/vgg16.h5"
chmod 644 "$tmp/vgg16.h5"
name3=convscope-test3-$$
containers+=("$name3")
docker run -d --name "$name3" --network host --read-only --tmpfs /tmp --cap-drop ALL --memory 500m \
  --memory-swap 500m -v "$tmp/vgg16.h5:/opt/keras/vgg16.h5:ro" -e CONVSCOPE_LISTEN="127.0.0.1:0" \
  -e CONVSCOPE_VGG16=1 -e CONVSCOPE_VGG16_WEIGHTS=/opt/keras/vgg16.h5 "$image" >/dev/null
port3=$(container_port "$name3") || port3=0
for _ in $(seq 60); do curl -fs -o /dev/null "http://127.0.0.1:$port3/readyz" && break; sleep 0.5; done
req "$tmp/ready3.json" "http://127.0.0.1:$port3/readyz" >/dev/null
check "VGG16 under 500 MiB: unavailable, the memory limit named" eval \
  'grep -q "\"vgg16\":{\"status\":\"unavailable\"" "$tmp/ready3.json" && grep -q "memory limit of 500 MiB" "$tmp/ready3.json"'
st=$(req "$tmp/p3.json" "http://127.0.0.1:$port3/v1/models/fmnist/predict?sample=test:18" -X POST)
check "the Fashion-MNIST model keeps serving beside it" test "$st" = 200
docker rm -f "$name3" >/dev/null 2>&1

# --- a one-off training container on a named volume, then a server on it --------------------
vol=convscope-test-models-$$
volumes+=("$vol")
docker volume create "$vol" >/dev/null
check "one-off 'convscope train' container writes the shared volume" eval \
  'docker run --rm --network none --read-only --tmpfs /tmp --cap-drop ALL -v "$vol:/models" "$image" \
     train --epochs 1 --limit 1000 --seed 3 --out /models/fmnist.csm >"$tmp/train.log" 2>&1'
name2=convscope-test2-$$
containers+=("$name2")
docker run -d --name "$name2" --network host --read-only --tmpfs /tmp --cap-drop ALL --memory 1g \
  -v "$vol:/models" -e CONVSCOPE_LISTEN="127.0.0.1:0" -e CONVSCOPE_VGG16=0 "$image" >/dev/null
port2=$(container_port "$name2") || port2=0
for _ in $(seq 60); do curl -fs -o /dev/null "http://127.0.0.1:$port2/readyz" && break; sleep 0.5; done
req "$tmp/m2.json" "http://127.0.0.1:$port2/v1/models/fmnist" >/dev/null
check "a replica on that volume serves the trained model (1000 training images)" \
  grep -q '"train_images":1000' "$tmp/m2.json"

# While it runs, another one-off training writes the volume: the running replica switches
# to it by itself (it checks the file about once a second), as compose replicas do.
check "one-off training while a replica serves the volume" eval \
  'docker run --rm --network none --read-only --tmpfs /tmp --cap-drop ALL -v "$vol:/models" "$image" \
     train --epochs 1 --limit 1000 --seed 5 --out /models/fmnist.csm >"$tmp/train2.log" 2>&1'
switched=0
for _ in $(seq 50); do
  output_has '"seed":5[,}]' curl -s "http://127.0.0.1:$port2/v1/models/fmnist" && { switched=1; break; }
  sleep 0.2
done
check "the running replica serves the new model without a restart" test "$switched" = 1

# --- docker/compose.yaml, up for real -------------------------------------------------------
# Debian's docker-compose on this engine. The service's image is the one built and tested
# above, under the name compose gives it; nginx's is built from the same Debian base
# (docker/nginx.Dockerfile), so nothing is pulled and the added time is small. nginx is
# published on a loopback port Docker picks (CONVSCOPE_PORT="127.0.0.1:"), read back
# with `port`: no other process can take it in between.
compose() { docker-compose -p "$project" -f docker/compose.yaml "$@"; }
docker tag "$image" convscope:latest
t0=$(date +%s)
docker build --network host -f docker/nginx.Dockerfile -t convscope-nginx:latest docker >"$tmp/nginx-build.log" 2>&1 ||
  { tail -n 20 "$tmp/nginx-build.log"; die "docker build of docker/nginx.Dockerfile"; }
pass "nginx image from the same Debian base ($(($(date +%s) - t0)) s)"
project=convscope-test-$$
CONVSCOPE_TOKEN=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export CONVSCOPE_TOKEN CONVSCOPE_PORT=127.0.0.1:
t0=$(date +%s)
# up waits for the replicas and the trainer to be healthy before it starts nginx.
if compose up -d --no-build --scale convscope=3 >"$tmp/up.log" 2>&1; then
  pass "docker-compose up: 3 replicas, the trainer, nginx ($(($(date +%s) - t0)) s)"
else
  tail -n 20 "$tmp/up.log"
  die "docker-compose up"
fi
lb_addr=$(compose port nginx 8080 2>/dev/null | tail -n 1)
lb=http://$lb_addr
for _ in $(seq 100); do curl -fs -o /dev/null "$lb/readyz" && break; sleep 0.2; done
check "nginx answers on $lb_addr (published on loopback only)" \
  eval 'case $lb_addr in 127.0.0.1:[0-9]*) curl -fs -o /dev/null "$lb/readyz" ;; *) false ;; esac'
check "replicas run hardened (read-only root, no capabilities, memory limit)" eval \
  'for c in $(compose ps -q convscope 2>/dev/null); do
     [ "$(docker inspect -f "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.Memory}}" "$c")" = \
       "true [ALL] 1073741824" ] || exit 1
   done'
# The scale-out checks through it (their own summary line, added to these counts).
SCALEOUT_COMPOSE=$project SCALEOUT_LB=$lb SCALEOUT_TOKEN=$CONVSCOPE_TOKEN tests/deploy/scaleout_test.sh \
  >"$tmp/scaleout.out" 2>"$tmp/scaleout.err" || true
sed 's/^/  /' "$tmp/scaleout.err" >&2
line=$(grep -E '^\[scaleout\] [0-9]+ ok, [0-9]+ failed$' "$tmp/scaleout.out" | tail -n 1 || true)
if [ -n "$line" ]; then
  ok=$((ok + $(sed -E 's/.*\] ([0-9]+) ok.*/\1/' <<<"$line")))
  bad=$((bad + $(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")))
  note "scale-out checks through compose: $line"
else
  fail "scaleout_test.sh through compose printed no summary"
fi
t0=$(date +%s)
compose down -v --timeout 10 >"$tmp/down.log" 2>&1 && project= || true
check "docker-compose down ($(($(date +%s) - t0)) s)" test -z "$project"
