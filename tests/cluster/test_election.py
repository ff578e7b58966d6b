"""Server-side election (/election/{name}/...) on a real 3-node cluster:
campaigners on different nodes, proclaim, observe (long-poll with a
cursor, and the NDJSON stream) seeing every leadership change in order, a
dead leader's client (lease expires, its node killed) replaced, resign, a
campaigner whose client hangs up leaving the line, bad input. Must never
sleep in place of a condition."""

import http.client
import json
import socket
import threading

import harness
from harness import check, wait_for
from leaselib import KeepAlive, fast_cluster, grant, jreq, monotonic


def campaign(node, name, lease, value, timeout=60):
    return jreq(node, "POST", "/election/%s/campaign" % name, {"lease": lease, "value": value},
                timeout=timeout + 10)


class Observer:
    """Long-polls /observe on one node from a thread, recording each
    distinct leader (key, value) in order."""

    def __init__(self, node, name):
        self.node, self.name = node, name
        self.seen, self.errors = [], []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        cursor = None
        while not self.stopped.is_set():
            q = "?timeout=2" + ("&start_revision=%d" % cursor if cursor else "")
            try:
                st, js = jreq(self.node, "GET", "/election/%s/observe%s" % (self.name, q),
                              timeout=15)
            except OSError as e:
                self.errors.append(repr(e))
                return
            if st != 200:
                self.errors.append("observe: %s %s" % (st, js))
                return
            cursor = js["next_revision"]
            kv = js.get("kv")
            cur = (kv["key"], kv["value"]) if kv else None
            if cur and (not self.seen or self.seen[-1] != cur):
                self.seen.append(cur)

    def stop(self):
        self.stopped.set()
        self.thread.join(20)


class StreamObserver:
    """GET /election/{name}/observe?stream=true on one node, read from a
    thread: the created line, then every line (progress lines counted
    apart) until stop()."""

    def __init__(self, node, name, query="progress_ms=200"):
        self.conn = harness.http_connection(node.port, timeout=30)
        self.conn.request("GET", "/election/%s/observe?stream=true&%s" % (name, query))
        self.resp = self.conn.getresponse()
        check(self.resp.status == 200, "observe stream: %s" % self.resp.status)
        check(self.resp.getheader("Content-Type") == "application/x-ndjson", "NDJSON")
        self.created = json.loads(self.resp.readline())
        self.lines, self.progress, self.errors = [], 0, []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                text = self.resp.readline()
            except (OSError, http.client.HTTPException, ValueError, AttributeError) as e:
                # (AttributeError: http.client, once stop() closed the response)
                if not self.stopped.is_set():
                    self.errors.append(repr(e))
                return
            if not text:
                if not self.stopped.is_set():
                    self.errors.append("the stream ended")
                return
            js = json.loads(text)
            if js.get("progress"):
                self.progress += 1
            else:
                self.lines.append(js)

    def leaders(self):
        return [(ln["kv"]["key"], ln["kv"]["value"]) if "kv" in ln else None
                for ln in list(self.lines)]

    def stop(self):
        self.stopped.set()
        self.conn.close()
        self.thread.join(10)


def leader_of(node, name):
    st, js = jreq(node, "GET", "/election/%s/leader" % name)
    if st == 404:
        check(js["reason"] == "no_leader", "no leader: %s" % js)
        return None
    check(st == 200, "leader: %s %s" % (st, js))
    return js["kv"]["key"], js["kv"]["value"]


