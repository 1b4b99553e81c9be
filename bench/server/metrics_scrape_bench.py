#!/usr/bin/env python3
"""The CPU one /metrics scrape costs cowdb_server.

Starts cowdb_server with --metrics_listen, loads it with --keys puts (so
that the exposition has every RPC family filled), then scrapes /metrics
--scrapes times and divides the server's CPU time (utime + stime from
/proc/PID/stat) over those scrapes by their number. Prints that, the
exposition's size, and the share of one core it would take at Prometheus'
default 15 s interval. Run from a built tree:

  bazel build --config=opt //server:cowdb_server //client:cowdb
  python3 bench/server/metrics_scrape_bench.py --cowdb_server=bazel-bin/server/cowdb_server
"""

import argparse
import os
import subprocess
import tempfile
import time
import urllib.request


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cowdb_server", default="bazel-bin/server/cowdb_server")
    ap.add_argument("--cowdb", default="bazel-bin/client/cowdb")
    ap.add_argument("--scrapes", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        server = subprocess.Popen(
            [args.cowdb_server, "--data_dir=" + tmp, "--listen=127.0.0.1:0",
             "--metrics_listen=127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            addr = metrics = None
            for line in server.stdout:
                if line.startswith("listening on "):
                    addr = line.split()[-1]
                elif line.startswith("metrics on "):
                    metrics = line.split()[-1]
                    break
            # Fill the RPC families: puts, gets (found and not), a scan.
            for i in range(20):
                subprocess.run([args.cowdb, "--endpoint=" + addr, "put", "k%d" % i, "v"],
                               check=True, capture_output=True)
            for cmd in (["get", "k1"], ["get", "nope"], ["scan"], ["status"]):
                subprocess.run([args.cowdb, "--endpoint=" + addr] + cmd, capture_output=True)
            url = "http://%s/metrics" % metrics
            size = len(urllib.request.urlopen(url).read())
            per_scrape = []
            for _ in range(args.repeats):
                before = cpu_seconds(server.pid)
                for _ in range(args.scrapes):
                    urllib.request.urlopen(url).read()
                per_scrape.append((cpu_seconds(server.pid) - before) / args.scrapes)
            per_scrape.sort()
            median = per_scrape[len(per_scrape) // 2]
            print("exposition: %d bytes; server CPU per scrape: median %.0f us "
                  "(runs: %s); at one scrape per 15 s: %.4f%% of a core"
                  % (size, median * 1e6, ", ".join("%.0f" % (x * 1e6) for x in per_scrape),
                     100 * median / 15))
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
