#!/usr/bin/env bash
# Fuzzes every libFuzzer target for a set time, one after the other, from
# a copy of its seed corpus, and reports executions and crashes per target.
#
#   tests/fuzz/fuzz_all.sh [seconds per target, default 600]
#
# Crash inputs are kept under $OUT (default /tmp/cowdb-fuzz); replay one
# with: bazel-bin/tests/fuzz/<target> <crash file>
set -euo pipefail
seconds="${1:-600}"
out="${OUT:-/tmp/cowdb-fuzz}"
cd "$(dirname "$0")/../.."
targets=(page db_ops service)
bazel build //tests/fuzz:page_fuzzer //tests/fuzz:db_ops_fuzzer //tests/fuzz:service_fuzzer
mkdir -p "$out"
printf '%-8s %10s %8s %8s\n' target execs exec/s crashes
for t in "${targets[@]}"; do
  work="$out/$t"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/crashes"
  cp "tests/fuzz/corpus/$t"/* "$work/corpus/"
  # A run stops at its first crash (the input is kept in crashes/).
  "bazel-bin/tests/fuzz/${t}_fuzzer" -max_total_time="$seconds" -entropic=0 \
      -print_funcs=0 -artifact_prefix="$work/crashes/" "$work/corpus" \
      >"$work/log" 2>&1 || true
  execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work/log" | tail -1)
  rate=$((${execs:-0} / seconds))
  crashes=$(find "$work/crashes" -type f | wc -l)
  printf '%-8s %10s %8s %8s\n' "$t" "${execs:-0}" "$rate" "$crashes"
done
