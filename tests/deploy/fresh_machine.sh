#!/usr/bin/env bash
# tests/deploy/fresh_machine.sh - does `make test` do all its set-up on a fresh Debian 12
# machine, as the README promises? Clones the repository at HEAD (committed work only: no
# build/, node_modules or caches of this tree) and runs `make test` as root in a container
# of the minimal Debian 12 image that docker_engine.sh makes with debootstrap, with nothing
# installed but git, make and ca-certificates. scripts/deps.sh must install the rest, and
# the suites run on the Node.js, Chromium and nginx that Debian 12 ships.
#
# Needs root, like docker_test.sh: it starts its own Docker engine. The container shares
# the host's network (the engine has no bridge) and gets nothing else of the host but the
# extra CA certificates it trusts (/usr/local/share/ca-certificates, for a TLS proxy in
# front of the npm registry) and npm's registry when the host sets one.
# The whole output of the container is in build/fresh-machine.log. Prints the container's
# "N passed, M failed" line; last line "[fresh] N ok, M failed"; exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
cache=${CONVSCOPE_DOCKER_CACHE:-$root/.cache/docker}
tmp=$(mktemp -d -t convscope-fresh-XXXXXX)
log=$root/build/fresh-machine.log
name=convscope-fresh-$$
# shellcheck source=tests/deploy/lib.sh
. tests/deploy/lib.sh
# shellcheck source=tests/deploy/docker_engine.sh
. tests/deploy/docker_engine.sh
t_start=$(date +%s)

cleanup() {
  local rc=$?
  set +e
  if [ -n "$dockerd_pid" ]; then
    docker rm -f "$name" >/dev/null 2>&1
    engine_stop
  fi
  [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
  note "took $(($(date +%s) - t_start)) s"
  rm -rf "$tmp"
  echo "[fresh] $ok ok, $bad failed"
  [ "$bad" -eq 0 ] || exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || die "needs root (it installs docker.io and starts a Docker engine)"

engine_packages git
engine_start
base_image

# --- the clone --------------------------------------------------------------------------------
head=$(git rev-parse HEAD)
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
  note "uncommitted changes are not tested: the container gets commit ${head:0:12}"
if ! git clone -q "$root" "$tmp/src" || ! git -C "$tmp/src" checkout -q --detach "$head"; then
  die "git clone of the repository at ${head:0:12}"
fi
pass "clean clone at ${head:0:12}"

# --- the machine: Debian 12 with git, make and ca-certificates --------------------------------
run_args=(--network host -v "$tmp/src:/src" -w /src)
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null ||
   compgen -G '/usr/local/share/ca-certificates/*/*.crt' >/dev/null; then
  run_args+=(-v /usr/local/share/ca-certificates:/run/host-ca:ro)
fi
registry=$(npm config get registry 2>/dev/null || true)
if [ -n "$registry" ] && [ "${registry%/}" != https://registry.npmjs.org ]; then
  run_args+=(-e "npm_config_registry=$registry")
fi
mkdir -p "$(dirname "$log")"
: >"$log"
docker run -d --name "$name" "${run_args[@]}" debian:bookworm-slim sleep infinity >/dev/null ||
  die "docker run debian:bookworm-slim"
# shellcheck disable=SC2016 # expanded in the container
docker exec -e DEBIAN_FRONTEND=noninteractive "$name" bash -euc '
  apt-get update -q
  apt-get install -y -q --no-install-recommends git make ca-certificates
  if [ -d /run/host-ca ]; then
    cp -r /run/host-ca/. /usr/local/share/ca-certificates/
    update-ca-certificates
  fi' >>"$log" 2>&1 || { tail -n 20 "$log"; die "apt-get install git make ca-certificates in the container"; }
pass "container with git, make and ca-certificates"

# --- make test --------------------------------------------------------------------------------
note "make test in the container (output in ${log#"$root"/})"
t0=$(date +%s)
rc=0
docker exec "$name" make test >>"$log" 2>&1 || rc=$?
# shellcheck disable=SC2016 # expanded in the container
docker exec "$name" bash -c 'echo "node $(node --version 2>&1), npm $(npm --version 2>&1), $(chromium --version 2>&1)"' \
  >"$tmp/versions" 2>&1 || true
note "in the container: $(cat "$tmp/versions")"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
echo "${summary:-no summary line}"
if [ "$rc" -eq 0 ] && [[ $summary == *" 0 failed" ]]; then
  pass "make test on a fresh Debian 12 ($(($(date +%s) - t0)) s): $summary"
else
  # What failed: run.sh's lines for failed or crashed suites (from its first line on, past
  # apt's output), else the end of the output.
  awk '/^\[[^]]+\] ([0-9]+ ok, [0-9]+ failed$|crashed)/ { on = 1 } on' "$log" |
    grep -E '^\[[^]]+\] ([0-9]+ ok, [1-9][0-9]* failed|crashed|exit |last lines|its last)|^(FAIL|  [!|>] )' |
    head -n 60 || tail -n 40 "$log"
  fail "make test on a fresh Debian 12 (exit $rc)" "${summary:-no summary line}"
fi
