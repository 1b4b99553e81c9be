#!/usr/bin/env bash
# Runs a libFuzzer binary over a copy of its seed corpus (the runfiles are
# read-only) and fails on any crash it finds. libFuzzer's progress lines go
# to a log file, kept with the test's outputs; what is printed is the
# end of it: the final statistics, or the crash report and its input.
set -uo pipefail
fuzzer="$1"
seeds="$2"
shift 2
work="${TEST_TMPDIR:-$(mktemp -d)}/corpus"
out="${TEST_UNDECLARED_OUTPUTS_DIR:-/tmp}"
mkdir -p "$work" "$out"
cp "$seeds"/* "$work"/
log="$out/fuzzer.log"
"$fuzzer" "$@" -artifact_prefix="$out/" "$work" >"$log" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
  grep -v -E '^(#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|INITED)|"|###### |\[libprotobuf)' "$log" | tail -n 15
else
  # The report: from the first error line (a sanitizer, libFuzzer or the
  # target's own message) to the end, at most 200 lines.
  first=$(grep -n -m1 -E 'ERROR|db_ops_fuzzer:|service_fuzzer:|page_fuzzer:|out-of-memory|timeout|deadly signal' "$log" | cut -d: -f1)
  if [ -n "$first" ]; then
    tail -n +"$((first > 20 ? first - 20 : 1))" "$log" | head -n 200
  else
    tail -n 200 "$log"
  fi
  echo "run_fuzzer: $(basename "$fuzzer") exited with $rc; whole log: $log"
fi
exit $rc
