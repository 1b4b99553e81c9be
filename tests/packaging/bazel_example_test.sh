#!/usr/bin/env bash
# Builds tests/packaging/bazel_example, a workspace that depends on cowdb as
# @cowdb (local_repository + cowdb_dependencies()), with a nested Bazel in
# an output root of its own, offline, and runs it.
#   $1: cowdb's WORKSPACE file (a runfiles link into the source tree)
set -euo pipefail
cowdb="$(dirname "$(readlink -f "$1")")"
work="${TEST_TMPDIR:-$(mktemp -d)}"
command -v bazel >/dev/null || { echo "bazel_example_test: bazel is missing (tools/setup.sh)"; exit 1; }
[ -f "$cowdb/tests/packaging/bazel_example/WORKSPACE" ] ||
  { echo "bazel_example_test: no example under $cowdb"; exit 1; }

# A copy, so that Bazel's convenience links land in the test's directory.
rm -rf "$work/example" "$work/data"
cp -r "$cowdb/tests/packaging/bazel_example" "$work/example"
cd "$work/example"
export HOME="$work"
# --batch: no server outlives the test. The override points the example's
# @cowdb at the tree under test, wherever that is.
bazel --batch --output_user_root="$work/root" \
  build --override_repository=cowdb="$cowdb" --jobs=2 //:example
mkdir -p "$work/data"
out=$(bazel-bin/example "$work/data")
[ "$out" = "ok" ] || { echo "bazel_example_test: example printed: $out"; exit 1; }
echo "bazel_example_test: ok"
