#!/usr/bin/env bash
# A whole cowdb cluster on loopback, for trying it by hand and for
# benchmarks: etcd (3 members), Ceph (1 mon, 3 memstore OSDs, pool
# `cowdb`), and four cowdb_servers over the database `cowdb` in that pool:
# a writer, a standby and 2 replicas. Everything stays under DIR.
#
# Usage:
#   cluster.sh up DIR [SERVER]   start it all; SERVER is the cowdb_server
#                                binary (default: bazel-bin/server/cowdb_server,
#                                built first with `bazel build -c opt
#                                //server:cowdb_server //client:cowdb`).
#                                Prints each server's role and address and
#                                writes them to DIR/servers.
#   cluster.sh down DIR          stop the servers, then etcd and Ceph; safe
#                                to repeat
#   cluster.sh status DIR        which servers are alive, and the root in etcd
#
# Each server runs under a small supervisor loop: a writer that loses its
# lease exits 75 and comes back as a standby, as a real supervisor
# (systemd's Restart=) would bring it back. Logs: DIR/<name>.log.
#
# Clients: writes to the writer (or whichever server took over: see
# `status`), reads from any; e.g.
#   bazel-bin/client/cowdb put k v --endpoint=$(awk '$1=="writer"{print $2}' DIR/servers)
set -euo pipefail
prog=cluster.sh
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
lease_ttl=${COWDB_LEASE_TTL:-5s}

# The servers: name, role at start.
servers=("w writer" "s standby" "r1 replica" "r2 replica")

start_server() {
  local name=$1 role=$2 server=$3 port=$4
  local flags=(--rados_pool=cowdb --rados_name=cowdb
    --ceph_conf="$dir/ceph/ceph.conf" --etcd="$(cat "$dir/etcd/endpoints")"
    --lease_ttl="$lease_ttl" --listen="127.0.0.1:$port"
    --data_dir="$dir/$name.data")
  # The supervisor: restarts a deposed writer (exit 75) as a standby. Its
  # own arguments carry the marker, so `down` finds it by its pid file.
  (
    exec -a "cowdb-supervisor $dir/$name" bash -c '
      role=$1; shift
      while :; do
        "$@" --role="$role" &
        child=$!
        trap "kill -TERM $child 2>/dev/null; wait $child; exit 0" TERM INT
        rc=0; wait $child || rc=$?
        [ $rc -eq 75 ] || exit $rc
        echo "supervisor: restarting as a standby after exit 75" >&2
        role=standby
      done' bash "$role" "$server" "${flags[@]}" >>"$dir/$name.log" 2>&1
  ) &
  echo $! >"$dir/$name.pid"
}

case $cmd in
up)
  server=${3:-bazel-bin/server/cowdb_server}
  [ -x "$server" ] || die "no cowdb_server at $server (bazel build -c opt //server:cowdb_server)"
  server=$(cd "$(dirname "$server")" && pwd)/$(basename "$server")
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  "$here/etcd.sh" start "$dir/etcd" 3
  "$here/ceph.sh" start "$dir/ceph" 3
  : >"$dir/servers"
  ports=()
  for entry in "${servers[@]}"; do
    read -r name role <<<"$entry"
    port=$(free_port "${ports[@]}")
    ports+=("$port")
    start_server "$name" "$role" "$server" "$port"
    echo "$role 127.0.0.1:$port $name" >>"$dir/servers"
    # The writer first, so that the standby finds it live.
    [ "$role" != writer ] || sleep 1
  done
  cat "$dir/servers"
  ;;
down)
  [ -d "$dir" ] || exit 0
  dir=$(cd "$dir" && pwd)
  for entry in "${servers[@]}"; do
    read -r name _ <<<"$entry"
    # Replicas and the standby first would make no difference to data;
    # the writer resigns its lease on a clean stop.
    stop_pid_file "$dir/$name.pid" "$dir/$name" || true
  done
  "$here/etcd.sh" stop "$dir/etcd"
  "$here/ceph.sh" stop "$dir/ceph"
  ;;
status)
  dir=$(cd "$dir" && pwd)
  while read -r role addr name; do
    state=down
    if running "$dir/$name.pid" "$dir/$name"; then state=up; fi
    echo "$name $addr started as $role: $state"
  done <"$dir/servers"
  ETCDCTL_API=3 etcdctl --endpoints="$(cat "$dir/etcd/endpoints")" \
    get --print-value-only /cowdb/cowdb/root || true
  ;;
*)
  usage
  ;;
esac
