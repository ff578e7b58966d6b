#!/usr/bin/env python3
"""write_timeline: where one write's time goes at 1 connection, across the
three members' threads, from their system calls.

  write_timeline.py [--bin BUILD/raftkv] [--seconds 0.5] [--keep TRACEFILE]

Starts a fresh 3-member cluster on free loopback ports, loads its leader with
`wrk -t1 -c1` PUTs (bench/kv.lua, 256-byte values), and records every system
call of the members and of wrk for a short window with `perf record -e
raw_syscalls:*` (root, perf and wrk needed). Each write is then followed
through the calls that carry it — wrk's request, the client listener's read
and its wake-up of the node loop, the loop's first append to a peer, the
follower's read, fdatasync and answer, the leader's read of that answer, its
resume of the client's connection, the listener's reply, wrk's read — and the
medians of the gaps are printed, with the leader's own fsync beside them.

Tracing costs every system call a few µs, so the traced writes are slower
than the untraced run printed first: compare the segments' shares, not their
sums with a plain wrk run. Owns its temp dir and the processes it starts;
never touches anything else."""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
NR = {"read": 0, "write": 1, "sendto": 44, "recvfrom": 45, "sendmsg": 46, "fdatasync": 75}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=2) as r:
        return json.load(r)


def wait_leader(ports, deadline):
    while time.time() < deadline:
        for i, p in enumerate(ports):
            try:
                s = get_json(p, "/status")
            except OSError:
                continue
            if s.get("leader") and s.get("leader") == s.get("member_id"):
                return i
        time.sleep(0.05)
    sys.exit("write_timeline: no leader within the deadline")


def wrk(port, seconds, extra_env=None):
    env = dict(os.environ, BENCH_METHOD="PUT", BENCH_PREFIX="/bench-", BENCH_KEYS="10000")
    return subprocess.Popen(["wrk", "-t1", "-c1", "-d%ds" % seconds, "--latency", "-s",
                             os.path.join(HERE, "kv.lua"), "http://127.0.0.1:%d" % port],
                            env=env, stdout=subprocess.PIPE, text=True)


def wrk_summary(out):
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"\s50%\s+(\S+)", out)
    return "%s PUT/s, p50 %s" % (rate.group(1) if rate else "?", p50.group(1) if p50 else "?")


# ---------------------------------------------------------------- parsing

LINE = re.compile(r"^\s*(\S+)\s+(\d+)/(\d+)\s+([\d.]+):\s+raw_syscalls:sys_(enter|exit):"
                  r"\s+NR (\d+)\s*(.*)$")


