#!/usr/bin/env python3
"""Differential test of cowdb's etcd face: etcdctl 3.4 against a real etcd.

Starts a real etcd 3.4 and a second target (cowdb_server --etcd_listen, or
with ETCD_DIFF_TARGET=etcd a second etcd, which validates this harness),
runs one scripted sequence of etcdctl commands against both, normalizes
what must differ between two servers (cluster, member and lease ids, raft
term, the revision a fresh store starts at, addresses, timings) and
compares everything else: exit codes, stdout and stderr (errors included).

Each case is run on both targets at once (one thread each); the outputs of
a case are compared as a whole, and a mismatch prints a unified diff and
the first differing command. Every case is reported; the exit code is
non-zero if any mismatched.

    etcdctl_diff.py --cowdb_server=PATH   (or ETCD_DIFF_TARGET=etcd)

ETCD_DIFF_INJECT=1 changes one value written on the second target only:
the run must then fail (a check that a difference is detected).

Transcripts (normalized and raw) go to $TEST_UNDECLARED_OUTPUTS_DIR.
"""

import argparse
import base64
import concurrent.futures
import ctypes
import difflib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
# Every unary etcdctl command gives up after this (etcdctl's default: 5s).
COMMAND_TIMEOUT = "4s"
# Commands and cases not started after this are not run, and the cases
# fail (Bazel's timeout for a medium test: 300 s).
TIME_BUDGET_S = 200
# Names of the locks and elections: their keys end in a lease id.
SESSION_NAMES = ("dlock", "delect")

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # PR_SET_PDEATHSIG: a server outlives no harness (e.g. killed on timeout).
    _libc.prctl(1, signal.SIGKILL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def etcdctl_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


def quick_ctl(endpoint, *args, timeout=5):
    return subprocess.run(
        [ETCDCTL, "--endpoints=" + endpoint, "--dial-timeout=1s", "--command-timeout=2s", *args],
        capture_output=True, text=True, env=etcdctl_env(), timeout=timeout)


# ---------------------------------------------------------------------------
# Servers


class Server:
    """A server under test: its gRPC endpoint (host:port) and its process."""

    def __init__(self, name, workdir, offset_writes=0):
        self.offset_writes = offset_writes
        self.name = name
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.proc = None
        self.endpoint = None
        self.log = os.path.join(workdir, "server.log")

    def command(self):
        raise NotImplementedError

    def start(self, deadline_s=30):
        for attempt in range(3):  # a free port can be taken meanwhile
            cmd = self.command()
            with open(self.log, "a") as log:
                log.write("$ " + " ".join(cmd) + "\n")
                log.flush()
                # etcd takes ETCD_* variables as flags: ETCD_DIFF_* are not.
                env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=self.workdir,
                                             env=env, preexec_fn=_die_with_parent)
            end = time.time() + deadline_s
            while time.time() < end:
                if self.proc.poll() is not None:
                    break
                try:
                    r = quick_ctl(self.endpoint, "get", "ready-probe", "-w", "json")
                    if r.returncode == 0:
                        return
                except subprocess.TimeoutExpired:
                    pass
                time.sleep(0.1)
            self.stop()
            if attempt < 2 and "address already in use" in tail(self.log).lower():
                continue
            raise RuntimeError(f"{self.name} did not start serving on {self.endpoint};"
                               f" its log ({self.log}) ends:\n{tail(self.log)}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class EtcdServer(Server):
    def command(self):
        client, peer = free_port(), free_port()
        self.endpoint = f"127.0.0.1:{client}"
        data = os.path.join(self.workdir, "data")
        shutil.rmtree(data, ignore_errors=True)
        curl, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        return [ETCD, "--name=" + self.name, "--data-dir=" + data,
                "--listen-client-urls=" + curl, "--advertise-client-urls=" + curl,
                "--listen-peer-urls=" + purl, "--initial-advertise-peer-urls=" + purl,
                "--initial-cluster=" + self.name + "=" + purl, "--log-level=error"]


class CowdbServer(Server):
    def __init__(self, name, workdir, binary):
        super().__init__(name, workdir)
        self.binary = binary

    def command(self):
        etcd_port = free_port()
        self.endpoint = f"127.0.0.1:{etcd_port}"
        data = os.path.join(self.workdir, "data")
        shutil.rmtree(data, ignore_errors=True)
        # --retain_versions=0: keep every version until a Compact, as etcd
        # keeps every revision (no auto-compaction by default).
        return [self.binary, "--data_dir=" + data, f"--listen=127.0.0.1:{free_port()}",
                "--etcd_listen=" + self.endpoint, "--retain_versions=0"]

    def start(self, deadline_s=30):
        try:
            super().start(deadline_s)
        except RuntimeError as e:
            if "etcd_listen" in tail(self.log):
                raise RuntimeError(f"{e}\ncowdb_server does not know --etcd_listen yet:"
                                   " the etcd face is not in this build") from None
            raise


# ---------------------------------------------------------------------------
# Running etcdctl on one target, recording a normalized transcript


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    def json(self):
        return json.loads(self.out)


class Runner:
    """Runs the script's commands on one server and normalizes their output.

    Commands are templates: {NAME} and {NAME+K}/{NAME-K} stand for a
    revision captured on this server (cap=NAME), or the hex id of a lease
    captured with lease=NAME; {tmp} is this server's scratch directory.
    The transcript shows the template, so both servers' transcripts agree
    when their behaviour does.
    """

    def __init__(self, server, deadline, inject=False):
        self.server = server
        self.deadline = deadline
        self.name = server.name
        self.endpoint = server.endpoint
        self.tmp = os.path.join(server.workdir, "scratch")
        os.makedirs(self.tmp, exist_ok=True)
        self.inject = inject
        self.revs = {}
        self.leases = {}  # capture name -> hex id
        self.lease_no = {}  # int id -> order of appearance
        self.member_no = {}
        self.bgs = {}
        self.lines = []  # the current case's normalized transcript
        self.raw = []  # everything, unnormalized
        # The second etcd starts at another revision than the first, as cowdb
        # may: revisions are compared relative to each server's start.
        for i in range(server.offset_writes):
            self._exec(["put", "offset-probe", str(i)])
        if server.offset_writes:
            self._exec(["del", "offset-probe"])
        base = Result(*self._exec(["get", "ready-probe", "-w", "json"]))
        # (etcd's JSON omits a zero revision: cowdb's empty database is 0)
        self.base = base.json()["header"].get("revision", 0)
        self.revs["base"] = self.base

    # -- substitution and normalization ------------------------------------

    def subst(self, template):
        def one(m):
            name, off = m.group(1), int(m.group(2) or 0)
            if name == "tmp":
                return self.tmp
            if name in self.revs:
                return str(self.revs[name] + off)
            if name in self.leases:
                return self.leases[name]
            raise KeyError(f"unknown placeholder {m.group(0)}")
        return re.sub(r"\{(\w+)([+-]\d+)?\}", one, template)

    def rel(self, rev):
        """A revision relative to this server's revision at the start."""
        return f"@{rev - self.base}" if isinstance(rev, int) and rev > 0 else rev

    def lease_ph(self, lease_id):
        if isinstance(lease_id, str):
            lease_id = int(lease_id, 16)
        if lease_id == 0:
            return 0
        n = self.lease_no.setdefault(lease_id, len(self.lease_no) + 1)
        return f"<lease#{n}>"

    def text(self, s):
        s = s.replace(self.tmp, "TMP").replace(self.server.workdir, "WORKDIR")
        s = s.replace(self.endpoint, "ENDPOINT")
        s = re.sub(r"\blease ([0-9a-f]+)\b", lambda m: "lease " + self.lease_ph(m.group(1)), s)
        names = "|".join(SESSION_NAMES)
        s = re.sub(r"\b(" + names + r")/([0-9a-f]+)\b",
                   lambda m: m.group(1) + "/" + self.lease_ph(m.group(2)), s)
        s = re.sub(r"\b(compacted revision |rev=)(\d+)\b",
                   lambda m: m.group(1) + str(self.rel(int(m.group(2)))), s)
        return s

    def b64(self, v):
        try:
            raw = base64.b64decode(v, validate=True)
            s = raw.decode()
            if s.isprintable():
                return self.text(s)
        except (ValueError, UnicodeDecodeError):
            pass
        return "b64:" + v

    def norm_json(self, obj, key=None):
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                if k in ("cluster_id", "member_id", "raft_term"):
                    out[k] = "<set>" if v else v
                elif k in ("revision", "create_revision", "mod_revision", "compact_revision",
                           "CompactRevision"):
                    out[k] = self.rel(v)
                elif k in ("lease", "ID", "id") and isinstance(v, int):
                    out[k] = self.lease_ph(v)
                elif k in ("key", "value", "range_end") and isinstance(v, str):
                    out[k] = self.b64(v)
                elif k == "keys" and isinstance(v, list):
                    out[k] = [self.b64(x) for x in v]
                else:
                    out[k] = self.norm_json(v, k)
            return out
        if isinstance(obj, list):
            return [self.norm_json(x, key) for x in obj]
        if isinstance(obj, str):
            return self.text(obj)
        return obj

    def norm_err(self, err):
        out = []
        for line in err.splitlines():
            if line.startswith("{"):
                try:
                    d = json.loads(line)
                except ValueError:
                    d = None
                if isinstance(d, dict) and "level" in d:
                    if d["level"] in ("debug", "info"):
                        continue
                    line = f"log[{d['level']}]: {d.get('error') or d.get('msg')}"
            line = self.text(line.rstrip())
            if line and line not in out:
                out.append(line)
        return out

    def norm_out(self, out, as_json, norm):
        if as_json and out.strip():
            try:
                docs = [json.loads(l) for l in out.splitlines() if l.strip()]
            except ValueError:
                docs = None
            if docs is not None:
                if getattr(norm, "all_docs", False):
                    return [json.dumps(d, sort_keys=True) for d in norm(self, docs)]
                lines = []
                for d in docs:
                    d = norm(self, d) if norm else self.norm_json(d)
                    lines += json.dumps(d, indent=1, sort_keys=True).splitlines()
                return lines
        lines = [self.text(l.rstrip()) for l in out.splitlines()]
        if norm:
            lines = norm(self, lines)
        return lines

    # -- running commands ----------------------------------------------------

    def _argv(self, args):
        return [ETCDCTL, "--endpoints=" + self.endpoint, "--dial-timeout=2s",
                "--command-timeout=" + COMMAND_TIMEOUT] + args

    def _exec(self, args, stdin=None, timeout=20):
        argv = self._argv(args)
        if self.server.proc.poll() is not None:
            return f"not run: {self.name} exited", "", ""
        if time.time() > self.deadline:
            return "not run: out of time", "", ""
        try:
            p = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                               env=etcdctl_env(), timeout=timeout)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc = "timeout"
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        self.raw.append(f"$ {shlex.join(argv)}" + (f" <<EOF\n{stdin}EOF" if stdin else "") +
                        f"\nrc={rc}\n{out}{'' if out.endswith(chr(10)) or not out else chr(10)}"
                        f"{err}")
        return rc, out, err

    def record(self, template, stdin, rc, out, err, as_json, norm, show_out=True):
        self.lines.append(f"$ etcdctl {template}")
        if stdin:
            self.lines += ["  | " + l for l in stdin.splitlines()]
        self.lines.append(f"rc={rc}")
        if show_out:
            self.lines += ["  " + l for l in self.norm_out(out, as_json, norm)]
        self.lines += ["  stderr: " + l for l in self.norm_err(err)]

    def ctl(self, template, stdin=None, cap=None, lease=None, norm=None, show_out=True,
            record=True):
        """Runs `etcdctl TEMPLATE` and records its normalized result."""
        args = shlex.split(self.subst(template))
        rc, out, err = self._exec(args, self.subst(stdin) if stdin else stdin)
        res = Result(rc, out, err)
        if lease and rc == 0:
            m = re.search(r"lease ([0-9a-f]+) granted", out)
            if m:
                self.leases[lease] = m.group(1)
                self.lease_ph(m.group(1))
            elif '"ID"' in out:
                self.leases[lease] = "%x" % res.json()["ID"]
                self.lease_ph(res.json()["ID"])
        if cap and rc == 0:
            d = res.json()
            self.revs[cap] = (d["header"] if "header" in d else d).get("revision", 0)
        if record:
            as_json = "-w json" in template or "--write-out=json" in template
            self.record(template, stdin, rc, out, err, as_json, norm, show_out)
        return res

    def wait_keys(self, prefix, n, timeout=10):
        """Waits (unrecorded polls) until `prefix` has n keys; notes if never."""
        end = time.time() + timeout
        while time.time() < end:
            res = self.ctl(f"get {prefix} --prefix --keys-only -w json", record=False)
            if res.rc == 0 and len(res.json().get("kvs", [])) >= n:
                return True
            time.sleep(0.1)
        self.note(f"{prefix}: fewer than {n} keys after {timeout}s")
        return False

    def note(self, text):
        self.lines.append("# " + text)

    # -- background commands (watch, lock, elect) ------------------------------

    def bg(self, name, template):
        argv = self._argv(shlex.split(self.subst(template)))
        if self.server.proc.poll() is not None or time.time() > self.deadline:
            argv = ["true"]  # the server is gone or time is up: runs nothing
        out = open(os.path.join(self.tmp, f"bg-{name}.out"), "w+")
        err = open(os.path.join(self.tmp, f"bg-{name}.err"), "w+")
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             env=etcdctl_env())
        self.bgs[name] = (p, out, err, template)
        self.raw.append(f"$ {shlex.join(argv)} &  # {name}")
        self.lines.append(f"$ etcdctl {template} &  # {name}")

    def _read(self, f):
        f.flush()
        with open(f.name, errors="replace") as g:
            return g.read()

    def bg_wait_for(self, name, pattern, timeout=10):
        """Waits until the stdout of `name` matches the regex pattern."""
        p, out, _, _ = self.bgs[name]
        end = time.time() + timeout
        while time.time() < end:
            if re.search(pattern, self._read(out), re.M):
                return True
            if p.poll() is not None:
                break
            time.sleep(0.05)
        found = bool(re.search(pattern, self._read(out), re.M))
        if not found:
            self.note(f"{name}: output never matched {pattern!r} within {timeout}s"
                      f" (exited: {p.poll() is not None})")
        return found

    def bg_peek(self, name, as_json=False):
        p, out, _, _ = self.bgs[name]
        self.note(f"{name}: running={p.poll() is None}")
        o = self._read(out)
        self.lines += ["  " + l for l in self.norm_out(o, as_json, None)] or ["  (no output yet)"]

    def bg_finish(self, name, sig=signal.SIGINT, wait=10, as_json=False, norm=None):
        """Signals `name` (if sig and still running), waits and records its output."""
        p, out, err, template = self.bgs.pop(name)
        interrupted = sig is not None and p.poll() is None
        if interrupted:
            p.send_signal(sig)
        try:
            p.wait(wait)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = f"still running after {wait}s"
        o, e = self._read(out), self._read(err)
        out.close()
        err.close()
        self.raw.append(f"# {name} ended rc={rc}\n{o}{e}")
        self.lines.append(f"# {name} ended: rc={rc}")
        self.lines += ["  " + l for l in self.norm_out(o, as_json, norm)]
        errs = self.norm_err(e)
        if interrupted:
            # An interrupt may land in a call (elect's observer, lock's
            # release): whether it logs "context canceled" is timing.
            errs = [l for l in errs if "context canceled" not in l]
        self.lines += ["  stderr: " + l for l in errs]

    def kill_all(self):
        for p, out, err, _ in self.bgs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
            out.close()
            err.close()
        self.bgs.clear()