def test_election_failover_and_observe(env):
    nodes = fast_cluster(env)
    n1, n2, n3 = nodes
    obs = Observer(n3, "svc")
    la, _ = grant(n1, 1)
    lb, _ = grant(n2, 1)
    lc, _ = grant(n3, 1)
    kas = [KeepAlive([n1], la, 0.25), KeepAlive([n2], lb, 0.25), KeepAlive([n3], lc, 0.25)]
    results = {}
    try:
        st, a = campaign(n1, "svc", la, "A1")
        check(st == 200 and a["leader"]["lease"] == la, "A leads: %s %s" % (st, a))
        akey = a["leader"]["key"]

        def bg(tag, node, lease, value):
            results[tag] = campaign(node, "svc", lease, value)
        tb = threading.Thread(target=bg, args=("B", n2, lb, "B1"), daemon=True)
        tb.start()
        wait_for(lambda: len(jreq(n1, "GET", "/kv/svc/?prefix=true")[1]["kvs"]) == 2, 10,
                 "B to stand in line")
        tc = threading.Thread(target=bg, args=("C", n3, lc, "C1"), daemon=True)
        tc.start()
        wait_for(lambda: len(jreq(n1, "GET", "/kv/svc/?prefix=true")[1]["kvs"]) == 3, 10,
                 "C to stand in line")
        for n in nodes:
            check(leader_of(n, "svc") == (akey, "A1"), "leader on %s" % n)
        st, js = jreq(n1, "POST", "/election/svc/proclaim",
                      {"lease": la, "rev": a["leader"]["rev"], "value": "A2"})
        check(st == 200, "proclaim: %s %s" % (st, js))
        wait_for(lambda: obs.seen and obs.seen[-1] == (akey, "A2"), 10, "observe A2")
        kas[0].stop()  # A's client dies: its lease expires, B takes over
        tb.join(30)
        st, b = results.get("B", (None, None))
        check(st == 200 and b["leader"]["lease"] == lb, "B elected: %s %s" % (st, b))
        check(not tc.is_alive() or leader_of(n1, "svc")[0] == b["leader"]["key"], "B leads")
        st, js = jreq(n2, "POST", "/election/svc/resign", {"lease": lb, "rev": b["leader"]["rev"]})
        check(st == 200, "resign: %s %s" % (st, js))
        tc.join(30)
        st, c = results.get("C", (None, None))
        check(st == 200 and c["leader"]["lease"] == lc, "C elected: %s %s" % (st, c))
        wait_for(lambda: obs.seen and obs.seen[-1][0] == c["leader"]["key"], 10, "observe C")
        st, js = jreq(n2, "POST", "/election/svc/resign", {"lease": lb})
        check(st == 412 and js["reason"] == "not_leader", "resign twice: %s %s" % (st, js))
    finally:
        for ka in kas:
            ka.stop()
        obs.stop()
    check(not obs.errors, "observer: %s" % obs.errors)
    want = [(akey, "A1"), (akey, "A2"), (b["leader"]["key"], "B1"), (c["leader"]["key"], "C1")]
    check(obs.seen == want, "observed %s, want %s" % (obs.seen, want))


def test_election_bad_input(env):
    nodes = fast_cluster(env)
    n = nodes[0]
    rev = n.status()["revision"]
    cases = [
        ("POST", "/election/e/campaign", {"value": "x"}, 400),
        ("POST", "/election/e/campaign", {"lease": 1, "value": 5}, 400),
        ("POST", "/election/e/campaign", {"lease": 1, "junk": 1}, 400),
        ("POST", "/election/e/campaign", {"lease": 99999}, 404),
        ("POST", "/election/e/proclaim", {"lease": 99999, "value": "v"}, 412),
        ("POST", "/election/e/resign", {"lease": -3}, 400),
        ("GET", "/election/e/observe?start_revision=0", None, 400),
        ("GET", "/election/e/observe?timeout=x", None, 400),
        ("GET", "/election/e/observe?stream=maybe", None, 400),
        ("GET", "/election/e/observe?stream=true&progress_ms=5", None, 400),
        ("GET", "/election/e/observe?stream=true&progress_ms=99999999", None, 400),
        ("GET", "/election/e/observe?stream=true&start_revision=x", None, 400),
        ("GET", "/election/e/observe?streams=true", None, 400),
        ("GET", "/election/e/leader", None, 404),
        ("POST", "/election/e/vote", {"lease": 1}, 404),
        ("GET", "/election/e/campaign", None, 405),
    ]
    for method, path, body, want in cases:
        st, js = jreq(n, method, path, body)
        check(st == want, "%s %s %s: %s %s" % (method, path, body, st, js))
    st, js = jreq(n, "GET", "/election/e/observe?timeout=0")
    check(st == 200 and "kv" not in js and js["next_revision"] == js["header"]["revision"] + 1,
          "observe with no leader, no wait: %s %s" % (st, js))
    check(n.status()["revision"] == rev, "nothing written")


