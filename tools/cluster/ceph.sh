#!/usr/bin/env bash
# A throwaway Ceph 16.2 cluster on loopback, for tests and by hand: one
# monitor and N OSDs on the in-memory object store (memstore), no manager,
# no authentication (auth none), msgr2 only, and one replicated pool named
# `cowdb` with 8 PGs. Everything it makes (ceph.conf, mon and OSD data, pid
# files, admin sockets, logs) stays under DIR, and the monitor takes a free
# loopback port, so several clusters can run on one machine at once.
#
# Except when DIR is deep: a socket's path holds at most 107 bytes, and
# Bazel's TEST_TMPDIR alone nearly fills that. Then the admin sockets go to
# a directory made under /tmp (named in DIR/asok_dir, removed by stop).
# The daemons need them: `ceph tell` is served through the admin socket
# machinery and hangs without one (tried).
#
# Usage:
#   ceph.sh start DIR [OSDS]    start a mon and OSDS OSDs (default 3); returns
#                               once the pool takes a write (at most ~60 s)
#   ceph.sh stop DIR            stop every daemon (SIGTERM, then SIGKILL);
#                               safe to repeat
#   ceph.sh kill-osd DIR ID     SIGKILL osd.ID (a crash)
#   ceph.sh start-osd DIR ID    start osd.ID again after kill-osd: it comes
#                               back empty and backfills (see below)
#   ceph.sh pause-osd DIR ID    SIGSTOP osd.ID (hung, not dead)
#   ceph.sh resume-osd DIR ID   SIGCONT osd.ID
#
# Clients: `rados -c DIR/ceph.conf -p cowdb ls`, `ceph -c DIR/ceph.conf -s`,
# or librados' rados_conf_read_file(cluster, "DIR/ceph.conf").
#
# Pool size: 3 copies (min_size 2) with 3 or more OSDs; with fewer, one
# copy per OSD (min_size 1).
#
# A killed OSD loses its data: memstore keeps objects in memory and writes
# them to DIR/osd/ID only at --mkfs and on a clean unmount (which the OSD's
# fast shutdown skips), so a restarted OSD finds the empty store of --mkfs,
# with its id and uuid. It boots as such (tried: no --mkfs again needed),
# the cluster marks it up, and it backfills every PG it maps to from the
# others, like a replaced disk. (Checked by hand: 20 objects written, osd.1
# killed and restarted, then osd.0 and osd.2 killed with min_size 1: all 20
# read back from osd.1 alone.)
#
# Daemons are found only by the pid files under DIR/run, and a pid is
# signalled only while its command line still names DIR/ceph.conf (see
# lib.sh).
set -euo pipefail

prog=ceph.sh
# shellcheck source=tools/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly kPool=cowdb
readonly kPgs=8
readonly kStartSeconds=60 # the whole of `start`

usage() {
  sed -n '/^# Usage:/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Stops the OSDs (in parallel) before the monitor: an OSD tells the monitor
# it is going down and waits several seconds for an answer that a stopped
# monitor never gives.
stop_all() {
  local f pids=() status=0
  for f in "$run"/osd.*.pid; do
    [ -e "$f" ] || continue
    stop_pid_file "$f" "$conf" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  stop_pid_file "$run/mon.a.pid" "$conf" || status=1
  if [ -f "$dir/asok_dir" ]; then
    local asok_dir
    asok_dir=$(cat "$dir/asok_dir")
    case "$asok_dir" in
      /tmp/cowdb-ceph.*) rm -rf "$asok_dir" ;;
    esac
    rm -f "$dir/asok_dir"
  fi
  return $status
}

