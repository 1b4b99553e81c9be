#!/usr/bin/env bash
# Plots throughput vs concurrent clients for each workload of the server
# benchmark (cowdb_server vs etcd), from the CSV that
# //bench/server:server_bench writes with --csv.
#
#   tools/plot_server_bench.sh server_bench.csv [out.png]
#
# Needs gnuplot (apt-get install -y gnuplot-nox); without it, says so and
# exits 0.
set -euo pipefail

csv="${1:?usage: tools/plot_server_bench.sh server_bench.csv [out.png]}"
png="${2:-${csv%.csv}.png}"

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "plot_server_bench: gnuplot not installed (apt-get install -y gnuplot-nox); skipping" >&2
  exit 0
fi
[ -f "$csv" ] || { echo "plot_server_bench: no $csv" >&2; exit 1; }

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
# CSV: workload,clients,target,ops_per_sec,... -> one file per workload and
# target: "clients ops_per_sec" lines.
awk -F, -v dir="$dir" 'NR > 1 { print $2, $4 > (dir "/" $1 "." $3) }' "$csv"
workloads="$(awk -F, 'NR > 1 && !seen[$1]++ { print $1 }' "$csv")"
targets="$(awk -F, 'NR > 1 && !seen[$3]++ { print $3 }' "$csv")"

terminal=png
if gnuplot -e "set terminal" 2>&1 | grep -q pngcairo; then terminal=pngcairo; fi

{
  echo "set terminal $terminal size 1000,700 noenhanced"
  echo "set output '$png'"
  echo "set multiplot layout 2,2 title 'cowdb_server vs etcd over loopback gRPC (ops/s vs concurrent clients)'"
  echo "set logscale x 2; set logscale y 10; set grid; set key top left"
  echo "set xlabel 'clients'; set ylabel 'ops/s'"
  for w in $workloads; do
    echo "set title '$w'"
    plot="plot"
    sep=""
    for t in $targets; do
      plot="$plot$sep '$dir/$w.$t' using 1:2 with linespoints lw 2 pt 7 title '$t'"
      sep=","
    done
    echo "$plot"
  done
  echo "unset multiplot"
} | gnuplot
echo "plot_server_bench: wrote $png"
