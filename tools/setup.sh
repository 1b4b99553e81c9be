#!/usr/bin/env bash
# Installs what cowdb needs to build and test on Debian 12, if missing.
# Idempotent: when everything is present it changes nothing.
set -euo pipefail

packages=(
  bazel-bootstrap          # Bazel 4.2.3
  clang                    # the compiler (libFuzzer targets need it)
  libclang-rt-14-dev       # sanitizer and libFuzzer runtimes
  lld                      # links the ASan/UBSan binaries (gold warns on them)
  llvm                     # llvm-symbolizer: sanitizer reports with file:line
  librocksdb-dev
  libabsl-dev
  libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc
  libgtest-dev libgmock-dev
  libbenchmark-dev
  libxxhash-dev
  liblmdb-dev
  openssl                  # test certificates for the TLS test
  etcd-server etcd-client  # etcd 3.4 and etcdctl: the etcd face's differential test
  python3                  # runs that test's script (standard library only)
  libcivetweb-dev          # the HTTP server of cowdb_server's metrics endpoint
  python3-prometheus-client  # the metrics test parses the exposition with it
  cmake pkg-config         # the packaging test builds a project outside Bazel
  librados-dev             # librados: engine/store/rados_page_store (//engine:store)
  ceph                     # Ceph 16.2 daemons and tools: tools/cluster/ceph.sh, tests/cluster
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q "${missing[@]}"
