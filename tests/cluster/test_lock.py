"""The server-side lock (POST /lock/{name}, DELETE /lock/{key}) on a real
3-node cluster: 20 contending clients through all nodes never overlap and
get strictly increasing fencing revisions; a holder whose lease expires
loses the lock to the next waiter, and so does one that stops its
keepalives; a timed-out waiter leaves the line, and so does one whose
client hangs up; bad input. Must never sleep in place of a condition."""

import json
import socket
import threading

import harness
from harness import check, wait_for
from leaselib import KeepAlive, fast_cluster, grant, jreq, monotonic


# run.py --jobs runs these alone: its holder's 1 s TTL is kept alive
# every 0.25 s
SERIAL = {"test_lock_passes_on_when_holder_stops_keepalives"}


def lock(node, name, lease, timeout=None, http_timeout=120):
    q = "?timeout=%d" % timeout if timeout is not None else ""
    return jreq(node, "POST", "/lock/%s%s" % (name, q), {"lease": lease}, timeout=http_timeout)


def unlock(node, key):
    return jreq(node, "DELETE", "/lock/%s" % key)


def line(node, name):
    st, js = jreq(node, "GET", "/kv/%s/?prefix=true" % name)
    check(st == 200, "GET the line: %s %s" % (st, js))
    return sorted((kv["create_revision"], kv["key"]) for kv in js["kvs"])


def test_lock_contention_20_clients(env):
    nodes = fast_cluster(env)
    records, errors = [], []
    mu = threading.Lock()

    def client(i):
        node = nodes[i % 3]
        try:
            lid, _ = grant(node, 60)
            st, js = lock(node, "contended", lid)
            if st != 200:
                raise AssertionError("client %d: lock answered %s %s" % (i, st, js))
            enter = monotonic()
            # hold briefly, as a critical section would
            threading.Event().wait(0.02)
            exit_ = monotonic()
            with mu:
                records.append((enter, exit_, js["revision"], js["key"], i))
            st, js2 = unlock(node, js["key"])
            if st != 200 or js2.get("deleted") != 1:
                raise AssertionError("client %d: unlock %s %s" % (i, st, js2))
        except Exception as e:  # reported below, in the test's thread
            errors.append("client %d: %r" % (i, e))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    check(not errors, "; ".join(errors[:3]))
    check(len(records) == 20, "only %d of 20 clients got the lock" % len(records))
    records.sort()
    for a, b in zip(records, records[1:]):
        check(a[1] <= b[0], "holders overlap: client %d [%f, %f] and client %d [%f, %f]"
              % (a[4], a[0], a[1], b[4], b[0], b[1]))
        check(a[2] < b[2], "fencing revisions not increasing: %d then %d" % (a[2], b[2]))
    check(line(nodes[0], "contended") == [], "the line is empty afterwards")


def test_lock_passes_on_when_holder_lease_expires(env):
    nodes = fast_cluster(env)
    dead, ttl = grant(nodes[0], 1)  # never kept alive: a crashed holder
    st, held = lock(nodes[0], "job", dead)
    check(st == 200, "first lock: %s %s" % (st, held))
    t0 = monotonic()
    live, _ = grant(nodes[1], 60)
    st, js = lock(nodes[1], "job", live, timeout=30)
    waited = monotonic() - t0
    check(st == 200, "the waiter must get the lock after the holder's TTL: %s %s" % (st, js))
    check(js["revision"] > held["revision"], "fencing: %d after %d"
          % (js["revision"], held["revision"]))
    check(waited >= ttl - 0.5, "the lock passed on after %.2fs, before the TTL" % waited)
    check(line(nodes[2], "job") == [(js["revision"], js["key"])], "only the new holder is in line")
    # the old holder's unlock cannot release the new holder's lock
    st, js3 = unlock(nodes[0], held["key"])
    check(st == 200 and js3["deleted"] == 0, "stale unlock deletes nothing: %s %s" % (st, js3))