def parse(path, roles):
    """Completed calls, in order of entry: dicts of t0, t1 (µs), who (the
    role: L, F1, F2 or wrk), thread (loop, mhd or other), nr, fd, ret."""
    calls, open_calls = [], {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            comm, pid, tid, t, kind, nr, rest = m.groups()
            pid, tid, t, nr = int(pid), int(tid), float(t) * 1e6, int(nr)
            if kind == "enter":
                open_calls[tid] = (t, nr, rest)
                continue
            if tid not in open_calls:
                continue
            t0, nr0, args = open_calls.pop(tid)
            who = roles.get(pid, "wrk" if comm == "wrk" else None)
            if who is None:
                continue
            thread = "loop" if tid == pid and who != "wrk" else \
                     "mhd" if comm.startswith("MHD") else "other"
            fd = args.strip("( ").split(",")[0]
            ret = rest.rsplit("=", 1)[-1].strip()
            calls.append({"t0": t0, "t1": t, "who": who, "thread": thread, "nr": nr0,
                          "fd": fd, "ret": int(ret) if ret.lstrip("-").isdigit() else 0})
    calls.sort(key=lambda c: c["t0"])
    return calls


def after(calls, i, who, thread, nr, min_ret=1, not_fd=None):
    """Index of the first call from i on that matches, else None."""
    if i is None:
        return None
    for j in range(i, len(calls)):
        c = calls[j]
        if c["who"] == who and (thread is None or c["thread"] == thread) and c["nr"] == nr \
                and c["ret"] >= min_ret and c["fd"] != not_fd:
            return j
    return None


def inbox_fd(calls):
    """The fd the leader's listener writes to most: the loop's inbox eventfd."""
    counts = {}
    for c in calls:
        if c["who"] == "L" and c["thread"] == "mhd" and c["nr"] == NR["write"]:
            counts[c["fd"]] = counts.get(c["fd"], 0) + 1
    return max(counts, key=counts.get) if counts else None


def follow(calls, w, wake_fd):
    """The calls that carried the write wrk sent at index w, or None."""
    a = after(calls, w, "L", "mhd", NR["recvfrom"])
    b = after(calls, a, "L", "mhd", NR["write"])
    c = after(calls, b, "L", "loop", NR["sendto"])
    lf = after(calls, c, "L", "loop", NR["fdatasync"], min_ret=0)
    first = None
    for f in ("F1", "F2"):
        r = after(calls, c, f, "loop", NR["recvfrom"])
        fs = after(calls, r, f, "loop", NR["fdatasync"], min_ret=0)
        sm = after(calls, fs, f, "loop", NR["sendmsg"])
        if sm is not None and (first is None or calls[sm]["t0"] < calls[first[2]]["t0"]):
            first = (r, fs, sm)
    if first is None:
        return None
    r, fs, sm = first
    h = after(calls, sm, "L", "loop", NR["recvfrom"])
    res = after(calls, h, "L", "loop", NR["write"], not_fd=wake_fd)
    ms = after(calls, res, "L", "mhd", NR["sendto"])
    rd = after(calls, ms, "wrk", None, NR["read"])
    ids = (a, b, c, lf, r, fs, sm, h, res, ms, rd)
    return None if None in ids else dict(zip("a b c lf r fs sm h res ms rd".split(), ids))


SEGMENTS = [
    ("wrk sends -> the client listener reads it", "w", "t0", "a", "t0"),
    ("listener reads -> wakes the node loop", "a", "t0", "b", "t0"),
    ("loop wakes -> first append sent to a peer", "b", "t0", "c", "t0"),
    ("append sent -> the follower reads it", "c", "t0", "r", "t0"),
    ("follower reads -> starts its fdatasync", "r", "t0", "fs", "t0"),
    ("follower's fdatasync", "fs", "t0", "fs", "t1"),
    ("its fdatasync ends -> it sends the answer", "fs", "t1", "sm", "t0"),
    ("answer sent -> the leader reads it", "sm", "t0", "h", "t0"),
    ("leader reads it -> resumes the client", "h", "t0", "res", "t0"),
    ("resume -> the listener sends the reply", "res", "t0", "ms", "t0"),
    ("reply sent -> wrk reads it", "ms", "t0", "rd", "t0"),
    ("the whole write", "w", "t0", "rd", "t0"),
    ("(leader: loop wakes -> its own fdatasync)", "b", "t0", "lf", "t0"),
    ("(leader's own fdatasync)", "lf", "t0", "lf", "t1"),
    ("(leader's fdatasync ends -> answer read)", "lf", "t1", "h", "t0"),
]


def report(calls):
    wake_fd = inbox_fd(calls)
    writes = [i for i, c in enumerate(calls) if c["who"] == "wrk" and c["nr"] == NR["write"]
              and c["ret"] > 0]
    gaps = {s[0]: [] for s in SEGMENTS}
    for w in writes[2:-2]:  # the window's edges cut writes in half
        ids = follow(calls, w, wake_fd)
        if ids is None:
            continue
        ids["w"] = w
        for name, i, ti, j, tj in SEGMENTS:
            gaps[name].append(calls[ids[j]][tj] - calls[ids[i]][ti])
    n = len(gaps[SEGMENTS[0][0]])
    if n < 10:
        sys.exit("write_timeline: only %d writes could be followed" % n)
    print("%-46s %7s %7s %7s" % ("µs, %d writes followed" % n, "p25", "p50", "p75"))
    for name, *_ in SEGMENTS:
        q = statistics.quantiles(gaps[name], n=4)
        print("%-46s %7.0f %7.0f %7.0f" % (name, q[0], statistics.median(gaps[name]), q[2]))


# ---------------------------------------------------------------- running

def run(args, tmp):
    peer = [free_port() for _ in range(3)]
    client = [free_port() for _ in range(3)]
    cluster = ",".join("http://127.0.0.1:%d" % p for p in peer)
    procs = []
    for i in range(3):
        log = open(os.path.join(tmp, "node%d.log" % (i + 1)), "w")
        procs.append(subprocess.Popen(
            [args.bin, "--id", str(i + 1), "--cluster", cluster, "--port", str(client[i]),
             "--data-dir", os.path.join(tmp, "node%d" % (i + 1)), "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT))
    try:
        lead = wait_leader(client, time.time() + 30)
        roles, k = {}, 1
        for i, p in enumerate(procs):
            if i == lead:
                roles[p.pid] = "L"
            else:
                roles[p.pid] = "F%d" % k
                k += 1
        plain = wrk(client[lead], 4)
        print("untraced: " + wrk_summary(plain.communicate()[0]))
        load = wrk(client[lead], 4)
        time.sleep(1.5)
        data = os.path.join(tmp, "perf.data")
        pids = ",".join(str(p) for p in list(roles) + [load.pid])
        rec = subprocess.run(["perf", "record", "-q", "-p", pids, "-e",
                              "raw_syscalls:sys_enter,raw_syscalls:sys_exit", "-o", data, "--",
                              "sleep", str(args.seconds)], stderr=subprocess.PIPE, text=True)
        if rec.returncode != 0:
            load.kill()
            sys.exit("write_timeline: perf record failed (root, or kernel.perf_event_paranoid"
                     " <= 1, is needed for tracepoints): %s" % rec.stderr.strip()[-300:])
        print("traced:   " + wrk_summary(load.communicate()[0]))
        text = args.keep or os.path.join(tmp, "trace.txt")
        with open(text, "w") as out:
            subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,tid,time,event,trace"],
                           stdout=out, stderr=subprocess.DEVNULL, check=True)
        report(parse(text, roles))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "raftkv"))
    ap.add_argument("--seconds", type=float, default=0.5, help="traced window")
    ap.add_argument("--keep", help="also keep perf's text output here")
    args = ap.parse_args()
    for tool in ("perf", "wrk"):
        if not shutil.which(tool):
            sys.exit("write_timeline: needs %s" % tool)
    tmp = tempfile.mkdtemp(prefix="write_timeline.")
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
