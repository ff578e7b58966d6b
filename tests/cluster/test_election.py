"""Server-side election (/election/{name}/...) on a real 3-node cluster:
campaigners on different nodes, proclaim, observe (long-poll with a
cursor) seeing every leadership change in order, a dead leader's client
(lease expires) replaced, resign, bad input. Must never sleep in place of
a condition."""

import threading

from harness import check, wait_for
from leaselib import KeepAlive, fast_cluster, grant, jreq


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
