#!/usr/bin/env bash
# Runs a libFuzzer binary over a copy of its seed corpus (the runfiles are
# read-only) and fails on any crash it finds.
set -euo pipefail
fuzzer="$1"
seeds="$2"
shift 2
work="${TEST_TMPDIR:-$(mktemp -d)}/corpus"
mkdir -p "$work"
cp "$seeds"/* "$work"/
exec "$fuzzer" "$@" -artifact_prefix="${TEST_UNDECLARED_OUTPUTS_DIR:-/tmp}/" "$work"