# ---------------------------------------------------------------------------
# Normalizers for outputs whose fields may legitimately differ


def norm_status(r, doc):
    out = []
    for e in doc:
        st = e.get("Status", {})
        hdr = st.get("header", {})
        ver = st.get("version", "")
        out.append({
            "Endpoint": r.text(e.get("Endpoint", "")),
            "header": r.norm_json(hdr),
            "version is 3.4.x": ver.startswith("3.4."),
            "leader == header.member_id": st.get("leader") == hdr.get("member_id"),
            "raftTerm == header.raft_term": st.get("raftTerm") == hdr.get("raft_term"),
            "dbSize > 0": st.get("dbSize", 0) > 0,
            "errors": st.get("errors"),
        })
    return out


def norm_health(r, doc):
    return [{"endpoint": r.text(e.get("endpoint", "")), "health": e.get("health"),
             "error": r.text(e.get("error", ""))} for e in doc]


def norm_hashkv(r, doc):
    out = []
    for e in doc:
        h = e.get("HashKV", {})
        out.append({"Endpoint": r.text(e.get("Endpoint", "")),
                    "header": r.norm_json(h.get("header", {})),
                    "hash": "<nonzero>" if h.get("hash") else h.get("hash"),
                    # absent: 0 (JSON omits zero; etcd says -1 for none)
                    "compact_revision": r.rel(h.get("compact_revision", 0))})
    return out