def test_lock_passes_on_when_holder_stops_keepalives(env):
    nodes = fast_cluster(env)
    holder, ttl = grant(nodes[0], 1)
    ka = KeepAlive(nodes[:2], holder, 0.25)
    try:
        st, held = lock(nodes[0], "ka", holder)
        check(st == 200, "lock: %s %s" % (st, held))
        waiter, _ = grant(nodes[2], 60)
        got = {}
        t = threading.Thread(target=lambda: got.update(r=lock(nodes[2], "ka", waiter, timeout=60)),
                             daemon=True)
        t.start()
        wait_for(lambda: len(line(nodes[1], "ka")) == 2, 10, "the waiter to stand in line")
        # kept alive for several TTLs: the holder keeps the lock
        t.join(4 * ttl)
        check(t.is_alive() and line(nodes[1], "ka")[0][1] == held["key"],
              "the lock passed on while the holder kept its lease alive: %s" % got)
        check(not ka.errors and ka.ok > 0, "keepalives: %d ok, %s" % (ka.ok, ka.errors))
    finally:
        ka.stop()
    stopped = monotonic()
    t.join(30)
    st, js = got.get("r", (None, None))
    check(st == 200 and js["revision"] > held["revision"], "the waiter gets the lock: %s %s"
          % (st, js))
    waited = monotonic() - stopped
    check(waited >= ttl - 0.5, "the lock passed on %.2fs after the last keepalive" % waited)


def held_lock(env, name):
    """A fresh cluster where lease a holds the lock `name` through node 0,
    and lease b, granted too, is free to wait for it: (nodes, a, b, held)."""
    nodes = fast_cluster(env)
    a, _ = grant(nodes[0], 60)
    b, _ = grant(nodes[1], 60)
    st, held = lock(nodes[0], name, a)
    check(st == 200, "lock %s: %s %s" % (name, st, held))
    return nodes, a, b, held


def test_lock_waiter_that_hangs_up_leaves_the_line(env):
    nodes, _, b, held = held_lock(env, "hang")
    body = json.dumps({"lease": b}).encode()
    sock = harness.connect(nodes[1].port)
    sock.sendall(b"POST /lock/hang HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                 % len(body) + body)
    wait_for(lambda: len(line(nodes[2], "hang")) == 2, 10, "the waiter to stand in line")
    sock.close()
    t0 = monotonic()
    wait_for(lambda: len(line(nodes[2], "hang")) == 1, 10, "the waiter's key to go with its client")
    print("  the waiter left %.2fs after its client hung up" % (monotonic() - t0))
    check(unlock(nodes[0], held["key"])[0] == 200, "unlock")
    check(line(nodes[2], "hang") == [], "nobody holds the lock for the gone client")
    c, _ = grant(nodes[2], 60)
    st, js = lock(nodes[2], "hang", c, timeout=5)
    check(st == 200, "the lock is free: %s %s" % (st, js))


def test_lock_timeout_leaves_line(env):
    nodes, a, b, held = held_lock(env, "t")
    st, js = lock(nodes[1], "t", b, timeout=1)
    check(st == 408 and js["reason"] == "lock_timeout", "timeout: %s %s" % (st, js))
    check([k for _, k in line(nodes[2], "t")] == [held["key"]], "the timed-out waiter left")
    # re-locking with the same lease is idempotent: same key, same place
    st, again = lock(nodes[2], "t", a)
    check(st == 200 and again["key"] == held["key"] and again["revision"] == held["revision"],
          "re-lock by the holder: %s %s" % (st, again))
    check(unlock(nodes[0], held["key"])[0] == 200, "unlock")
    st, js = lock(nodes[1], "t", b, timeout=5)
    check(st == 200, "free lock: %s %s" % (st, js))


def test_lock_bad_input(env):
    nodes = fast_cluster(env)
    n = nodes[0]
    rev = n.status()["revision"]
    for body in ({}, {"lease": 0}, {"lease": "x"}, {"lease": 1, "extra": 2}):
        st, js = jreq(n, "POST", "/lock/l", body)
        check(st == 400 and js["reason"] == "invalid_argument", "lock %s: %s %s" % (body, st, js))
    st, js = jreq(n, "POST", "/lock/l", b"{")
    check(st == 400 and js["reason"] == "invalid_json", "bad JSON: %s %s" % (st, js))
    st, js = jreq(n, "POST", "/lock/l", {"lease": 424242})
    check(st == 404 and js["reason"] == "lease_not_found", "unknown lease: %s %s" % (st, js))
    st, js = jreq(n, "POST", "/lock/l?timeout=-1", {"lease": 1})
    check(st == 400 and "timeout" in js["error"], "negative timeout: %s %s" % (st, js))
    st, js = jreq(n, "GET", "/lock/l")
    check(st == 405, "GET /lock: %s" % st)
    check(n.status()["revision"] == rev, "nothing written")
    wait_for(n.healthy, 5, "node healthy")
