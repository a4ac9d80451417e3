#!/usr/bin/env bash
# tests/npm_ci.sh DIR [NPM-CI-FLAGS...] - installs the Node packages of a test folder exactly as
# DIR/package-lock.json pins them (npm ci), once, and again whenever the lock file or the
# node that runs them changes (a stamp in DIR/node_modules records both).
#
# --engine-strict: a package whose "engines" field does not accept the running node stops
# the install, with npm's own message naming the package and the versions it wants, rather
# than a suite dying later on a feature this node lacks. The pins accept Node 18, the
# version Debian 12 installs (README: "Tests").
# On failure prints npm's error lines (the whole output is in DIR/npm.log) and exits 1.
set -u
dir=$1
shift
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are missing; scripts/deps.sh test installs them" >&2
  exit 1
fi
stamp=$dir/node_modules/.convscope-installed
want="node $(node --version), lock $(sha256sum <"$dir/package-lock.json" | cut -c1-16), flags $*"
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && exit 0
if (cd "$dir" && npm ci --engine-strict --no-audit --no-fund --prefer-offline "$@") >"$dir/npm.log" 2>&1; then
  echo "$want" >"$stamp"
  exit 0
fi
echo "npm ci in $dir failed with node $(node --version), npm $(npm --version) (whole output in $dir/npm.log):" >&2
grep -E '^npm (ERR!|error) ' "$dir/npm.log" | grep -vE 'complete log|_logs/' | head -n 12 >&2
exit 1
