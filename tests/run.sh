#!/usr/bin/env bash
# Runs every test binary given on the command line (and the browser tests when asked),
# adds up their "[name] N ok, M failed" lines and ends with the one summary line
# "N passed, M failed". Exits non-zero when anything failed or a binary crashed.
set -u
passed=0 failed=0

# crash_report LOG OUT: why a suite stopped before its summary. A short log is shown
# whole; from a long one, its error lines come first (the runtime's or launcher's own
# message, which output printed after it, such as a server log, pushes out of a tail),
# then its end. Then the last lines the suite printed, to say where it stopped.
crash_report() {
  if [ "$(wc -l <"$1")" -le 40 ]; then
    sed 's/^/  | /' "$1"
  else
    grep -n -m 5 -A 3 -iE 'error|abort|fatal|segmentation|assert|exception|cannot|requires' "$1" |
      sed -E 's/^([0-9]+)[:-]/  ! \1: /; s/^--$/  ! .../'
    echo "  | ..."; tail -n 20 "$1" | sed 's/^/  | /'
  fi
  [ -n "$2" ] && { echo "[$3] its last output:"; printf '%s\n' "$2" | tail -n 5 | sed 's/^/  > /'; }
  return 0
}
for bin in "$@"; do
  name=$(basename "$bin")
  out=$("$bin" 2>"$bin.log"); rc=$?
  line=$(printf '%s\n' "$out" | grep -E '^\[[^]]+\] [0-9]+ ok, [0-9]+ failed$' | tail -n 1)
  if [ -z "$line" ]; then
    echo "[$name] crashed or printed no summary (exit $rc); its log:"; crash_report "$bin.log" "$out" "$name"
    failed=$((failed + 1)); continue
  fi
  echo "$line"
  # A suite may say what it skipped on a line of its own before its summary.
  printf '%s\n' "$out" | grep -E '^\[[^]]+\] [0-9]+ skipped' || true
  ok=$(sed -E 's/.*\] ([0-9]+) ok.*/\1/' <<<"$line"); bad=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")
  passed=$((passed + ok)); failed=$((failed + bad))
  if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then failed=$((failed + 1)); echo "[$name] exit $rc"; fi
  if [ "$bad" -ne 0 ]; then
    { printf '%s\n' "$out"; cat "$bin.log"; } | grep -E '^(FAIL|  .*FAILED)' | head -n 30
    # The end of its log often says why (a server's last words, a tool's error).
    echo "[$name] last lines of its log:"; tail -n 20 "$bin.log" | sed 's/^/  | /'
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
