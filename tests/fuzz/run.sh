#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS BINARY... - runs each libFuzzer harness for SECONDS from its
# seeds (tests/fuzz/corpus/NAME, the ONNX test models for the ONNX harnesses, files made
# from models/fmnist.csm for the model-file and Keras harnesses) plus what earlier runs
# found (build/fuzz/corpus-NAME). A crash, leak, timeout or out-of-memory leaves its
# input as build/fuzz/NAME-crash-... (or leak-, timeout-, oom-) and fails the run; replay
# one with `BINARY FILE`. Prints one line per harness and "[fuzz] N ok, M failed" last.
set -u
cd "$(dirname "$0")/../.."
seconds=$1
shift
out=build/fuzz
ok=0 bad=0
mkdir -p "$out/seeds-model_file" "$out/seeds-keras_h5"
cp models/fmnist.csm "$out/seeds-model_file/" 2>/dev/null
[ -s "$out/seeds-keras_h5/fmnist.h5" ] || build/convscope export --model models/fmnist.csm \
  --out "$out/seeds-keras_h5/fmnist.h5" >/dev/null 2>&1 || echo "# no Keras seed (build/convscope export failed)"
for bin in "$@"; do
  name=$(basename "$bin"); name=${name#fuzz_}
  seeds=()
  case $name in
    onnx_reader) seeds=(tests/data/onnx) ;;
    onnx_import) seeds=(tests/data/onnx tests/data/models) ;;
    keras_model) seeds=(tests/data/keras) ;;
    model_file) seeds=(tests/fuzz/corpus/model_file "$out/seeds-model_file") ;;
    keras_h5) seeds=(tests/fuzz/corpus/keras_h5 "$out/seeds-keras_h5") ;;
    *) seeds=("tests/fuzz/corpus/$name") ;;
  esac
  mkdir -p "$out/corpus-$name"
  log=$out/$name.log
  "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$out/$name-" "$out/corpus-$name" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
  if [ "$rc" -eq 0 ]; then
    ok=$((ok + 1)); echo "ok   $name: ${runs:-?} inputs in ${seconds} s, ${cov:-cov: ?}"
  else
    bad=$((bad + 1)); echo "FAIL $name (exit $rc): $(ls -t "$out/$name-"* 2>/dev/null | head -n 1)"
    grep -m 3 -E 'ERROR|SUMMARY|==[0-9]+==|abort' "$log" | sed 's/^/  | /'
  fi
done
echo "[fuzz] $ok ok, $bad failed"
[ "$bad" -eq 0 ]
