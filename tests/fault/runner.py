#!/usr/bin/env python3
"""runner: one Jepsen-style run — start a cluster, drive the workloads while
the nemesis injects faults for --time seconds, heal, wait for the cluster to
converge, read the final state, check, print a one-screen summary ending
with "valid" or "INVALID: <reason>" (exit 0 / 1; 2 = a requested nemesis or
workload could not run). On failure the history, summary and node logs are
kept in one directory whose path is printed.

Must never: leave a process, a paused node or a firewall rule behind
(finally + atexit + SIGTERM/SIGINT unwinding), or call a run valid that
did not check what it was asked to.

usage: runner.py --time S --seed N [--nodes 3|5] [--nemesis kill,pause,...]
                 [--workload register,set,watch] [--serializable] [--bin PATH]
"""

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checkers  # noqa: E402
import cluster as fcluster  # noqa: E402
import net  # noqa: E402
import nemesis as fnemesis  # noqa: E402
import workloads  # noqa: E402
import appends  # noqa: E402
import leases  # noqa: E402
from history import History, call  # noqa: E402

WORKLOADS = ("register", "set", "watch", "lock", "lease", "append", "counter")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="raftkv fault-injection run")
    ap.add_argument("--time", type=float, default=60, help="seconds of faults and load")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=3, choices=(3, 5))
    ap.add_argument("--nemesis", default="kill,pause,partition",
                    help="comma list of %s, or all, or none" % ",".join(fnemesis.KINDS))
    ap.add_argument("--workload", default="register,set,watch",
                    help="comma list of %s; a trailing ? makes one optional" % ",".join(WORKLOADS))
    ap.add_argument("--serializable", action="store_true",
                    help="register reads with serializable=true (expected to be INVALID)")
    ap.add_argument("--bin", help="raftkv binary (default $RAFTKV_BIN or build/raftkv)")
    ap.add_argument("--keep", action="store_true", help="keep the run directory even if valid")
    a = ap.parse_args(argv)
    a.nemesis = _list(a.nemesis, fnemesis.KINDS, ap)
    # "watch?" = run it if the server has it; if not, say so and go on.
    a.optional = {x.rstrip("?") for x in a.workload.split(",") if x.strip().endswith("?")}
    a.workload = _list(a.workload.replace("?", ""), WORKLOADS, ap)
    return a


def _list(text, allowed, ap):
    if text == "all":
        return list(allowed)
    if text in ("", "none"):
        return []
    items = [x.strip() for x in text.split(",") if x.strip()]
    for x in items:
        if x not in allowed:
            ap.error("unknown %r (choose from %s)" % (x, ", ".join(allowed)))
    return items


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def watch_available(cluster):
    """None if /watch is served, else why not."""
    a = call(cluster.nodes[0].port, "GET", "/watch/probe?timeout=0", timeout=5)
    if a.status in (404, 405, 501):
        return "/watch answers %s" % a.status
    return None


