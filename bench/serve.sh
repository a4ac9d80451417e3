# bench/serve.sh - sourced by the HTTP benchmarks: starts `convscope serve` on a free
# loopback port with the models folder $tmp/models and sets pid and base.
# Usage: start_server BINARY [serve flags...]; the caller's EXIT trap kills $pid.
start_server() {
  local bin=$1
  shift
  "$bin" serve --listen 127.0.0.1:0 --models "$tmp/models" --access-log off "$@" 2>"$tmp/server.log" &
  pid=$!
  local port=
  for _ in $(seq 100); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$tmp/server.log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "$0: the server did not start:" >&2; cat "$tmp/server.log" >&2; exit 1; }
  base=http://127.0.0.1:$port
}
