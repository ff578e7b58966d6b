"""watch: the watch workload — writers put and delete keys under w/; two
watchers per node (one long-poll, one stream=true) follow three kinds of
range (the whole prefix w/, the single key w/0, the range [w/1, w/3)) from
the run's first revision, each with its own cursor, reconnecting to its
node after kills, pauses and partitions (and moving to the replacement of a
removed node). After the run each watcher drains up to the revision of a
final linearizable read, every node's stored history of w/ is read back
through the same API, and checkers.check_watch compares all of them with
the acknowledged writes and that read.

Must never: move a cursor past an event it did not record (the cursor only
advances from events, next_revision or progress headers it has read), wait
without a deadline (every request has a timeout; draining has one too), or
hammer a dead node (a failed connection backs off before retrying).
"""

import http.client
import json
import threading
import time
import urllib.parse

import checkers
from cluster import harness
from history import call, read_until
from workloads import CLIENT_TIMEOUT, Workload

PREFIX = "w/"
KEYS = 5
RETRY_S = 0.1   # pause after a failed connection (pacing, not waiting)
# (label, path key, query, checker range [lo, hi)): hi exclusive.
RANGES = [("prefix", PREFIX, "prefix=true", (PREFIX, "w0")),
          ("key", "w/0", "", ("w/0", "w/0\x00")),
          ("range", "w/1", "range_end=" + urllib.parse.quote("w/3", safe=""), ("w/1", "w/3"))]


class Watcher:
    def __init__(self, name, pick, start, stream, span, pause):
        # pick() is the node to (re)connect to: a removed node's watcher
        # moves to the member that took its place, keeping its cursor.
        self.name, self.pick, self.cursor, self.stream = name, pick, start, stream
        _, self.key, self.query, self.range = span
        self.pause = pause      # an Event set at the end: cuts retry pauses short
        self.events = []
        self.errors = {}        # why a connection failed or broke -> count
        self.connections = 0

    def _fail(self, why):
        self.errors[why] = self.errors.get(why, 0) + 1
        self.pause.wait(RETRY_S)

    def _path(self, extra):
        q = "&".join(x for x in (self.query, "start_revision=%d" % self.cursor, extra) if x)
        return "/watch/%s?%s" % (urllib.parse.quote(self.key, safe="/"), q)

    def _take(self, events):
        for ev in events:
            kv = ev.get("kv", {})
            rev = kv.get("mod_revision")
            self.events.append({"revision": rev, "type": ev.get("type"), "key": kv.get("key"),
                                "value": kv.get("value") if ev.get("type") == "PUT" else None})
            if rev is not None:
                self.cursor = max(self.cursor, rev + 1)

    def poll_once(self):
        self.connections += 1
        a = call(self.pick().port, "GET", self._path("timeout=1"), timeout=4)
        body = a.json() if a.status == 200 else None
        if body is None:
            return self._fail(a.error or "status %s" % a.status)
        self._take(body.get("events", []))
        nxt = body.get("next_revision")
        if isinstance(nxt, int):
            self.cursor = max(self.cursor, nxt)

    def stream_once(self, stop_at):
        """One streaming connection, until it breaks or stop_at() says so."""
        self.connections += 1
        conn = harness.http_connection(self.pick().port, timeout=3)
        try:
            conn.request("GET", self._path("stream=true&progress_ms=300"))
            r = conn.getresponse()
            if r.status != 200:
                r.read()
                return self._fail("status %s" % r.status)
            while not stop_at():
                line = r.readline()
                if not line:
                    return self._fail("stream closed")
                if line.strip():
                    self._line(json.loads(line.decode("utf-8")))
        except (OSError, http.client.HTTPException, ValueError) as e:
            self._fail(type(e).__name__)
        finally:
            conn.close()

    def _line(self, msg):
        if msg.get("canceled"):
            raise ValueError("canceled: %s" % msg.get("reason"))
        self._take(msg.get("events", []))
        rev = msg.get("header", {}).get("revision")
        if msg.get("progress") and isinstance(rev, int):
            self.cursor = max(self.cursor, rev + 1)

    def follow(self, stop_at):
        while not stop_at():
            if self.stream:
                self.stream_once(stop_at)
            else:
                self.poll_once()


