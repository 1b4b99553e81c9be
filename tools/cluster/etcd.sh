#!/usr/bin/env bash
# A throwaway etcd 3.4 cluster on loopback, for tests and by hand: N
# members (/usr/bin/etcd), each with a client and a peer port chosen free
# on 127.0.0.1, so several clusters can run on one machine at once. Data
# directories, logs and pid files stay under DIR.
#
# Usage:
#   etcd.sh start DIR [MEMBERS]   start MEMBERS members (default 3); returns
#                                 once every member is healthy (at most
#                                 ~30 s) and writes DIR/endpoints
#   etcd.sh stop DIR              stop every member (SIGTERM, then SIGKILL);
#                                 safe to repeat
#   etcd.sh kill-member DIR N     SIGKILL member N (0 to MEMBERS-1)
#   etcd.sh start-member DIR N    restart member N on its data directory and
#                                 ports; returns once it is healthy again
#
# DIR/endpoints holds the client addresses on one line, comma-separated
# (127.0.0.1:PORT,...), as etcdctl takes them:
#   etcdctl --endpoints="$(cat DIR/endpoints)" put k v
#
# Layout: member N is named mN; its data directory is DIR/data/mN, its log
# DIR/log/mN.log, its pid file DIR/run/mN.pid, and line N+1 of DIR/members
# reads "mN CLIENT_PORT PEER_PORT". Members are found only by their pid
# files, and a pid is signalled only while its command line still names
# the member's data directory (see lib.sh).
set -euo pipefail

prog=etcd.sh
# shellcheck source=tools/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly kEtcd=/usr/bin/etcd
readonly kEtcdctl=/usr/bin/etcdctl
readonly kStartSeconds=30 # `start` and `start-member`
readonly kAttempts=3      # tries of `start` when a port was taken meanwhile