def norm_members(r, doc):
    out = r.norm_json({k: v for k, v in doc.items() if k != "members"})
    members = []
    for m in doc.get("members", []):
        mid = m.get("ID", 0)
        n = r.member_no.setdefault(mid, len(r.member_no) + 1)
        members.append({
            "ID": f"<member#{n}>" if mid else mid,
            "ID == header.member_id": mid == doc.get("header", {}).get("member_id"),
            "name": "<name>" if m.get("name") else "",
            # A single cowdb member has no peer URL (docs/ETCD.md).
            "peerURLs": "<not compared>",
            "clientURLs": [r.text(u) for u in m.get("clientURLs", [])],
            "isLearner": m.get("isLearner", False),
        })
    out["members"] = members
    return out


def norm_watch(r, docs):
    """Watch responses: one line per event (how a server batches events into
    responses is its own), and how the watch ended if the server ended it."""
    out = []
    for doc in docs:
        for ev in doc.get("Events") or []:
            out.append(r.norm_json(ev))
        if doc.get("Canceled") or doc.get("CompactRevision"):
            out.append({"Canceled": doc.get("Canceled"),
                        "CompactRevision": r.rel(doc.get("CompactRevision"))})
    return out


norm_watch.all_docs = True


def norm_ttl(r, doc):
    """lease timetolive: the remaining TTL only as 'within 5 s of granted'."""
    d = r.norm_json(doc)
    granted, ttl = doc.get("granted-ttl"), doc.get("ttl")
    if isinstance(ttl, int) and isinstance(granted, int) and granted > 0:
        d["ttl"] = "<granted-5s..granted>" if granted - 5 <= ttl <= granted else ttl
    if isinstance(d.get("keys"), list):
        d["keys"] = sorted(d["keys"])  # in no particular order
    return d


