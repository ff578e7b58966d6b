"""The recipes of docs/RECIPES.md as clients would run them, on a real
3-node cluster: a FIFO queue (5 producers, 3 consumers, through different
nodes: every element exactly once, FIFO per producer) and service
discovery (instances register with leases and die; a watcher's list+watch
view converges to the live set, no missed or phantom instance). Must
never sleep in place of a condition: an empty queue blocks on a watch."""

import threading
import time

from harness import check, wait_for
from leaselib import KeepAlive, fast_cluster, grant, jreq, put


def watch(node, prefix, start, timeout=5):
    """One long-poll: (events, next_revision)."""
    st, js = jreq(node, "GET", "/watch/%s?prefix=true&start_revision=%d&timeout=%d"
                  % (prefix, start, timeout), timeout=timeout + 10)
    check(st == 200, "watch %s from %d on %s: %s %s" % (prefix, start, node, st, js))
    return js["events"], js["next_revision"]


# ---- FIFO queue ----

def enqueue(node, value):
    """A create-only txn on a unique, time-ordered key (the recipe's)."""
    while True:
        key = "queue/%020d" % time.time_ns()
        st, js = jreq(node, "POST", "/txn", {
            "compare": [{"key": key, "target": "CREATE", "result": "EQUAL",
                         "create_revision": 0}],
            "success": [{"request_put": {"key": key, "value": value}}]})
        check(st == 200, "enqueue: %s %s" % (st, js))
        if js["succeeded"]:
            return key


def dequeue(node, deadline, done=lambda: False):
    """Deletes the lowest key with a txn guarded by its mod revision; blocks
    on a watch while the queue is empty. Returns (value, revision), or None
    at the deadline or once done() says nothing more will come."""
    while time.monotonic() < deadline and not done():
        st, js = jreq(node, "GET", "/kv/queue/?prefix=true&limit=1")
        check(st == 200, "list queue: %s %s" % (st, js))
        if not js["kvs"]:
            watch(node, "queue/", js["header"]["revision"] + 1, timeout=2)
            continue
        kv = js["kvs"][0]
        st, t = jreq(node, "POST", "/txn", {
            "compare": [{"key": kv["key"], "target": "MOD", "result": "EQUAL",
                         "mod_revision": kv["mod_revision"]}],
            "success": [{"request_delete_range": {"key": kv["key"]}}]})
        check(st == 200, "dequeue txn: %s %s" % (st, t))
        if t["succeeded"]:
            return kv["value"], t["header"]["revision"]
    return None


def test_fifo_queue(env):
    nodes = fast_cluster(env)
    producers, per, consumers = 5, 20, 3
    total = producers * per
    got, errors = [], []
    mu = threading.Lock()
    deadline = time.monotonic() + 90

    def produce(p):
        try:
            for i in range(per):
                enqueue(nodes[p % 3], "p%d-%03d" % (p, i))
        except Exception as e:
            errors.append("producer %d: %r" % (p, e))

    def consume(c):
        try:
            while True:
                with mu:
                    if len(got) >= total:
                        return
                item = dequeue(nodes[c % 3], deadline, lambda: len(got) >= total)
                if item is None:
                    return
                with mu:
                    got.append(item)
        except Exception as e:
            errors.append("consumer %d: %r" % (c, e))

    threads = [threading.Thread(target=consume, args=(c,), daemon=True) for c in range(consumers)]
    threads += [threading.Thread(target=produce, args=(p,), daemon=True) for p in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not errors, "; ".join(errors[:3]))
    values = [v for v, _ in got]
    check(len(values) == total and len(set(values)) == total,
          "dequeued %d (%d distinct) of %d" % (len(values), len(set(values)), total))
    for p in range(producers):
        mine = [v for v, _ in sorted(got, key=lambda x: x[1]) if v.startswith("p%d-" % p)]
        check(mine == sorted(mine), "producer %d dequeued out of order: %s" % (p, mine))
    st, js = jreq(nodes[0], "GET", "/kv/queue/?prefix=true&count_only=true")
    check(js["count"] == 0, "queue empty at the end")


# ---- service discovery ----

class Discovery:
    """The recipe's client: list the prefix, then watch from the list's
    revision + 1, applying events to its view."""

    def __init__(self, node):
        st, js = jreq(node, "GET", "/kv/svc/?prefix=true")
        check(st == 200, "list: %s" % st)
        self.node = node
        self.view = {kv["key"]: kv["value"] for kv in js["kvs"]}
        self.cursor = js["header"]["revision"] + 1

    def poll(self):
        events, self.cursor = watch(self.node, "svc/", self.cursor, timeout=1)
        for e in events:
            if e["type"] == "PUT":
                self.view[e["kv"]["key"]] = e["kv"]["value"]
            else:
                check(e["kv"]["key"] in self.view, "phantom DELETE of %s" % e["kv"]["key"])
                del self.view[e["kv"]["key"]]

    def converges_to(self, keys):
        self.poll()
        return set(self.view) == set(keys)


def test_service_discovery(env):
    nodes = fast_cluster(env)
    insts, kas = {}, {}
    try:
        def register(i):
            lid, _ = grant(nodes[i % 3], 1)
            st, r = put(nodes[i % 3], "svc/inst-%d" % i, "10.0.0.%d:80" % i, lease=lid)
            check(st == 200, "register %d: %r" % (i, r))
            insts[i] = "svc/inst-%d" % i
            kas[i] = KeepAlive([nodes[i % 3], nodes[(i + 1) % 3]], lid, 0.25)
        for i in range(3):
            register(i)
        d = Discovery(nodes[2])  # starts with some instances already there
        check(set(d.view) == {insts[i] for i in range(3)}, "initial list: %s" % d.view)
        for i in range(3, 6):
            register(i)
        live = lambda: [insts[i] for i in kas if not kas[i].stopped.is_set()]  # noqa: E731
        wait_for(lambda: d.converges_to(live()), 20, "the view to show 6 instances")
        for i in (1, 4):  # these instances die: their keepalives stop
            kas[i].stop()
        wait_for(lambda: d.converges_to(live()), 20, "the view to drop the dead instances")
        register(6)
        wait_for(lambda: d.converges_to(live()), 20, "the view to add a new instance")
        st, js = jreq(nodes[0], "GET", "/kv/svc/?prefix=true")
        check(sorted(kv["key"] for kv in js["kvs"]) == sorted(d.view), "view == store")
    finally:
        for ka in kas.values():
            ka.stop()