# Sets asok_dir for a cluster of OSDS OSDs: DIR/run if the longest socket
# path there fits in 107 bytes, else a new directory under /tmp (see the
# header).
choose_asok_dir() {
  local osds=$1 longest
  longest="$run/ceph-osd.$((osds - 1)).asok"
  if [ ${#longest} -le 107 ]; then
    asok_dir=$run
  else
    asok_dir=$(mktemp -d /tmp/cowdb-ceph.XXXXXX)
    echo "$asok_dir" >"$dir/asok_dir"
  fi
}

# ------------------------------------------------------------------ helpers

new_uuid() {
  cat /proc/sys/kernel/random/uuid
}

# `ceph ARGS...` given at most SECONDS; stdin may carry several commands,
# one a line.
ceph_cli() {
  local seconds=$1
  shift
  timeout "$seconds" ceph -c "$conf" --connect-timeout "$seconds" "$@"
}

# The last lines of a daemon's log, for error messages.
log_tail() {
  echo "--- last lines of $log/ceph-$1.log:"
  tail -n 5 "$log/ceph-$1.log" 2>/dev/null || true
}

# Seconds until `start`'s deadline (at least 1: `timeout 0` never expires).
seconds_left() {
  local left=$((deadline - SECONDS))
  echo $((left > 0 ? left : 1))
}

write_conf() {
  local port=$1 fsid=$2 osds=$3 size min_size
  if [ "$osds" -ge 3 ]; then
    size=3 min_size=2
  else
    size=$osds min_size=1
  fi
  cat >"$conf" <<EOF
# Written by tools/cluster/ceph.sh for a throwaway loopback cluster.
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr1 = false
ms bind msgr2 = true
run dir = $run
crash dir = $dir/crash
log file = $log/\$cluster-\$name.log
osd pool default size = $size
osd pool default min size = $min_size
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1

[mon]
mon data = $dir/mon/\$id
# Propose map changes at once rather than batching them for a second:
# every step of start-up waits for one.
paxos propose interval = 0.01
paxos min wait = 0.001
pid file = $run/\$name.pid
admin socket = $asok_dir/\$cluster-\$name.asok
log to stderr = false
err to stderr = false

[osd]
osd data = $dir/osd/\$id
osd objectstore = memstore
memstore device bytes = $((512 << 20))
pid file = $run/\$name.pid
admin socket = $asok_dir/\$cluster-\$name.asok
log to stderr = false
err to stderr = false

[client]
# Clients (rados, ceph, librados) log beside the daemons and keep no admin
# socket, so that any number of them can run at once.
admin socket =
EOF
}

# ------------------------------------------------------------------ daemons

# Makes the monitor's store and starts it on a free port. A port taken
# between the check and the bind makes ceph-mon exit; then another is tried.
start_mon() {
  local osds=$1 fsid port
  fsid=$(new_uuid)
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    : >"$log/ceph-mon.a.log"
    write_conf "$port" "$fsid" "$osds"
    rm -rf "$dir/mon/a" "$dir/monmap"
    mkdir -p "$dir/mon/a"
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" \
      "$dir/monmap" >/dev/null
    ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/monmap" \
      >>"$log/mkfs.log" 2>&1 || die "ceph-mon --mkfs failed (see $log/mkfs.log)"
    # It daemonizes once it has bound its port and opened its store.
    if ceph-mon -c "$conf" -i a --ms-bind-retry-count 1 \
      </dev/null >>"$log/ceph-mon.a.log" 2>&1; then
      return
    fi
    grep -q "Address already in use" "$log/ceph-mon.a.log" 2>/dev/null ||
      die "ceph-mon did not start"$'\n'"$(log_tail mon.a)"
  done
  die "no free port for ceph-mon after 5 attempts"
}

# Makes an empty memstore for osd.ID with the uuid the monitor knows
# (osd_uuids[ID]).
mkfs_osd() {
  local id=$1
  mkdir -p "$dir/osd/$id"
  ceph-osd -c "$conf" -i "$id" --mkfs --osd-uuid "${osd_uuids[$id]}" \
    </dev/null >>"$log/mkfs.log" 2>&1 ||
    die "ceph-osd --mkfs of osd.$id failed (see $log/mkfs.log)"
}

# ceph-osd returns once the daemon has mounted its store and forked.
start_osd_daemon() {
  local id=$1
  ceph-osd -c "$conf" -i "$id" </dev/null >>"$log/ceph-osd.$id.log" 2>&1 ||
    die "osd.$id did not start"$'\n'"$(log_tail "osd.$id")"
}

# Runs FN ID for each OSD id in parallel; fails if any did.
each_osd() {
  local fn=$1 osds=$2 id pids=() status=0
  for ((id = 0; id < osds; id++)); do
    "$fn" "$id" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  return $status
}

# Writes, reads back and removes one object, retrying until the deadline:
# the pool takes writes once its PGs have peered on enough OSDs.
wait_for_pool() {
  local probe="$dir/probe" got="$dir/probe.out"
  echo "probe $$" >"$probe"
  while [ $SECONDS -lt "$deadline" ]; do
    local left
    left=$(seconds_left)
    if timeout "$left" rados -c "$conf" -p "$kPool" put probe "$probe" \
      2>/dev/null &&
      timeout "$left" rados -c "$conf" -p "$kPool" get probe "$got" \
        2>/dev/null &&
      cmp -s "$probe" "$got" &&
      timeout "$left" rados -c "$conf" -p "$kPool" rm probe 2>/dev/null; then
      rm -f "$probe" "$got"
      return 0
    fi
    sleep 0.5
  done
  return 1
}

# ----------------------------------------------------------------- commands

cmd_start() {
  local osds=${1:-3}
  [[ "$osds" =~ ^[1-9][0-9]*$ ]] || die "OSDS must be a positive number, not '$osds'"
  [ ! -e "$conf" ] || die "$dir already holds a cluster (stop it, then remove $dir)"
  mkdir -p "$dir" "$run" "$log" "$dir/osd"
  local start=$SECONDS
  deadline=$((start + kStartSeconds))
  # Whatever fails from here on, stop what was started.
  trap 'stop_all >/dev/null 2>&1 || true' EXIT

  choose_asok_dir "$osds"
  start_mon "$osds"

  # One `ceph` process for every monitor command (each costs a Python
  # start). Its interactive mode exits 0 even when a command fails, so the
  # output is checked for "Error".
  local id cmds="" out osd_uuids=()
  for ((id = 0; id < osds; id++)); do
    osd_uuids[id]=$(new_uuid)
    cmds+="osd new ${osd_uuids[id]} $id"$'\n'
  done
  cmds+="osd pool create $kPool $kPgs $kPgs"$'\n'
  cmds+="osd pool application enable $kPool rados"$'\n'
  out=$(ceph_cli "$(seconds_left)" <<<"$cmds" 2>&1) || die "ceph failed: $out"
  if grep -q "^Error" <<<"$out"; then die "ceph failed: $out"; fi

  each_osd mkfs_osd "$osds" || exit 1
  each_osd start_osd_daemon "$osds" || exit 1

  wait_for_pool ||
    die "pool $kPool took no write within ${kStartSeconds} s" \
      "(logs in $log)"$'\n'"$(ceph_cli 5 -s 2>&1 || true)"
  trap - EXIT
  local port
  port=$(sed -n 's/^mon host = v2:127.0.0.1:\([0-9]*\)$/\1/p' "$conf")
  echo "ceph: mon 127.0.0.1:$port, $osds OSDs, pool $kPool;" \
    "up in $((SECONDS - start)) s; conf $conf"
}

cmd_stop() {
  [ -d "$run" ] || return 0
  stop_all
}

cmd_kill_osd() {
  local id=$1
  running "$run/osd.$id.pid" "$conf" || die "osd.$id is not running"
  kill_pid_file "$run/osd.$id.pid" "$conf"
}

cmd_start_osd() {
  local id=$1
  [ -d "$dir/osd/$id" ] || die "there is no osd.$id in $dir"
  ! running "$run/osd.$id.pid" "$conf" || die "osd.$id is already running"
  start_osd_daemon "$id"
}

cmd_signal_osd() {
  local id=$1 signal=$2
  running "$run/osd.$id.pid" "$conf" || die "osd.$id is not running"
  kill "-$signal" "$(read_pid "$run/osd.$id.pid")"
}

main() {
  [ $# -ge 2 ] || usage
  local cmd=$1
  dir=$(realpath -m "$2")
  conf=$dir/ceph.conf run=$dir/run log=$dir/log
  shift 2
  case "$cmd" in
    start)
      [ $# -le 1 ] || usage
      cmd_start "$@"
      ;;
    stop)
      [ $# -eq 0 ] || usage
      cmd_stop
      ;;
    kill-osd | start-osd | pause-osd | resume-osd)
      if [ $# -ne 1 ] || [[ ! "$1" =~ ^[0-9]+$ ]]; then usage; fi
      [ -f "$conf" ] || die "no cluster in $dir"
      case "$cmd" in
        kill-osd) cmd_kill_osd "$1" ;;
        start-osd) cmd_start_osd "$1" ;;
        pause-osd) cmd_signal_osd "$1" STOP ;;
        resume-osd) cmd_signal_osd "$1" CONT ;;
      esac
      ;;
    *) usage ;;
  esac
}

main "$@"