def norm_ttl_text(r, lines):
    def one(line):
        # attached keys: in no particular order (etcd keeps them in a map)
        line = re.sub(r"attached keys\(\[(.*)\]\)",
                      lambda m: "attached keys([" + " ".join(sorted(m.group(1).split())) + "])",
                      line)
        m = re.search(r"TTL\((\d+)s\), remaining\((-?\d+)s\)", line)
        if m and int(m.group(1)) - 5 <= int(m.group(2)) <= int(m.group(1)):
            return line.replace(m.group(0), f"TTL({m.group(1)}s), remaining(<granted-5s..granted>)")
        return line
    return [one(l) for l in lines]


def norm_lease_list(r, lines):
    """lease list: ids normalized; their order (etcd: by expiry) is not compared."""
    if lines and lines[0].startswith("found"):
        return [lines[0]] + sorted(
            r.lease_ph(l.strip()) if re.fullmatch(r"[0-9a-f]+", l.strip()) else l
            for l in lines[1:])
    return lines


def norm_lease_list_json(r, doc):
    d = r.norm_json(doc)
    if isinstance(d.get("leases"), list):
        d["leases"] = sorted(d["leases"], key=lambda x: json.dumps(x, sort_keys=True))
    return d


# ---------------------------------------------------------------------------
# The script: cases run in order; each runs on both servers at once.

CASES = []


def case(title):
    def reg(fn):
        CASES.append((title, fn))
        return fn
    return reg


def txn(*sections):
    """etcdctl txn's stdin: compares, success ops, failure ops."""
    return "".join("".join(l + "\n" for l in s) + "\n" for s in sections)


@case("kv: put and get")
def _(r):
    r.ctl("put k/a 1")
    r.ctl("get k/a")
    r.ctl("get k/a -w json")
    r.ctl("put k/a 2 --prev-kv")
    r.ctl("put k/a 3 --prev-kv -w json", cap="k3")
    r.ctl("put k/a 4 --prev-kv -w json")
    r.ctl("get k/a -w json")
    r.ctl("get k/a --rev={k3} -w json")
    r.ctl("get k/a --rev={k3}")
    r.ctl("put k/empty ''")
    r.ctl("get k/empty -w json")
    r.ctl("get k/missing")
    r.ctl("get k/missing -w json")
    r.ctl("put k/b b")
    # ETCD_DIFF_INJECT: an unrecorded write that differs on the second
    # server only; `get k/ --prefix` must then mismatch.
    r.ctl("put k/b " + ("INJECTED" if r.inject else "b"), record=False)
    r.ctl("get k/ --prefix")
    r.ctl("get k/a --rev={k3+1000}")  # a future revision
    r.ctl("put '' x")
    r.ctl("get ''")


@case("kv: ranges, limits, sorting, historical reads")
def _(r):
    # Five keys with distinct create and mod revisions, versions and values.
    versions = {"r/c": 2, "r/a": 1, "r/e": 5, "r/b": 3, "r/d": 4}
    finals = {"r/a": "m", "r/b": "q", "r/c": "b", "r/d": "z", "r/e": "f"}
    for k, n in versions.items():
        for i in range(n - 1):
            r.ctl(f"put {k} old{i}", record=False)
    r.ctl("put r/b mid -w json", cap="mid")
    for k in ["r/e", "r/a", "r/c", "r/d", "r/b"]:
        r.ctl(f"put {k} {finals[k]}")
    r.ctl("get r/ --prefix")
    r.ctl("get r/ --prefix -w json")
    r.ctl("get r/b r/d")
    r.ctl("get r/b r/d -w json")
    r.ctl("get r/c --from-key --keys-only")
    r.ctl("get r/c --from-key --limit=2 -w json")
    r.ctl("get r/ --prefix --limit=2 -w json")
    # etcdctl 3.4 has no --count-only: the count is the json output's "count".
    r.ctl("get r/ --prefix --limit=1 --keys-only -w json")
    r.ctl("get r/ --prefix --keys-only -w json")
    for target in ["KEY", "VERSION", "CREATE", "MODIFY", "VALUE"]:
        for order in ["ASCEND", "DESCEND"]:
            r.ctl(f"get r/ --prefix --sort-by={target} --order={order} --keys-only")
    r.ctl("get r/ --prefix --sort-by=VERSION --order=DESCEND --limit=2 -w json")
    r.ctl("get r/ --prefix --sort-by=MODIFY --limit=3 --keys-only")
    r.ctl("get r/ --prefix --sort-by=VALUE")
    r.ctl("get r/ --prefix --order=DESCEND")
    r.ctl("get r/ --prefix --order=DESCEND --limit=2 --keys-only")
    r.ctl("get r/ --prefix --print-value-only")
    r.ctl("get r/ --prefix --print-value-only --sort-by=VALUE --order=DESCEND")
    r.ctl("get r/ --prefix --consistency=s --keys-only")
    r.ctl("get r/ --prefix --rev={mid} -w json")
    r.ctl("get r/ --prefix --rev={mid} --sort-by=VALUE --print-value-only")
    r.ctl("get r/b --rev={mid-1}")
    r.ctl("get '' --from-key --keys-only")
    r.ctl("get r/ --prefix --order=SIDEWAYS")


