"""nemesis: real faults on a seeded random schedule, one at a time —
kill (kill -9, restart later), pause (SIGSTOP / SIGCONT), partition
(iptables: majority/minority halves, isolated leader, bridge, one-way cuts),
membership (remove a node, then add a new one under the next id with a
fresh data dir and --join: raftkv never reuses a removed id) and corrupt
(kill a node, overwrite the stored value of a few keys in its kv.db with a
marker, leaving each row's checksum as it was, restart it; its reads of
those keys must answer 503 corrupt, never the marker, which the checkers
would see as a value nobody wrote; healed by deleting its kv.db, which it
rebuilds from its snapshot and log, and disarming CORRUPT).
Each fault picks the leader as its target about half the time.

Must never: leave a fault in place when it returns (run() heals the
current fault when `stop` is set, and heal_all() undoes everything), or
pretend to inject a fault it cannot (an unavailable kind is reported).
"""

import json
import os
import sqlite3
import time

KINDS = ("kill", "pause", "partition", "membership", "corrupt")


class Nemesis:
    def __init__(self, cluster, firewall, kinds, rng, unavailable=None):
        self.cluster = cluster
        self.fw = firewall
        self.rng = rng
        self.unavailable = dict(unavailable or {})   # kind -> reason
        self.kinds = [k for k in kinds if k not in self.unavailable]
        self.log = []          # (seconds since start, kind, description)
        self.errors = []
        self.counts = {}
        self.spent = None      # why membership stopped before the end, if it did
        self.t0 = time.monotonic()

    def _note(self, kind, what):
        self.log.append((time.monotonic() - self.t0, kind, what))
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _target(self, among=None):
        nodes = among or self.cluster.live()
        lead = self.cluster.leader()
        if lead is not None and lead in nodes and self.rng.random() < 0.5:
            return lead, True
        return self.rng.choice(nodes), False

    # ---- the faults: each injects and returns its heal ----
    def kill(self):
        x, lead = self._target()
        x.kill9()
        self._note("kill", "%s%s" % (x, " (leader)" if lead else ""))
        return lambda: self.cluster.restart(x)

    def pause(self):
        x, lead = self._target()
        x.pause()
        self._note("pause", "%s%s" % (x, " (leader)" if lead else ""))
        return x.resume

    def partition(self):
        ids = [x.id for x in self.cluster.nodes]   # current members
        self.rng.shuffle(ids)
        lead = self.cluster.leader()
        mode = self.rng.choice(["halves", "isolate-leader", "bridge", "one-way"])
        if mode == "isolate-leader" and lead is None:
            mode = "halves"
        if mode == "halves":
            k = len(ids) // 2
            self._cut_groups(ids[:k], ids[k:])
            what = "%s | %s" % (ids[:k], ids[k:])
        elif mode == "isolate-leader":
            others = [i for i in ids if i != lead.id]
            self._cut_groups([lead.id], others)
            what = "leader n%d alone" % lead.id
        elif mode == "bridge":
            bridge, rest = ids[0], ids[1:]
            k = len(rest) // 2
            self._cut_groups(rest[:k], rest[k:])
            what = "%s | %s, n%d sees both" % (rest[:k], rest[k:], bridge)
        else:
            src = lead.id if lead is not None and self.rng.random() < 0.5 else ids[0]
            outgoing = self.rng.random() < 0.5
            for j in ids:
                if j != src:
                    self.fw.cut(src, j) if outgoing else self.fw.cut(j, src)
            what = "n%d %s only" % (src, "cannot send" if outgoing else "cannot receive")
        self._note("partition", "%s: %s" % (mode, what))
        return self.fw.heal

    def _cut_groups(self, a, b):
        for i in a:
            for j in b:
                self.fw.cut_both(i, j)

    def membership(self):
        live = self.cluster.live()
        if len(live) < len(self.cluster.nodes):
            return lambda: None
        x, lead = self._target()
        via = self.rng.choice([y for y in live if y is not x])
        try:
            self.cluster.remove(x, via)   # x is stopped (or killed) after this
        except Exception as e:
            # Recorded (the run is then INVALID), and x is still added back.
            self.errors.append("membership: %s" % e)
        self._note("membership", "removed %s%s" % (x, " (leader)" if lead else ""))

        def add_new():
            via2 = self.rng.choice(self.cluster.live())
            y = self.cluster.add_new(via2)
            self.log.append((time.monotonic() - self.t0, "membership", "added %s" % y))
        return add_new

    def corrupt(self):
        x, lead = self._target()
        x.kill9()
        db = sqlite3.connect(os.path.join(x.data_dir, "kv.db"))
        try:
            keys = [k for (k,) in db.execute(
                "SELECT key FROM kv_cur ORDER BY random() LIMIT 3")]
            for k in keys:
                marker = b"CORRUPT-MARKER-%d" % self.rng.getrandbits(30)
                db.execute("UPDATE kv_cur SET value = ? WHERE key = ?", (marker, k))
                db.execute("UPDATE kv_hist SET value = ? WHERE key = ?", (marker, k))
            db.commit()
        finally:
            db.close()
        self.cluster.restart(x)
        self._note("corrupt", "%s%s: %d keys" % (x, " (leader)" if lead else "", len(keys)))

        def heal():
            x.kill9()
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(os.path.join(x.data_dir, "kv.db" + suffix))
                except FileNotFoundError:
                    pass
            self.cluster.restart(x)
            self._disarm_corrupt()
        return heal

    def _disarm_corrupt(self):
        body = json.dumps({"alarm": "CORRUPT"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for y in self.cluster.live():
                try:
                    if y.request("POST", "/maintenance/alarms/disarm", body,
                                 timeout=3).status == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.2)  # a bounded retry while a leader is elected
        raise RuntimeError("CORRUPT could not be disarmed within 30 s")

    # ---- the schedule ----
    def run(self, stop):
        while self.kinds and not stop.wait(self.rng.uniform(1.0, 3.0)):
            for x in self.cluster.nodes:   # every fault was healed: all must run
                if not x.alive():
                    self.errors.append("%s exited by itself (code %s)"
                                       % (x, x.proc and x.proc.returncode))
                    self.cluster.restart(x)
            self._retire_membership()
            if not self.kinds:
                break
            kind = self.rng.choice(self.kinds)
            try:
                heal = getattr(self, kind)()
            except Exception as e:  # a fault that could not be injected is reported
                self.errors.append("%s: %s" % (kind, e))
                continue
            stop.wait(self.rng.uniform(1.0, 5.0))
            try:
                heal()
            except Exception as e:
                self.errors.append("healing %s: %s" % (kind, e))

    def _retire_membership(self):
        """Every replacement uses up an id; once none is left, membership
        faults stop (said in the summary) and the other kinds go on."""
        if "membership" in self.kinds and self.cluster.ids_left() <= 0:
            self.kinds.remove("membership")
            self.spent = "stopped at %.0fs: every id 1..%d used" % (
                time.monotonic() - self.t0, len(self.cluster.all))
            self.log.append((time.monotonic() - self.t0, "membership", self.spent))

    def heal_all(self):
        """After the run: no cut, no paused node, every node running."""
        if self.fw is not None:
            self.fw.heal()
        for x in self.cluster.nodes:
            x.resume()
            if not x.alive():
                self.cluster.restart(x)

    def summary(self):
        parts = []
        for kind in KINDS:
            if kind in self.unavailable:
                parts.append("%s UNAVAILABLE (%s)" % (kind, self.unavailable[kind]))
            elif kind in self.kinds or (kind == "membership" and self.spent):
                n = self.counts.get(kind, 0)
                lead = sum(1 for _, k, w in self.log if k == kind and "leader" in w)
                spent = "; " + self.spent if kind == "membership" and self.spent else ""
                parts.append("%s %d (%d on the leader%s)" % (kind, n, lead, spent))
        return ", ".join(parts) or "none"