def stored_history(node, start, end, deadline):
    """Node's own stored history of w/ in [start, end], read back by
    long-poll catch-up; None if it could not be read before the deadline."""
    cursor = start
    reader = Watcher("stored", lambda: node, start, False, RANGES[0], threading.Event())
    while cursor <= end:
        if time.monotonic() > deadline:
            return None
        reader.cursor = cursor
        reader.poll_once()
        cursor = reader.cursor
    return [e for e in reader.events if e["revision"] <= end]


class Watch(Workload):
    name = "watch"

    def __init__(self, cluster, history, seed, clients):
        super().__init__(cluster, history, seed, clients)
        a = read_until(cluster.nodes[0].port, "/status", time.monotonic() + 30)
        st = (a.json() if a.status == 200 else None) or {}
        self.start_rev = st.get("revision", 0) + 1
        self.stop_watchers = threading.Event()
        self.watchers = []
        for i in range(2 * len(cluster.nodes)):
            span = RANGES[(i // 2) % len(RANGES)]
            mode = "stream" if i % 2 else "poll"
            self.watchers.append(Watcher("watcher%d-%s-%s" % (i, mode, span[0]),
                                         lambda i=i: cluster.client_node(i), self.start_rev,
                                         bool(i % 2), span, self.stop_watchers))
        self.end_rev = None
        self.inputs = None
        self.wthreads = []

    def start(self, stop):
        super().start(stop)
        for w in self.watchers:
            t = threading.Thread(target=w.follow, args=(self._watch_done(w),), daemon=True)
            t.start()
            self.wthreads.append(t)

    def _watch_done(self, w):
        def done():
            if self.stop_watchers.is_set():
                return True
            return self.end_rev is not None and w.cursor > self.end_rev
        return done

    def one_op(self, process, node, rng):
        key = "%s%d" % (PREFIX, rng.randrange(KEYS))
        if rng.random() < 0.15:
            op = self.history.invoke(process, "delete", key, node=node.id)
            a = call(node.port, "DELETE", "/kv/" + key, timeout=CLIENT_TIMEOUT)
        else:
            value = "%s-%d" % (process, rng.getrandbits(40))
            op = self.history.invoke(process, "put", key, value, node=node.id)
            a = call(node.port, "PUT", "/kv/" + key, value, timeout=CLIENT_TIMEOUT)
        out = a.outcome()
        body = a.json() if out == "ok" else None
        if out == "ok" and body is None:
            out = "info"
        extra = {}
        if out == "ok" and (op["f"] == "put" or body.get("deleted", 0) > 0):
            extra["revision"] = body.get("header", {}).get("revision")
        self.history.complete(op, out, status=a.status, **extra)

    def check(self, lead, timeout=60):
        a = read_until(lead.port, "/kv/%s?prefix=true" % PREFIX, time.monotonic() + 30)
        body = a.json() if a.status == 200 else None
        if body is None:
            return {"valid": None, "reason": "final read of %s answered %s" % (PREFIX, a.status)}
        final = {kv["key"]: (kv.get("value"), kv["mod_revision"]) for kv in body.get("kvs", [])}
        self.end_rev = body["header"]["revision"]
        deadline = time.monotonic() + timeout
        for t in self.wthreads:
            t.join(max(0.1, deadline - time.monotonic()))
        self.stop_watchers.set()
        lagging = [w.name for w in self.watchers if w.cursor <= self.end_rev]
        if lagging:
            return {"valid": False, "reason": "watch: %s did not reach revision %d within %ds"
                                              % (", ".join(lagging), self.end_rev, timeout)}
        seen = {w.name: [e for e in w.events if e["revision"] <= self.end_rev]
                for w in self.watchers}
        stored = {repr(x): stored_history(x, self.start_rev, self.end_rev, deadline + 30)
                  for x in self.cluster.nodes}
        ops = [o for o in self.history.ops if o["f"] in ("put", "delete")]
        # kept so test_e2e can prove the check fails on a corrupted copy
        self.inputs = (ops, seen, final, {w.name: w.range for w in self.watchers}, stored)
        res = checkers.check_watch(*self.inputs)
        res["connections"] = sum(w.connections for w in self.watchers)
        errs = {}
        for w in self.watchers:
            for why, n in w.errors.items():
                errs[why] = errs.get(why, 0) + n
        res["broken"] = sum(errs.values())
        if errs:
            causes = "connections broken or refused, by cause: " + ", ".join(
                "%s %d" % kv for kv in sorted(errs.items(), key=lambda kv: -kv[1]))
            res["detail"] = "\n".join(x for x in (res.get("detail"), causes) if x)
        return res
