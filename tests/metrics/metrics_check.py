#!/usr/bin/env python3
"""cowdb_server's /metrics, checked with an independent parser.

Starts cowdb_server with --metrics_listen on free ports, drives it with
the cowdb CLI, scrapes /metrics and parses it with Debian's
python3-prometheus-client (text_string_to_metric_families: a malformed
line raises). Checks that every family has HELP and TYPE, that the RPC
counters and histograms count exactly the calls made (by method and
status code), that the database's counters moved with the commits, and
that /healthz answers and other paths and methods are refused.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("metrics_check: python3-prometheus-client is missing (tools/setup.sh installs it)")


def fail(msg):
    sys.exit("metrics_check: FAILED: " + msg)


def expect(cond, msg):
    if not cond:
        fail(msg)


def scrape(addr):
    with urllib.request.urlopen("http://%s/metrics" % addr, timeout=10) as r:
        expect(r.status == 200, "/metrics answered %d" % r.status)
        expect(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"),
               "content type " + r.headers["Content-Type"])
        text = r.read().decode("utf-8")
    families = {}
    for family in text_string_to_metric_families(text):
        expect(family.documentation, "%s has no HELP" % family.name)
        expect(family.type in ("counter", "gauge", "histogram"),
               "%s has type %s" % (family.name, family.type))
        families[family.name] = family
    return families


def sample(families, family, name, **labels):
    """The value of one sample; 0 if absent (a counter not yet incremented)."""
    for s in families[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cowdb_server", required=True)
    ap.add_argument("--cowdb", required=True)
    args = ap.parse_args()
    tmp = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp()
    server = subprocess.Popen(
        [args.cowdb_server, "--data_dir=" + os.path.join(tmp, "db"),
         "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0", "--shutdown_grace=300ms"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        addr = metrics = None
        for line in server.stdout:
            if line.startswith("listening on "):
                addr = line.split()[-1]
            elif line.startswith("metrics on "):
                metrics = line.split()[-1]
                break
        expect(addr and metrics, "the server printed no addresses")

        def cli(*a, code=0):
            r = subprocess.run([args.cowdb, "--endpoint=" + addr] + list(a),
                               capture_output=True, text=True)
            expect(r.returncode == code, "cowdb %s exited %d: %s" % (a, r.returncode, r.stderr))

        before = scrape(metrics)
        commits_before = sample(before, "cowdb_commits", "cowdb_commits_total")
        for i in range(3):
            cli("put", "k%d" % i, "v")
        cli("get", "missing", code=1)
        cli("get", "missing", code=1)
        cli("get", "k1")
        after = scrape(metrics)

        put, get = "/cowdb.v1.KV/Put", "/cowdb.v1.KV/Get"
        total = "cowdb_rpc_requests_total"
        expect(sample(after, "cowdb_rpc_requests", total, method=put, code="OK") == 3,
               "3 puts, counted %s" % sample(after, "cowdb_rpc_requests", total, method=put))
        expect(sample(after, "cowdb_rpc_requests", total, method=get, code="NOT_FOUND") == 2,
               "2 missing gets")
        expect(sample(after, "cowdb_rpc_requests", total, method=get, code="OK") == 1,
               "1 get that found its key")
        # The histogram: cumulative buckets ending at +Inf = count = calls.
        hist = "cowdb_rpc_duration_seconds"
        buckets = [s for s in after[hist].samples
                   if s.name == hist + "_bucket" and s.labels["method"] == put]
        expect(len(buckets) == 17 and buckets[-1].labels["le"] == "+Inf", "put buckets")
        expect(all(a.value <= b.value for a, b in zip(buckets, buckets[1:])),
               "put buckets are not cumulative")
        expect(buckets[-1].value == 3, "put +Inf bucket %s" % buckets[-1].value)
        expect(sample(after, hist, hist + "_count", method=put) == 3, "put count")
        expect(sample(after, hist, hist + "_sum", method=put) > 0, "put sum")
        # The database's own figures.
        expect(sample(after, "cowdb_commits", "cowdb_commits_total") == commits_before + 3,
               "commits did not move by 3")
        expect(sample(after, "cowdb_latest_version", "cowdb_latest_version") == 3,
               "latest version")
        expect(sample(after, "cowdb_entries", "cowdb_entries") == 3, "entries")
        syncs = sample(after, "cowdb_commit_syncs", "cowdb_commit_syncs_total")
        expect(0 < syncs <= 3, "commit syncs %s" % syncs)
        expect(sample(after, "cowdb_open_transactions", "cowdb_open_transactions") == 0,
               "open transactions")
        kinds = sorted(s.labels["kind"] for s in after["cowdb_disk_bytes_by_kind"].samples)
        expect(kinds == ["blobs", "log", "pages", "records"], "disk bytes by kind: %s" % kinds)
        expect(sample(after, "cowdb_disk_bytes_by_kind", "cowdb_disk_bytes_by_kind",
                      kind="log") > 0, "no log bytes on disk")
        expect(sample(after, "cowdb_inflight_writes", "cowdb_inflight_writes") == 0,
               "writes in flight after they were answered")
        for name in ("cowdb_cache_capacity_bytes", "cowdb_disk_bytes", "cowdb_log_bytes",
                     "cowdb_rejected_writes", "cowdb_inflight_write_bytes"):
            expect(name in after, name + " missing")

        with urllib.request.urlopen("http://%s/healthz" % metrics, timeout=10) as r:
            expect(r.status == 200 and r.read() == b"ok\n", "/healthz")
        for path, method, code in (("/nope", "GET", 404), ("/metrics", "POST", 405)):
            try:
                urllib.request.urlopen(
                    urllib.request.Request("http://%s%s" % (metrics, path), method=method,
                                           data=b"" if method == "POST" else None), timeout=10)
                fail("%s %s was served" % (method, path))
            except urllib.error.HTTPError as e:
                expect(e.code == code, "%s %s answered %d" % (method, path, e.code))
        print("metrics_check: ok")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
