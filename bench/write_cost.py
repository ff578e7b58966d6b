#!/usr/bin/env python3
"""write_cost: what a write costs a cluster, measured around a load.

  write_cost.py snap PID:PORT ... > FILE   the members' CPU time and bytes
                                            written to disk (/proc), their
                                            thread hand-offs and peer requests
                                            (/metrics) and node 1's revision
  write_cost.py diff BEFORE AFTER          "cpu_us handoffs requests disk_kb commits" per
                                            write: CPU µs summed over the members,
                                            hand-offs and peer requests summed
                                            over the members, each divided by
                                            the revisions the load made, and the
                                            KB the members wrote to disk (fsynced
                                            or not: /proc/PID/io write_bytes), and
                                            the kv.db commits, summed over the
                                            members, per write

Owns this arithmetic only; it never signals or changes a node."""
import json
import os
import re
import sys
import urllib.request


def cpu_ticks(pid):
    with open("/proc/%s/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def disk_bytes(pid):
    with open("/proc/%s/io" % pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    def total(pattern):
        return sum(int(m.group(1)) for m in re.finditer(pattern + r" (\d+)", text))
    return {"handoffs": total(r'raftkv_handoffs_total\{to="[a-z_]+"\}'),
            "requests": total(r"raftkv_peer_requests_total"),
            "commits": total(r"raftkv_kv_commits_total"),
            "revision": total(r"raftkv_revision")}


def snap(members):
    out = []
    for m in members:
        pid, port = m.split(":")
        row = metrics(port)
        row["ticks"] = cpu_ticks(pid)
        row["disk"] = disk_bytes(pid)
        out.append(row)
    return out


def diff(before, after):
    writes = after[0]["revision"] - before[0]["revision"]
    if writes <= 0:
        return "n/a n/a n/a n/a n/a"
    hz = os.sysconf("SC_CLK_TCK")
    d = {k: sum(a[k] - b[k] for a, b in zip(after, before))
         for k in ("ticks", "handoffs", "requests", "disk", "commits")}
    return "%.0f %.1f %.2f %.1f %.3f" % (d["ticks"] * 1e6 / hz / writes, d["handoffs"] / writes,
                                         d["requests"] / writes, d["disk"] / 1024 / writes,
                                         d["commits"] / writes)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "snap":
        json.dump(snap(sys.argv[2:]), sys.stdout)
    elif len(sys.argv) == 4 and sys.argv[1] == "diff":
        with open(sys.argv[2]) as b, open(sys.argv[3]) as a:
            print(diff(json.load(b), json.load(a)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