@case("kv: delete")
def _(r):
    for k in ["d/1", "d/2", "d/3", "d/4", "d/5", "d/6", "d/7"]:
        r.ctl(f"put {k} v{k[-1]}", record=False)
    r.ctl("del d/1")
    r.ctl("del d/missing")
    r.ctl("del d/2 --prev-kv")
    r.ctl("del d/3 d/5")
    r.ctl("del d/5 --prev-kv -w json")
    r.ctl("get d/ --prefix --keys-only")
    r.ctl("del d/ --prefix --prev-kv -w json")
    r.ctl("del d/ --prefix")
    # --from-key under a prefix that sorts after every other key of the script
    for k in ["~f/a", "~f/b", "~f/c"]:
        r.ctl(f"put {k} {k[-1]}", record=False)
    r.ctl("del ~f/b --from-key --prev-kv")
    r.ctl("get ~f/ --prefix -w json")
    r.ctl("del ~f/ --from-key -w json")
    r.ctl("del ''")


@case("kv: put --prev-kv, --lease, --ignore-value, --ignore-lease")
def _(r):
    r.ctl("put p/1 v1 --prev-kv")
    r.ctl("lease grant 600", lease="LP")
    r.ctl("put p/1 v2 --lease={LP} --prev-kv -w json")
    r.ctl("get p/1 -w json")
    r.ctl("put p/1 v3 --ignore-lease")
    r.ctl("get p/1 -w json")
    r.ctl("put p/1 --ignore-value --prev-kv -w json")  # keeps the value, drops the lease
    r.ctl("get p/1 -w json")
    r.ctl("put p/1 --ignore-value --lease={LP}")
    r.ctl("put p/1 v4 --ignore-lease")
    r.ctl("put p/1 --ignore-value --ignore-lease")
    r.ctl("get p/1 -w json")
    r.ctl("put p/missing --ignore-value")
    r.ctl("put p/missing v --ignore-lease")
    r.ctl("put p/2 v --lease=1234abcd")
    r.ctl("put p/1 v --ignore-value")
    r.ctl("lease revoke {LP}")
    r.ctl("get p/ --prefix -w json")


@case("txn: compares and branches")
def _(r):
    r.ctl("put x/k v -w json", cap="xk")
    r.ctl("txn", stdin=txn(['mod("x/k") > "0"'], ["put x/k v2"], ["get x/k"]))
    r.ctl("txn -w json", stdin=txn(['value("x/k") = "v2"'], ["get x/k", "put x/k2 a"],
                                   ["put x/fail 1"]))
    r.ctl("txn", stdin=txn(['version("x/k") = "1"'], ["put x/k v3"], ["get x/k"]))
    r.ctl("txn -w json", stdin=txn(['version("x/k") = "2"', 'value("x/k") != "zzz"'],
                                   ["del x/k2 --prev-kv", "put x/k3 c --prev-kv"], []))
    r.ctl("txn", stdin=txn(['create("x/new") = "0"'], ["put x/new 1"], ["get x/new"]))
    r.ctl("txn", stdin=txn(['create("x/new") = "0"'], ["put x/new 2"], ["get x/new"]))
    r.ctl("txn", stdin=txn(['mod("x/k") = "{xk}"'], ["put x/k stale"], ["get x/k"]))
    r.ctl("txn", stdin=txn(['mod("x/k") < "{xk+1}"'], ["put x/k stale"], ["get x/k"]))
    r.ctl("txn -w json", stdin=txn(['value("x/k") < "v3"', 'create("x/k") > "{xk-1}"'],
                                   ["get x/ --prefix", "del x/new"], ["get x/k"]))
    r.ctl("txn -w json", stdin=txn(['value("x/missing") = "v"'], ["put x/a 1"],
                                   ["get x/ --prefix --keys-only", "put x/b 2"]))
    r.ctl("txn", stdin=txn([], ["put x/t1 a", "put x/t2 b", "del x/a"], []))
    r.ctl("get x/ --prefix -w json")
    r.ctl("txn", stdin=txn([], ["put x/dup 1", "put x/dup 2"], []))
    r.ctl("txn", stdin=txn(['version("x/k") = "2"'], [], []))
    r.ctl("txn", stdin=txn(['bogus("x/k") = "2"'], [], []))


@case("txn: reads after a put in the same txn (etcd's lock and election recipe)")
def _(r):
    # concurrency.Mutex: If(create(me) = 0) Then(put me, get the prefix's
    # first key by create revision); the lock is held when that is me.
    r.ctl("put z/9 older")
    r.ctl("txn -w json", stdin=txn(['create("z/1") = "0"'],
                                   ["put z/1 newer", "get z/ --prefix --sort-by=CREATE "
                                    "--order=ASCEND --limit=1"],
                                   ["get z/1", "get z/ --prefix --sort-by=CREATE "
                                    "--order=ASCEND --limit=1"]))
    r.ctl("txn -w json", stdin=txn([], ["put z/5 x", "get z/ --prefix",
                                        "get z/ --prefix --sort-by=MODIFY --order=DESCEND"], []))
    r.ctl("txn -w json", stdin=txn([], ["del z/9", "get z/ --prefix --keys-only",
                                        "put z/9 again", "get z/9"], []))


