#!/usr/bin/env bash
# tests/openapi/run.sh - openapi.yaml is a valid OpenAPI document: validate.mjs runs
# swagger-parser (pinned in package-lock.json, installed by tests/npm_ci.sh) on it, and
# on two broken copies that it must refuse. Last line "[openapi] N ok, M failed";
# exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
here=tests/openapi
if ! tests/npm_ci.sh "$here"; then
  echo "FAIL npm ci in $here (node $(node --version 2>/dev/null || echo missing))" >&2
  echo "[openapi] 0 ok, 1 failed"
  exit 1
fi
node "$here/validate.mjs" .
