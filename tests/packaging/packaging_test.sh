#!/usr/bin/env bash
# Unpacks //:dist into a prefix, builds tests/packaging/cmake_example against
# it with CMake (shared and static) and with pkg-config, and runs each.
#   $1: cowdb-dist.tar.gz  $2: the example's CMakeLists.txt
set -euo pipefail
dist="$1"
src="$(dirname "$2")"
work="${TEST_TMPDIR:-$(mktemp -d)}"
prefix="$work/prefix"
mkdir -p "$prefix"
tar -xzf "$dist" -C "$prefix"
for tool in cmake pkg-config clang++; do
  command -v "$tool" >/dev/null || { echo "packaging_test: $tool is missing (tools/setup.sh)"; exit 1; }
done
cmake -S "$src" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$work/build" -j 2 >/dev/null
for variant in shared static; do
  rm -rf "$work/data-$variant"
  mkdir -p "$work/data-$variant"
  out=$(LD_LIBRARY_PATH="$prefix/lib" "$work/build/example_$variant" "$work/data-$variant")
  [ "$out" = "ok" ] || { echo "packaging_test: example_$variant printed: $out"; exit 1; }
  echo "packaging_test: cmake $variant: ok"
done
# pkg-config, as a Makefile would use it.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
clang++ -o "$work/example_pc" "$src/main.cc" $(pkg-config --cflags --libs cowdb) \
  -Wl,-rpath,"$prefix/lib"
mkdir -p "$work/data-pc"
out=$("$work/example_pc" "$work/data-pc")
[ "$out" = "ok" ] || { echo "packaging_test: pkg-config build printed: $out"; exit 1; }
echo "packaging_test: pkg-config: ok"