usage() {
  sed -n '/^# Usage:/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# The argument that marks member N's process (see lib.sh).
marker() {
  echo "--data-dir=$dir/data/m$1"
}

# "CLIENT_PORT PEER_PORT" of member N.
ports_of() {
  local n=$1
  [ -f "$dir/members" ] || die "no cluster in $dir"
  awk -v name="m$n" '$1 == name { print $2, $3; found = 1 }
    END { exit !found }' "$dir/members" ||
    die "there is no member $n in $dir"
}

member_count() {
  wc -l <"$dir/members"
}

# Starts member N in the background and writes its pid file. The flags
# that bootstrap the cluster are ignored once the data directory exists.
launch_member() {
  local n=$1 ports client peer initial="" name peer_port
  ports=$(ports_of "$n")
  read -r client peer <<<"$ports"
  while read -r name _ peer_port; do
    initial+="${initial:+,}$name=http://127.0.0.1:$peer_port"
  done <"$dir/members"
  mkdir -p "$dir/data"
  "$kEtcd" --name="m$n" "$(marker "$n")" \
    --listen-client-urls="http://127.0.0.1:$client" \
    --advertise-client-urls="http://127.0.0.1:$client" \
    --listen-peer-urls="http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer" \
    --initial-cluster="$initial" \
    --initial-cluster-state=new \
    --initial-cluster-token="$dir" \
    --logger=zap --log-outputs=stderr \
    </dev/null >>"$log/m$n.log" 2>&1 &
  echo $! >"$run/m$n.pid"
}

# Waits until every endpoint in ENDPOINTS (comma-separated) answers a
# health check, which reads through the Raft log and so needs a leader.
# Returns 1 at the deadline, 2 as soon as one of MEMBERS (numbers) exited.
wait_healthy() {
  local endpoints=$1 n
  shift
  while [ $SECONDS -lt "$deadline" ]; do
    for n in "$@"; do
      running "$run/m$n.pid" "$(marker "$n")" || return 2
    done
    if "$kEtcdctl" --endpoints="$endpoints" --dial-timeout=1s \
      --command-timeout=2s endpoint health >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

# The last lines of member N's log, for error messages.
log_tail() {
  echo "--- last lines of $log/m$1.log:"
  tail -n 5 "$log/m$1.log" 2>/dev/null || true
}

# Why the first member that is not running stopped.
first_dead() {
  local n
  for ((n = 0; n < $(member_count); n++)); do
    if ! running "$run/m$n.pid" "$(marker "$n")"; then
      echo "member $n exited"$'\n'"$(log_tail "$n")"
      return
    fi
  done
}

# One member after another: a leader stopping hands its leadership to
# another member first, and when the others are stopping at the same time
# that hand-over waits out its timeout (7 s, tried).
stop_all() {
  local f n
  for f in "$run"/m*.pid; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .pid)
    stop_pid_file "$f" "$(marker "${n#m}")"
  done
}

# ----------------------------------------------------------------- commands

cmd_start() {
  local members=${1:-3}
  [[ "$members" =~ ^[1-9][0-9]*$ ]] ||
    die "MEMBERS must be a positive number, not '$members'"
  [ ! -e "$dir/members" ] ||
    die "$dir already holds a cluster (stop it, then remove $dir)"
  mkdir -p "$dir" "$run" "$log"
  local start=$SECONDS attempt n ports endpoints status all=()
  deadline=$((start + kStartSeconds))
  trap 'stop_all >/dev/null 2>&1 || true' EXIT

  for ((attempt = 1; attempt <= kAttempts; attempt++)); do
    ports=() endpoints="" all=()
    : >"$dir/members"
    for ((n = 0; n < members; n++)); do
      ports+=("$(free_port "${ports[@]}")")
      ports+=("$(free_port "${ports[@]}")")
      echo "m$n ${ports[2 * n]} ${ports[2 * n + 1]}" >>"$dir/members"
      endpoints+="${endpoints:+,}127.0.0.1:${ports[2 * n]}"
    done
    for ((n = 0; n < members; n++)); do
      launch_member "$n"
      all+=("$n")
    done

    status=0
    wait_healthy "$endpoints" "${all[@]}" || status=$?
    if [ $status -eq 0 ]; then
      trap - EXIT
      echo "$endpoints" >"$dir/endpoints"
      echo "etcd: $members members at $endpoints; up in $((SECONDS - start)) s"
      return
    fi
    [ $status -eq 2 ] ||
      die "the members were not healthy within $kStartSeconds s (logs in $log)"
    # A member that lost a port to another process between free_port and
    # its bind: start over on new ports.
    if ! grep -qs "address already in use" "$log"/m*.log ||
      [ "$attempt" -eq "$kAttempts" ]; then
      die "$(first_dead)"
    fi
    stop_all
    rm -rf "$dir/data" "$log"/m*.log
  done
}

cmd_stop() {
  [ -d "$run" ] || return 0
  stop_all
}

cmd_kill_member() {
  local n=$1
  ports_of "$n" >/dev/null
  running "$run/m$n.pid" "$(marker "$n")" || die "member $n is not running"
  kill_pid_file "$run/m$n.pid" "$(marker "$n")"
}

cmd_start_member() {
  local n=$1 ports client
  ports=$(ports_of "$n")
  read -r client _ <<<"$ports"
  ! running "$run/m$n.pid" "$(marker "$n")" || die "member $n is already running"
  deadline=$((SECONDS + kStartSeconds))
  launch_member "$n"
  local status=0
  wait_healthy "127.0.0.1:$client" "$n" || status=$?
  case $status in
    0) ;;
    1) die "member $n was not healthy within $kStartSeconds s (log $log/m$n.log)" ;;
    *) die "member $n exited"$'\n'"$(log_tail "$n")" ;;
  esac
}

main() {
  [ $# -ge 2 ] || usage
  local cmd=$1
  dir=$(realpath -m "$2")
  run=$dir/run log=$dir/log
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
    kill-member | start-member)
      if [ $# -ne 1 ] || [[ ! "$1" =~ ^[0-9]+$ ]]; then usage; fi
      "cmd_${cmd//-/_}" "$1"
      ;;
    *) usage ;;
  esac
}

main "$@"