@case("watch: history, live events, --prefix, --prev-kv, ranges")
def _(r):
    r.ctl("put w/0 start -w json", cap="w0")
    r.bg("wA", "watch w/ --prefix --prev-kv --rev={w0} -w json")
    r.bg("wB", "watch w/1 --rev={w0+1}")
    r.bg("wC", "watch w/1 w/3 --prev-kv --rev={w0+1}")
    r.bg("wD", "watch w/ --prefix --rev={w0+3} -w json")
    r.ctl("put w/1 a")
    r.ctl("put w/2 b")
    r.ctl("put other c")
    r.ctl("put w/1 c")
    r.ctl("del w/2")
    r.ctl("txn", stdin=txn([], ["put w/3 x", "put w/4 y", "put other d"], []))
    r.ctl("del w/ --prefix")
    r.ctl("put w/1 end")
    r.ctl("put w/end end")
    r.bg_wait_for("wA", "dy9lbmQ=")  # base64 of w/end
    r.bg_wait_for("wD", "dy9lbmQ=")
    r.bg_wait_for("wB", "^end$")
    r.bg_wait_for("wC", "^end$")
    time.sleep(0.3)  # nothing more may arrive
    r.bg_finish("wA", as_json=True, norm=norm_watch)
    r.bg_finish("wB")
    r.bg_finish("wC")
    r.bg_finish("wD", as_json=True, norm=norm_watch)


@case("lease: grant, keep-alive, timetolive, list, revoke, expiry")
def _(r):
    r.ctl("lease grant 300", lease="L1")
    r.ctl("lease grant 200 -w json", lease="L2")
    r.ctl("put l/a 1 --lease={L1}")
    r.ctl("put l/b 2 --lease={L1}")
    r.ctl("put l/c 3 --lease={L2}")
    r.ctl("get l/ --prefix -w json")
    r.ctl("lease timetolive {L1}", norm=norm_ttl_text)
    r.ctl("lease timetolive {L1} --keys", norm=norm_ttl_text)
    r.ctl("lease timetolive {L2} --keys -w json", norm=norm_ttl)
    r.ctl("lease keep-alive --once {L1}")
    r.ctl("lease keep-alive --once {L2} -w json")
    r.ctl("lease list", norm=norm_lease_list)
    r.ctl("lease list -w json", norm=norm_lease_list_json)
    r.ctl("lease revoke {L2}")
    r.ctl("get l/ --prefix --keys-only")
    r.ctl("lease revoke {L2}")
    r.ctl("lease timetolive {L2}")
    r.ctl("lease timetolive {L2} -w json")
    r.ctl("lease keep-alive --once {L2}")
    r.ctl("lease timetolive 1234abcd")
    # A key whose short lease is left to expire.
    r.ctl("lease grant 3", lease="LS")
    r.ctl("put l/short x --lease={LS}")
    r.ctl("get l/short")
    start, gone = time.time(), False
    while time.time() - start < 12:
        res = r.ctl("get l/short -w json", record=False)
        if res.rc == 0 and not res.json().get("kvs"):
            gone = True
            break
        time.sleep(0.2)
    waited = time.time() - start
    r.note(f"l/short gone within 12 s of its 3 s lease: {gone}")
    r.note(f"l/short still there for at least 1.5 s: {waited >= 1.5}")
    r.ctl("get l/short -w json")
    r.ctl("lease timetolive {LS}")
    r.ctl("lease revoke {L1}")
    r.ctl("get l/ --prefix -w json")
    r.ctl("lease list", norm=norm_lease_list)


@case("lock: mutual exclusion")
def _(r):
    r.ctl("lock dlock -- sh -c 'echo free: $ETCD_LOCK_KEY'")
    r.bg("holder", "lock dlock")
    r.bg_wait_for("holder", "^dlock/")
    r.bg("second", "lock dlock -- sh -c 'echo held: $ETCD_LOCK_KEY rev=$ETCD_LOCK_REV'")
    r.wait_keys("dlock", 2)  # the second contender has queued
    time.sleep(0.5)
    r.bg_peek("second")  # still waiting: nothing printed
    # In creation order: in key order, the keys (which end in lease ids)
    # would number the two leases by their ids, which differ per server.
    r.ctl("get dlock --prefix --keys-only --sort-by=CREATE")
    r.bg_finish("holder")  # SIGINT: releases the lock
    r.bg_finish("second", sig=None)
    r.ctl("get dlock --prefix --keys-only --sort-by=CREATE")


@case("elect: leader, waiting candidate, observer")
def _(r):
    r.bg("observer", "elect -l delect")
    r.bg("c1", "elect delect p1")
    r.bg_wait_for("c1", "^p1$")
    r.bg_wait_for("observer", "^p1$")
    r.bg("c2", "elect delect p2")
    r.wait_keys("delect", 2)  # the second candidate campaigns
    time.sleep(0.5)
    r.bg_peek("c2")  # not leader yet
    r.bg_finish("c1")  # SIGINT: resigns
    r.bg_wait_for("c2", "^p2$")
    r.bg_wait_for("observer", "^p2$")
    r.bg_finish("c2")
    r.bg_finish("observer")


@case("maintenance and cluster: status, health, hashkv, members, snapshot")
def _(r):
    r.ctl("put m/1 a -w json", cap="m1")
    r.ctl("endpoint status -w json", norm=norm_status)
    r.ctl("endpoint health -w json", norm=norm_health)
    r.ctl("member list -w json", norm=norm_members)
    # hashkv: servers hash differently, but each must answer the same hash
    # for the same revision, before and after later writes.
    h1 = r.ctl("endpoint hashkv --rev={m1} -w json", norm=norm_hashkv)
    h2 = r.ctl("endpoint hashkv --rev={m1} -w json", norm=norm_hashkv, show_out=False)
    r.ctl("put m/2 b")
    h3 = r.ctl("endpoint hashkv --rev={m1} -w json", norm=norm_hashkv, show_out=False)
    h4 = r.ctl("endpoint hashkv --rev={m1+1} -w json", norm=norm_hashkv, show_out=False)

    def hv(res):
        try:
            return res.json()[0]["HashKV"]["hash"]
        except (ValueError, LookupError, TypeError):
            return None
    r.note(f"hashkv at m1 read twice agrees: {hv(h1) is not None and hv(h1) == hv(h2)}")
    r.note(f"hashkv at m1 unchanged by a later write: {hv(h1) is not None and hv(h1) == hv(h3)}")
    r.note(f"hashkv at m1+1 differs from m1: {hv(h4) is not None and hv(h4) != hv(h1)}")
    r.ctl("endpoint hashkv -w json", norm=norm_hashkv)
    r.ctl("endpoint hashkv --rev={m1+1000} -w json", norm=norm_hashkv)
    snap = os.path.join(r.tmp, "snap.db")
    r.ctl("snapshot save {tmp}/snap.db")
    r.note(f"snapshot file non-empty: {os.path.exists(snap) and os.path.getsize(snap) > 0}")
    r.ctl("alarm list")
    r.ctl("defrag")