class Run:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.dir = tempfile.mkdtemp(prefix="raftkv-jepsen-s%d-" % args.seed)
        self.history = History()
        self.cluster = fcluster.Cluster(self.dir, args.nodes)
        self.fw = None
        self.unavailable = {}
        self.skipped = {}       # optional parts the server does not have yet
        self.verdicts = []      # (name, result dict)
        self.workloads = []
        self.nemesis = None
        self.problem = None     # a run-level failure (did not recover, ...)

    # ---- phases ----
    def setup(self):
        if "partition" in self.a.nemesis:
            why = net.unavailable_reason()
            if why:
                self.unavailable["partition"] = why
            else:
                c = self.cluster
                self.fw = net.Firewall(fcluster.addr_of, lambda i: c.node(i).peer_port)
        self.cluster.start()
        seed = self.a.seed
        n = self.a.nodes
        if "register" in self.a.workload:
            self.workloads.append(workloads.Register(self.cluster, self.history, seed, 2 * n,
                                                     serializable=self.a.serializable))
        if "set" in self.a.workload:
            self.workloads.append(workloads.Set(self.cluster, self.history, seed, n))
        if "watch" in self.a.workload:
            why = watch_available(self.cluster)
            if why and "watch" in self.a.optional:
                self.skipped["watch workload"] = why
            elif why:
                self.unavailable["watch workload"] = why
            else:
                import watch  # noqa: E402  (only once the server has /watch)
                self.workloads.append(watch.Watch(self.cluster, self.history, seed, n))
        if "lock" in self.a.workload:
            self.workloads.append(leases.Lock(self.cluster, self.history, seed, n))
        if "lease" in self.a.workload:
            self.workloads.append(leases.LeaseExpiry(self.cluster, self.history, seed, n))
        if "append" in self.a.workload:
            self.workloads.append(appends.Appends(self.cluster, self.history, seed, n))
        if "counter" in self.a.workload:
            self.workloads.append(appends.Counter(self.cluster, self.history, seed, n))
        self.nemesis = fnemesis.Nemesis(self.cluster, self.fw, self.a.nemesis, self.rng,
                                        self.unavailable)

    def drive(self):
        stop = threading.Event()
        for w in self.workloads:
            w.start(stop)
        nt = threading.Thread(target=self.nemesis.run, args=(stop,), daemon=True)
        nt.start()
        try:
            stop.wait(self.a.time)
        finally:
            stop.set()
            nt.join(60)
            for w in self.workloads:
                w.join()
            self.nemesis.heal_all()

    def finish(self):
        try:
            lead = self.cluster.converge(60)
        except fcluster.TestFailure as e:
            self.problem = "the cluster did not recover after healing: %s" % e
            return
        self.history.close_pending()
        for w in self.workloads:
            if isinstance(w, workloads.Register):
                self.verdicts.append(("register", checkers.check_register(w.ops())))
            elif isinstance(w, workloads.Set):
                self.verdicts.append(("set", checkers.check_set(w.ops(), w.final_reads())))
            else:
                self.verdicts.append((w.name, w.check(lead)))

    # ---- output ----
    def verdict(self):
        """(exit code, last line)"""
        if self.problem:
            return 1, "INVALID: " + self.problem
        if self.nemesis and self.nemesis.errors:
            return 1, "INVALID: a fault went wrong: " + self.nemesis.errors[0]
        for name, r in self.verdicts:
            if r["valid"] is False:
                return 1, "INVALID: " + r["reason"]
        for name, r in self.verdicts:
            if r["valid"] is None:
                return 1, "INVALID: %s could not be checked: %s" % (name, r["reason"])
        if self.unavailable:
            return 2, "unavailable: " + "; ".join("%s (%s)" % kv for kv in self.unavailable.items())
        return 0, "valid"

    def summary(self, elapsed):
        a = self.a
        out = ["raftkv jepsen: seed %d, %gs, %d nodes, nemesis %s, workloads %s%s (%.0fs)"
               % (a.seed, a.time, a.nodes, ",".join(a.nemesis) or "none",
                  ",".join(a.workload), ", serializable reads" if a.serializable else "", elapsed)]
        counts = self.history.counts()
        out.append("ops:")
        for f in sorted({f for f, _ in counts}):
            out.append("  %-8s ok %6d  fail %5d  info %5d" % (
                f, counts.get((f, "ok"), 0), counts.get((f, "fail"), 0),
                counts.get((f, "info"), 0)))
        out.append("faults: " + (self.nemesis.summary() if self.nemesis else "none"))
        for e in (self.nemesis.errors if self.nemesis else [])[:5]:
            out.append("  nemesis error: %s" % e)
        out.append("checkers:")
        for name, r in self.verdicts:
            facts = ", ".join("%s %s" % (k, v) for k, v in sorted(r.items())
                              if k not in ("valid", "reason", "detail"))
            state = {True: "valid", False: "INVALID", None: "unknown"}[r["valid"]]
            out.append("  %-8s %s (%s)" % (name, state, facts))
            if r.get("detail"):
                out.extend("    " + line for line in r["detail"].splitlines()[:12])
        for k, why in self.unavailable.items():
            out.append("  %s: UNAVAILABLE (%s)" % (k, why))
        for k, why in self.skipped.items():
            out.append("  %s: skipped, optional (%s)" % (k, why))
        return out

    def save(self, lines):
        self.history.dump(os.path.join(self.dir, "history.jsonl"))
        with open(os.path.join(self.dir, "summary.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
            for t, kind, what in (self.nemesis.log if self.nemesis else []):
                f.write("fault %7.2fs %s %s\n" % (t, kind, what))


def main(argv=None):
    args = parse_args(argv)
    if args.bin:
        os.environ["RAFTKV_BIN"] = os.path.abspath(args.bin)
    signal.signal(signal.SIGTERM, _interrupt)
    run = Run(args)
    started = time.monotonic()
    try:
        run.setup()
        run.drive()
        run.finish()
    except KeyboardInterrupt:
        run.problem = "interrupted"
    except Exception as e:  # a harness failure is reported, never a pass
        run.problem = "%s: %s" % (type(e).__name__, e)
    finally:
        if run.fw is not None:
            run.fw.close()
        run.cluster.stop_all()
    code, last = run.verdict()
    lines = run.summary(time.monotonic() - started)
    if code == 0 and not args.keep:
        shutil.rmtree(run.dir, ignore_errors=True)
    else:
        run.save(lines + [last])
        lines.append("history, summary and node logs: %s" % run.dir)
    print("\n".join(lines + [last]), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