def test_election_observe_stream_in_order(env):
    """Campaigners on all three nodes; leadership passes by lease expiry
    (a client stops its keepalives), resign, and the kill of the node a
    leader's client talks through. Two streams on different nodes see
    every change, in order, exactly once."""
    nodes = fast_cluster(env)
    n1, n2, n3 = nodes
    streams = [StreamObserver(n1, "st"), StreamObserver(n2, "st")]
    ids = {tag: grant(node, 1)[0] for tag, node in (("A", n1), ("B", n2), ("C", n3), ("D", n1))}
    kas = {"A": KeepAlive([n1], ids["A"], 0.25), "B": KeepAlive([n2], ids["B"], 0.25),
           "C": KeepAlive([n3], ids["C"], 0.25), "D": KeepAlive([n1, n2], ids["D"], 0.25)}
    results, threads = {}, {}

    def bg(tag, node):
        results[tag] = campaign(node, "st", ids[tag], tag + "1")

    def stand(tag, node, n_in_line):
        threads[tag] = threading.Thread(target=bg, args=(tag, node), daemon=True)
        threads[tag].start()
        wait_for(lambda: len(jreq(n1, "GET", "/kv/st/?prefix=true")[1]["kvs"]) == n_in_line,
                 10, "%s to stand in line" % tag)

    def elected(tag):
        threads[tag].join(30)
        st, js = results.get(tag, (None, None))
        check(st == 200 and js["leader"]["lease"] == ids[tag], "%s elected: %s %s" % (tag, st, js))
        return js["leader"]

    try:
        for s in streams:
            check("kv" not in s.created and s.created.get("created") is True,
                  "created with no leader: %s" % s.created)
        stand("A", n1, 1)
        a = elected("A")
        stand("B", n2, 2)
        stand("C", n3, 3)
        stand("D", n1, 4)
        for v in ("A2", "A3"):  # back to back: a long-poll may see only A3
            st, js = jreq(n1, "POST", "/election/st/proclaim",
                          {"lease": ids["A"], "rev": a["rev"], "value": v})
            check(st == 200, "proclaim: %s %s" % (st, js))
        kas["A"].stop()          # A's client dies: its lease expires
        b = elected("B")
        st, js = jreq(n2, "POST", "/election/st/resign", {"lease": ids["B"], "rev": b["rev"]})
        check(st == 200, "resign: %s %s" % (st, js))
        c = elected("C")
        n3.kill()                # C's client talked through n3 only: its lease expires
        d = elected("D")
        st, js = jreq(n1, "POST", "/election/st/resign", {"lease": ids["D"], "rev": d["rev"]})
        check(st == 200, "resign D: %s %s" % (st, js))
        want = [(a["key"], "A1"), (a["key"], "A2"), (a["key"], "A3"), (b["key"], "B1"), (c["key"], "C1"),
                (d["key"], "D1"), None]
        for s in streams:
            wait_for(lambda: len(s.lines) >= len(want) or s.errors, 15, "the stream to catch up")
            check(not s.errors, "stream: %s" % s.errors)
            check(s.leaders() == want, "streamed %s, want %s" % (s.leaders(), want))
            revs = [ln["header"]["revision"] for ln in s.lines]
            check(revs == sorted(set(revs)) and revs[0] > s.created["header"]["revision"],
                  "revisions increase: %s" % revs)
            check(all(ln["next_revision"] == ln["header"]["revision"] + 1 for ln in s.lines),
                  "next_revision: %s" % s.lines)
            check(s.progress > 0, "progress lines while idle")
        # a stream from an old cursor replays the same changes from history
        old = StreamObserver(n2, "st", "start_revision=%d" % streams[0].created["next_revision"])
        try:
            check(old.created["header"]["revision"] == streams[0].created["header"]["revision"],
                  "created at the cursor: %s" % old.created)
            wait_for(lambda: len(old.lines) >= len(want), 10, "the replay")
            def shape(lines):
                return [(ln["header"]["revision"], ln.get("kv")) for ln in lines]
            check(shape(old.lines) == shape(streams[1].lines), "replay %s" % old.lines)
        finally:
            old.stop()
    finally:
        for ka in kas.values():
            ka.stop()
        for s in streams:
            s.stop()


def test_campaigner_that_hangs_up_leaves_the_line(env):
    """A waiting campaign whose client closes its connection has its key
    deleted (it would otherwise be elected later, with nobody to lead)."""
    nodes = fast_cluster(env)
    la, _ = grant(nodes[0], 60)
    lb, _ = grant(nodes[0], 60)
    st, a = campaign(nodes[0], "hang", la, "A")
    check(st == 200, "A leads: %s %s" % (st, a))
    body = json.dumps({"lease": lb, "value": "B"}).encode()
    sock = harness.connect(nodes[1].port)
    sock.sendall(b"POST /election/hang/campaign HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                 % len(body) + body)
    wait_for(lambda: len(jreq(nodes[2], "GET", "/kv/hang/?prefix=true")[1]["kvs"]) == 2, 10,
             "B to stand in line")
    sock.close()
    t0 = monotonic()
    wait_for(lambda: len(jreq(nodes[2], "GET", "/kv/hang/?prefix=true")[1]["kvs"]) == 1, 10,
             "B's key to go with its client")
    print("  campaigner left %.2fs after its client hung up" % (monotonic() - t0))
    check(leader_of(nodes[2], "hang") == (a["leader"]["key"], "A"), "A still leads")
