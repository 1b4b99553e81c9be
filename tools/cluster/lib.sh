# shellcheck shell=bash
# Shared by ceph.sh and etcd.sh (sourced, not run): daemons handled by the
# pid files the scripts write, and free loopback ports.
#
# A pid is signalled only while the process is alive and has a marker
# among its arguments (a config file or data directory under the cluster's
# directory), so a stale pid file never hits a process that reused the
# pid, and no daemon is ever looked up by name (another cluster may be
# running beside this one).
#
# The caller sets `prog` (its name, for messages).

readonly kStopSeconds=10  # SIGTERM to SIGKILL

die() {
  echo "${prog:-cluster}: $*" >&2
  exit 1
}

# True if PID is a live process (not a zombie) with MARKER as one of its
# arguments.
alive() {
  local pid=$1 marker=$2 stat args
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) } # the state follows the parenthesized command name
  [ "${stat%% *}" != Z ] || return 1
  args=" $(cat "/proc/$pid/cmdline" 2>/dev/null | tr '\0' ' ')"
  [[ "$args" == *" $marker "* ]]
}

# The pid in FILE, or nothing.
read_pid() {
  cat "$1" 2>/dev/null || true
}

# True if the pid in PID_FILE is alive with MARKER.
running() {
  local pid
  pid=$(read_pid "$1")
  [ -n "$pid" ] && alive "$pid" "$2"
}

# Sends SIGNAL to the process in PID_FILE (if alive with MARKER) and waits
# up to SECONDS for it to exit. Fails if it is still there.
signal_and_wait() {
  local pid_file=$1 marker=$2 signal=$3 seconds=$4 pid
  pid=$(read_pid "$pid_file")
  if [ -z "$pid" ] || ! alive "$pid" "$marker"; then return 0; fi
  kill "-$signal" "$pid" 2>/dev/null || true
  kill -CONT "$pid" 2>/dev/null || true # a paused daemon acts on it now
  local until=$((SECONDS + seconds))
  while alive "$pid" "$marker"; do
    [ $SECONDS -lt $until ] || return 1
    sleep 0.1
  done
}

# Stops the process in PID_FILE: SIGTERM, then SIGKILL if it lingers.
# Removes the pid file. Does nothing if it is not running.
stop_pid_file() {
  local pid_file=$1 marker=$2
  signal_and_wait "$pid_file" "$marker" TERM "$kStopSeconds" ||
    signal_and_wait "$pid_file" "$marker" KILL 5 ||
    die "pid $(read_pid "$pid_file") ($pid_file) survived SIGKILL"
  rm -f "$pid_file"
}

# SIGKILLs the process in PID_FILE, waits for it to go, removes the file.
kill_pid_file() {
  local pid_file=$1 marker=$2
  signal_and_wait "$pid_file" "$marker" KILL 5 ||
    die "pid $(read_pid "$pid_file") ($pid_file) survived SIGKILL"
  rm -f "$pid_file"
}

# Prints a loopback port that nothing listens on and that is not among the
# arguments (ports already chosen but not yet bound). It is taken from
# below Linux's ephemeral range (32768 and up), where outgoing connections
# and port-0 listeners never land; a daemon may still lose it to another
# process before it binds, which the callers detect.
free_port() {
  local port taken
  while :; do
    port=$((10000 + (RANDOM * 32768 + RANDOM) % 22000))
    for taken in "$@"; do
      [ "$port" != "$taken" ] || continue 2
    done
    # A connect that fails means nothing listens there.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}
