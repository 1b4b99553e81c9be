#!/usr/bin/env bash
# Runs etcdctl_diff.py (etcdctl against etcd and against cowdb's etcd face).
# Skips, loudly, only where etcd or etcdctl is not installed.
#   $1: etcdctl_diff.py   $2: cowdb_server
set -euo pipefail
for bin in /usr/bin/etcd /usr/bin/etcdctl; do
  if [ ! -x "$bin" ]; then
    echo "SKIPPED: $bin is missing: etcdctl_diff_test needs Debian's etcd-server and" \
      "etcd-client (tools/setup.sh installs them)"
    exit 0
  fi
done
exec /usr/bin/python3 "$1" --cowdb_server="$2"
