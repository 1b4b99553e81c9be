#!/usr/bin/env bash
# Plots W1 (durable single-put commits/s vs concurrent committers) from the
# results.csv that //bench:peer_bench writes, one line per engine.
#
#   tools/plot_bench.sh [results.csv] [out.png]
#
# Defaults: bench-results/results.csv -> bench-results/w1_commits.png.
# Needs gnuplot (apt-get install -y gnuplot-nox); without it, says so and
# exits 0, so that scripts calling it do not fail on machines without it.
set -euo pipefail

csv="${1:-bench-results/results.csv}"
png="${2:-$(dirname "$csv")/w1_commits.png}"

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "plot_bench: gnuplot not installed (apt-get install -y gnuplot-nox); skipping the plot" >&2
  exit 0
fi
if [ ! -f "$csv" ]; then
  echo "plot_bench: no $csv; run bazel run --config=opt //bench:peer_bench first" >&2
  exit 1
fi

data="$(mktemp)"
trap 'rm -f "$data"' EXIT

# CSV: engine,workload,key,"label",unit,threads,value,p50_us,p99_us; the
# label is the only quoted field (it contains commas), so split on quotes.
awk -F'"' '
  NR > 1 {
    split($1, a, ","); split($3, b, ",")
    if (a[2] == "W1" && b[2] == "commits/s") {
      rate[a[1], b[3]] = b[4]; threads[b[3]] = 1; engines[a[1]] = 1
    }
  }
  END {
    n = 0
    for (e in engines) names[++n] = e
    # a fixed order: cowdb first, then the peers alphabetically
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
      if ((names[j] == "cowdb") || (names[i] != "cowdb" && names[j] < names[i])) {
        t = names[i]; names[i] = names[j]; names[j] = t
      }
    printf "threads"
    for (i = 1; i <= n; i++) printf " %s", names[i]
    printf "\n"
    m = 0
    for (t in threads) ts[++m] = t + 0
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
      if (ts[j] < ts[i]) { t = ts[i]; ts[i] = ts[j]; ts[j] = t }
    for (k = 1; k <= m; k++) {
      printf "%d", ts[k]
      for (i = 1; i <= n; i++) {
        v = rate[names[i], ts[k]]
        printf " %s", (v == "" ? "NaN" : v)
      }
      printf "\n"
    }
  }' "$csv" > "$data"

columns="$(head -1 "$data" | wc -w)"
if [ "$(wc -l < "$data")" -lt 2 ] || [ "$columns" -lt 2 ]; then
  echo "plot_bench: no W1 rows in $csv" >&2
  exit 1
fi

# pngcairo when this gnuplot has it, else the libgd png terminal.
terminal=png
if gnuplot -e "set terminal" 2>&1 | grep -q pngcairo; then terminal=pngcairo; fi

gnuplot <<GP
set terminal $terminal size 800,500 noenhanced
set output "$png"
set title "W1: durable single-put commits vs concurrent committers"
set xlabel "concurrent committers"
set ylabel "commits/s"
set logscale x 2
set logscale y 10
set grid
set key top left
set datafile missing "NaN"
plot for [c=2:$columns] "$data" using 1:c with linespoints lw 2 pt 7 title columnheader(c)
GP
echo "plot_bench: wrote $png"