@case("compaction: compact, read and watch below it")
def _(r):
    r.ctl("put c/k 1 -w json", cap="c1")
    r.ctl("put c/k 2 -w json", cap="c2")
    r.ctl("put c/k 3 -w json", cap="c3")
    r.ctl("compaction {c2}")
    r.ctl("get c/k --rev={c1}")
    r.ctl("get c/k --rev={c2} -w json")
    r.ctl("get c/k --rev={c3}")
    r.ctl("get c/ --prefix --rev={c1} --keys-only")
    r.ctl("compaction {c1}")
    r.ctl("compaction {c2}")
    r.ctl("compaction {c3+1000}")
    r.ctl("endpoint hashkv --rev={c1} -w json", norm=norm_hashkv)
    r.ctl("endpoint hashkv --rev={c3} -w json", norm=norm_hashkv)
    r.bg("wlow", "watch c/k --rev={c1} -w json")
    r.bg_finish("wlow", sig=None, wait=8, as_json=True, norm=norm_watch)
    r.bg("wlow2", "watch c/k --rev={c1}")
    r.bg_finish("wlow2", sig=None, wait=8)
    r.bg("wok", "watch c/k --rev={c2} -w json")
    r.bg_wait_for("wok", '"mod_revision"')
    time.sleep(0.3)
    r.bg_finish("wok", as_json=True, norm=norm_watch)
    r.ctl("compaction --physical {c3}")
    r.ctl("get c/k --rev={c2}")
    r.ctl("get c/k -w json")


@case("auth: users, roles, permissions; auth enable; per-user access (last: it ends auth)")
def _(r):
    r.ctl("auth enable")  # no user root yet
    r.ctl("user add root:rpw")
    r.ctl("user add alice:apw")
    r.ctl("user add alice:again")
    r.ctl("role add app")
    r.ctl("role grant-permission app --prefix readwrite app/")
    r.ctl("role grant-permission app read shared")
    r.ctl("role grant-permission nothing read x")
    r.ctl("user grant-role alice nothing")
    r.ctl("user grant-role alice app")
    r.ctl("user get alice")
    r.ctl("role get app")
    r.ctl("put shared s")
    # etcdctl adds the role root and grants it to root when etcd asks.
    r.ctl("auth enable")
    r.ctl("put app/1 v")  # no user
    r.ctl("defrag")
    r.ctl("get app/1")
    r.ctl("--user=alice:apw put app/1 v1")
    r.ctl("--user=alice:apw put app/2 v2 --prev-kv")
    r.ctl("--user=alice:apw get app/1")
    r.ctl("--user=alice:apw get app/ --prefix -w json")
    r.ctl("--user=alice:apw get shared")
    r.ctl("--user=alice:apw put shared x")
    r.ctl("--user=alice:apw put other/1 v")
    r.ctl("--user=alice:apw get other/1")
    r.ctl("--user=alice:apw get '' --prefix")
    r.ctl("--user=alice:apw del app/2 --prev-kv")
    r.ctl("--user=alice:apw del other/ --prefix")
    r.ctl("--user=alice:apw txn", stdin=txn(['value("app/1") = "v1"'], ["put app/3 t"],
                                            ["get app/1"]))
    r.ctl("--user=alice:apw txn", stdin=txn(['value("app/1") = "v1"'], ["put app/3 t"],
                                            ["put other/1 t"]))
    r.ctl("--user=alice:apw txn", stdin=txn(['value("other/1") = "v1"'], [], []))
    r.ctl("--user=alice:wrong get app/1")
    r.ctl("--user=nobody:x get app/1")
    r.ctl("--user=alice:apw user list")
    r.ctl("--user=alice:apw user get alice")
    r.ctl("--user=alice:apw role get app")
    r.ctl("--user=alice:apw user get root")
    r.ctl("--user=alice:apw defrag")
    r.ctl("--user=alice:apw endpoint status -w json", norm=norm_status)
    r.ctl("--user=alice:apw lease grant 60", lease="LA")
    r.ctl("--user=alice:apw put app/leased x --lease={LA}")
    r.ctl("--user=alice:apw lease revoke {LA}")
    r.ctl("--user=root:rpw user list")
    r.ctl("--user=root:rpw role list")
    r.ctl("--user=root:rpw user get root")
    r.ctl("--user=root:rpw put other/1 secret")
    r.ctl("--user=root:rpw get '' --prefix --keys-only")
    r.bg("wdenied", "--user=alice:apw watch other/ --prefix")
    r.bg_finish("wdenied", sig=None, wait=8)
    r.ctl("--user=root:rpw user delete root")
    r.ctl("--user=root:rpw user revoke-role root root")
    r.ctl("--user=root:rpw role revoke-permission app shared")
    r.ctl("--user=root:rpw role revoke-permission app shared")
    r.ctl("--user=root:rpw role get app")
    r.ctl("--user=alice:apw get shared")
    r.ctl("--user=root:rpw user revoke-role alice app")
    r.ctl("--user=alice:apw get app/1")
    r.ctl("--user=root:rpw user delete alice")
    r.ctl("--user=alice:apw get app/1")
    r.ctl("--user=alice:apw auth disable")
    r.ctl("--user=root:rpw auth disable")
    r.ctl("get '' --prefix --keys-only")


