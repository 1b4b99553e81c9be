#!/usr/bin/env bash
# Runs metrics_check.py.  $1: metrics_check.py  $2: cowdb_server  $3: cowdb
set -euo pipefail
exec /usr/bin/python3 "$1" --cowdb_server="$2" --cowdb="$3"
