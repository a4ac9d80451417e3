# tests/deploy/lib.sh - sourced by the deployment tests: counted checks, loopback ports,
# HTTP requests. Each script prints its own "[name] N ok, M failed" line from $ok and $bad.
ok=0 bad=0

log() { echo "$*" >&2; }
note() { echo "# $*"; }
pass() { ok=$((ok + 1)); log "ok   $1"; }
fail() { bad=$((bad + 1)); log "FAIL $1${2:+: $2}"; }
# check NAME COMMAND...: one counted check; never stops the script.
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
# output_has PATTERN COMMAND...: COMMAND's output (stdout and stderr) matches PATTERN.
# Not `COMMAND | grep -q`: under pipefail, grep leaving at the first match makes a
# COMMAND still writing (docker logs) die of SIGPIPE, and the check fails on a match.
output_has() { local pat=$1 out; shift; out=$("$@" 2>&1) || true; grep -q -- "$pat" <<<"$out"; }
# die MESSAGE: a step the rest depends on failed; the caller's EXIT trap prints the summary.
die() { fail "$1"; exit 1; }

# A free loopback port: nothing answers on it. Another process may take it before the
# caller binds it, so callers that need a port chosen up front (nginx; the container whose
# HEALTHCHECK reads its port) try again on "Address already in use"; other convscope
# servers are given port 0 and say which port they got (container_port).
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  return 1
}

# req OUT URL [curl options...]: the HTTP status (000 when nothing answered), body in OUT.
req() { local out=$1 url=$2; shift 2; curl -s --max-time 60 -o "$out" -w '%{http_code}' "$@" "$url" || echo 000; }
is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }
# poll SECONDS COMMAND...: runs COMMAND (in this shell: it may set variables) until it
# succeeds, or fails once SECONDS of wall time have passed.
poll() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.1
  done
}
# job_end URL TRIES PAUSE: polls a training job until it has ended (at most TRIES
# times, PAUSE seconds apart) and prints its last state (empty when never read).
job_end() {
  local url=$1 tries=$2 pause=$3 body state=
  body=$(mktemp)
  for _ in $(seq "$tries"); do
    req "$body" "$url" >/dev/null
    state=$(grep -o '"state":"[^"]*"' "$body" | head -n 1 | cut -d'"' -f4 || true)
    case $state in succeeded | failed | cancelled) break ;; esac
    sleep "$pause"
  done
  rm -f "$body"
  echo "$state"
}

# container_port NAME: the loopback port a container's server chose for itself (it was
# started with CONVSCOPE_LISTEN=127.0.0.1:0 on the host's network and logs "listening on
# http://127.0.0.1:PORT"), waiting up to a minute for that line; fails when the container
# stops first or never says.
container_port() {
  local p
  for _ in $(seq 240); do
    p=$(docker logs "$1" 2>&1 | grep -o 'listening on http://127\.0\.0\.1:[0-9]*' | head -n 1 | grep -o '[0-9]*$' || true)
    [ -n "$p" ] && [ "$p" != 0 ] && { echo "$p"; return 0; }
    [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ] || break
    sleep 0.25
  done
  return 1
}