# ---------------------------------------------------------------------------


def first_difference(a, b):
    """The command (with its stdin, if any) whose output differs first."""
    cmd = None
    for i, (x, y) in enumerate(zip(a, b)):
        if x.startswith("$ ") or re.match(r"# \S+ ended: ", x):
            cmd = x
            stdin = []
            j = i + 1
            while j < len(a) and a[j].startswith("  | "):
                stdin.append(a[j][4:])
                j += 1
            if stdin:
                cmd += "  <<< " + " / ".join(l for l in stdin if l)
        if x != y:
            return cmd or x
    return cmd or "(one transcript is longer)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cowdb_server", help="the cowdb_server binary")
    ap.add_argument("--target", default=os.environ.get("ETCD_DIFF_TARGET", "cowdb"),
                    choices=["cowdb", "etcd"], help="the second target (env ETCD_DIFF_TARGET)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    inject = os.environ.get("ETCD_DIFF_INJECT", "") not in ("", "0")

    for b in (ETCD, ETCDCTL):
        if not os.access(b, os.X_OK):
            print(f"SKIPPED: {b} is missing (apt-get install etcd-server etcd-client)")
            return 0
    if args.target == "cowdb" and not args.cowdb_server:
        ap.error("--cowdb_server is needed unless ETCD_DIFF_TARGET=etcd")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("etcdctl_diff: terminated"))
    root = tempfile.mkdtemp(prefix="etcdctl_diff.", dir=os.environ.get("TEST_TMPDIR"))
    outdir = (os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or
              tempfile.mkdtemp(prefix="etcdctl_diff.out."))
    t0 = time.time()
    servers, runners = [], []
    try:
        ref = EtcdServer("etcd", os.path.join(root, "etcd"))
        if args.target == "etcd":
            other = EtcdServer("etcd2", os.path.join(root, "etcd2"), offset_writes=6)
        else:
            other = CowdbServer("cowdb", os.path.join(root, "cowdb"),
                                os.path.abspath(args.cowdb_server))
        servers = [ref, other]
        for s in servers:
            s.start()
            print(f"etcdctl_diff: {s.name} serves on {s.endpoint}", flush=True)
        deadline = t0 + TIME_BUDGET_S
        runners = [Runner(ref, deadline), Runner(other, deadline, inject=inject)]
        print(f"etcdctl_diff: revision at start: {ref.name} {runners[0].base},"
              f" {other.name} {runners[1].base}", flush=True)
        if inject:
            print(f"etcdctl_diff: ETCD_DIFF_INJECT: {other.name} writes a different value",
                  flush=True)

        transcripts = {r.name: [] for r in runners}
        passed, failed = [], []
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)

        def run_case(r, fn):
            r.lines = []
            try:
                fn(r)
            except Exception:
                r.lines.append("HARNESS ERROR:\n" + traceback.format_exc())
            finally:
                r.kill_all()
            return r.lines

        for i, (title, fn) in enumerate(CASES):
            # A server that died or stopped answering: report, don't hang.
            dead = [s for s in servers if s.proc.poll() is not None]
            late = time.time() - t0 > TIME_BUDGET_S
            if dead or late:
                why = (f"{dead[0].name} exited (rc {dead[0].proc.returncode}); its log ends:\n"
                       f"{tail(dead[0].log)}" if dead else
                       f"out of time ({TIME_BUDGET_S} s budget)")
                print(f"etcdctl_diff: ERROR: {why}")
                for t, _ in CASES[i:]:
                    failed.append(t + " (not run)")
                break
            start = time.time()
            a, b = pool.map(lambda r: run_case(r, fn), runners)
            transcripts[ref.name] += [f"=== {title}"] + a
            transcripts[other.name] += [f"=== {title}"] + b
            broken = any(l.startswith("HARNESS ERROR") for l in a + b)
            secs = time.time() - start
            if a == b and not broken:
                passed.append(title)
                print(f"PASS  {title}  ({secs:.1f} s)", flush=True)
                continue
            failed.append(title)
            print(f"FAIL  {title}  ({secs:.1f} s)")
            print(f"  first mismatch: {first_difference(a, b)}")
            sys.stdout.writelines(
                l + "\n" for l in difflib.unified_diff(
                    a, b, fromfile=ref.name, tofile=other.name, lineterm="", n=4))
            if broken:
                for name, t in ((ref.name, a), (other.name, b)):
                    for l in t:
                        if l.startswith("HARNESS ERROR"):
                            print(f"  ({name}) {l}")
            sys.stdout.flush()
        pool.shutdown()

        for r in runners:
            with open(os.path.join(outdir, f"etcdctl_diff.{r.name}.txt"), "w") as f:
                f.write("\n".join(transcripts[r.name]) + "\n")
            with open(os.path.join(outdir, f"etcdctl_diff.{r.name}.raw.txt"), "w") as f:
                f.write("\n".join(r.raw) + "\n")

        print()
        where = ("bazel-testlogs/tests/etcd/etcdctl_diff_test/test.outputs/outputs.zip"
                 if "TEST_UNDECLARED_OUTPUTS_DIR" in os.environ else outdir)
        print(f"etcdctl_diff: etcd vs {other.name}, {time.time() - t0:.0f} s; transcripts"
              f" (etcdctl_diff.*.txt, normalized and raw) in {where}")
        for t in passed:
            print(f"  passed: {t}")
        for t in failed:
            print(f"  FAILED: {t}")
        print(f"etcdctl_diff: {len(passed)} passed, {len(failed)} failed")
        return 1 if failed else 0
    except RuntimeError as e:  # a server that would not start
        print(f"etcdctl_diff: ERROR: {e}", flush=True)
        return 1
    except Exception:
        print(f"etcdctl_diff: ERROR:\n{traceback.format_exc()}", flush=True)
        return 1
    finally:
        for r in runners:
            r.kill_all()
        for s in servers:
            s.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
