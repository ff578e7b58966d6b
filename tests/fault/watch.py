"""watch: the watch workload — writers put and delete keys under w/, one
watcher per node (alternately long-poll and stream) follows the prefix from
the run's first revision with its own cursor, reconnecting to its node after
kills, pauses and partitions. After the run each watcher drains up to the
revision of a final linearizable read, and checkers.check_watch compares
them with the acknowledged writes and that read.

Must never: move a cursor past an event it did not record (the cursor only
advances from events or progress headers it has read), or wait without a
deadline (every request has a timeout; draining has one too).
"""

import http.client
import json
import threading
import time

import checkers
from history import call
from workloads import CLIENT_TIMEOUT, Workload

PREFIX = "w/"
KEYS = 5


class Watcher:
    def __init__(self, name, pick, start, stream):
        # pick() is the node to (re)connect to: a removed node's watcher
        # moves to the member that took its place, keeping its cursor.
        self.name, self.pick, self.cursor, self.stream = name, pick, start, stream
        self.events = []
        self.errors = 0

    def _take(self, events):
        for ev in events:
            kv = ev.get("kv", {})
            rev = kv.get("mod_revision")
            self.events.append({"revision": rev, "type": ev.get("type"), "key": kv.get("key"),
                                "value": kv.get("value") if ev.get("type") == "PUT" else None})
            if rev is not None:
                self.cursor = max(self.cursor, rev + 1)

    def poll_once(self):
        path = "/watch/%s?prefix=true&start_revision=%d&timeout=1" % (PREFIX, self.cursor)
        a = call(self.pick().port, "GET", path, timeout=4)
        body = a.json() if a.status == 200 else None
        if body is None:
            self.errors += 1
            return
        self._take(body.get("events", []))
        nxt = body.get("next_revision")
        if isinstance(nxt, int):
            self.cursor = max(self.cursor, nxt)

    def stream_once(self, stop_at):
        """One streaming connection, until it breaks or stop_at() says so."""
        path = ("/watch/%s?prefix=true&start_revision=%d&stream=true&progress_ms=300"
                % (PREFIX, self.cursor))
        conn = http.client.HTTPConnection("127.0.0.1", self.pick().port, timeout=3)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            if r.status != 200:
                self.errors += 1
                r.read()
                return
            while not stop_at():
                line = r.readline()
                if not line:
                    break
                if not line.strip():
                    continue
                msg = json.loads(line.decode("utf-8"))
                if msg.get("canceled"):
                    self.errors += 1
                    break
                self._take(msg.get("events", []))
                rev = msg.get("header", {}).get("revision")
                if msg.get("progress") and isinstance(rev, int):
                    self.cursor = max(self.cursor, rev + 1)
        except (OSError, http.client.HTTPException, ValueError):
            self.errors += 1
        finally:
            conn.close()

    def follow(self, stop_at):
        while not stop_at():
            if self.stream:
                self.stream_once(stop_at)
            else:
                self.poll_once()


class Watch(Workload):
    name = "watch"

    def __init__(self, cluster, history, seed, clients):
        super().__init__(cluster, history, seed, clients)
        st = cluster.nodes[0].status() or {}
        self.start_rev = st.get("revision", 0) + 1
        self.watchers = [Watcher("watcher%d-%s" % (i, "stream" if i % 2 else "poll"),
                                 lambda i=i: cluster.client_node(i), self.start_rev, bool(i % 2))
                         for i in range(len(cluster.nodes))]
        self.end_rev = None
        self.wthreads = []
        self.stop_watchers = threading.Event()

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
        a = call(lead.port, "GET", "/kv/%s?prefix=true" % PREFIX, timeout=10)
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
        ops = [o for o in self.history.ops if o["f"] in ("put", "delete")]
        res = checkers.check_watch(ops, seen, final)
        res["reconnects"] = sum(w.errors for w in self.watchers)
        return res
