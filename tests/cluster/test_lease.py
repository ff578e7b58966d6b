"""Leases through the HTTP API on a real 3-node cluster: expiry (not before
the TTL, soon after it, one revision, DELETE events on every node),
keepalive, revoke, failover and restart, bad input. Owns no helpers (see
leaselib.py); must never sleep in place of a condition."""

from harness import check, wait_for
from leaselib import (ELECTION_S, KeepAlive, exists, fast_cluster, grant, jreq,
                      keepalive, monotonic, put, revision)


# run.py --jobs runs these alone: a 1 s TTL kept alive every 0.25 s,
# or an expiry bounded from above, is a time bound a busy machine breaks
SERIAL = {"test_lease_expiry", "test_keepalive_postpones_expiry",
          "test_lease_survives_leader_kill"}


def _deletes_at(node, prefix, rev):
    """The keys deleted at revision rev under prefix, seen by this node:
    through a watch long-poll from rev, or (until /watch exists) by reading
    the prefix just before and at rev."""
    st, js = jreq(node, "GET", "/watch/%s?prefix=true&start_revision=%d&timeout=5"
                  % (prefix, rev), timeout=15)
    if st == 200:
        evs = [e for e in js["events"] if e["kv"]["mod_revision"] == rev]
        check(all(e["type"] == "DELETE" for e in evs), "events at %d: %s" % (rev, evs))
        return sorted(e["kv"]["key"] for e in evs)
    check(st == 501, "watch on %s: %s %s" % (node, st, js))
    before = jreq(node, "GET", "/kv/%s?prefix=true&rev=%d" % (prefix, rev - 1))[1]
    after = jreq(node, "GET", "/kv/%s?prefix=true&rev=%d" % (prefix, rev))[1]
    gone = {k["key"] for k in before["kvs"]} - {k["key"] for k in after["kvs"]}
    return sorted(gone)


def test_lease_expiry(env):
    nodes = fast_cluster(env)
    ttl = 2
    lid, got = grant(nodes[1], ttl)
    t0 = monotonic()
    check(got == ttl, "granted ttl %s" % got)
    keys = ["exp/a", "exp/b", "exp/c"]
    for i, k in enumerate(keys):
        st, r = put(nodes[i], k, "v", lease=lid)
        check(st == 200, "PUT %s with lease: %r" % (k, r))
    st, js = jreq(nodes[2], "GET", "/lease/%d?keys=true" % lid)
    check(st == 200 and js["granted_ttl"] == ttl and 0 < js["ttl"] <= ttl,
          "GET lease: %s %s" % (st, js))
    check(sorted(k["key"] for k in js["keys"]) == keys, "lease keys: %s" % js["keys"])
    wait_for(lambda: not exists(nodes[0], "exp/a"), ttl + 10, "exp/a to expire")
    elapsed = monotonic() - t0
    # the deadline is set when the grant applies, before its answer left
    check(elapsed >= ttl - 0.1, "expired after %.2fs, before its TTL %ds" % (elapsed, ttl))
    check(elapsed <= ttl + ELECTION_S + 1.0,
          "expired %.2fs after the grant, TTL %ds" % (elapsed, ttl))
    rev = revision(nodes[0])
    for n in nodes:
        wait_for(lambda: revision(n) >= rev, 10, "%s to apply the revoke" % n)
        check(not any(exists(n, k) for k in keys), "all keys gone on %s" % n)
    # one revision deleted them all, and every node saw the same DELETEs
    for n in nodes:
        check(_deletes_at(n, "exp/", rev) == keys, "DELETEs at %d on %s" % (rev, n))
    st, js = jreq(nodes[1], "GET", "/lease/%d" % lid)
    check(st == 404 and js["reason"] == "lease_not_found", "expired lease: %s %s" % (st, js))
    st, r = put(nodes[0], "exp/late", "v", lease=lid)
    check(st == 404 and r.json()["reason"] == "lease_not_found", "PUT on expired lease: %r" % r)


def test_keepalive_postpones_expiry(env):
    nodes = fast_cluster(env)
    lid, ttl = grant(nodes[0], 1)
    check(ttl == 1, "minimum TTL with --election-ms 300 is 1 s, got %s" % ttl)
    check(put(nodes[0], "ka/k", "v", lease=lid)[0] == 200, "PUT with lease")
    ka = KeepAlive(nodes, lid, 0.25)
    try:
        end = monotonic() + 4 * ttl
        while monotonic() < end:  # watched over several TTLs, via all nodes
            check(exists(nodes[2], "ka/k"), "key expired while kept alive")
            ka.stopped.wait(0.1)
        check(not ka.errors and ka.ok > 0, "keepalives: %d ok, %s" % (ka.ok, ka.errors))
        st, js = keepalive(nodes[1], lid)
        check(st == 200 and js["id"] == lid and js["ttl"] == 1, "keepalive: %s %s" % (st, js))
    finally:
        ka.stop()
    wait_for(lambda: not exists(nodes[0], "ka/k"), 10, "ka/k to expire after keepalives stop")
    st, js = keepalive(nodes[0], lid)
    check(st == 404 and js["reason"] == "lease_not_found", "keepalive after expiry: %s %s" % (st, js))


def test_revoke_deletes_in_one_revision(env):
    nodes = fast_cluster(env)
    lid, _ = grant(nodes[0], 60, lease_id=12345)
    check(lid == 12345, "client-chosen id")
    st, js = jreq(nodes[1], "POST", "/lease", {"ttl": 60, "id": 12345})
    check(st == 409 and js["reason"] == "lease_exists", "duplicate id: %s %s" % (st, js))
    keys = ["rv/%d" % i for i in range(5)]
    for k in keys:
        check(put(nodes[1], k, "x", lease=lid)[0] == 200, "PUT %s" % k)
    check(put(nodes[1], "rv/plain", "y")[0] == 200, "PUT without a lease")
    st, js = jreq(nodes[2], "GET", "/lease")
    check(st == 200 and {"id": lid} in js["leases"], "lease list: %s" % js)
    st, js = jreq(nodes[2], "DELETE", "/lease/%d" % lid)
    check(st == 200, "revoke: %s %s" % (st, js))
    rev = js["header"]["revision"]
    for n in nodes:
        wait_for(lambda: revision(n) >= rev, 10, "%s to apply the revoke" % n)
        check(_deletes_at(n, "rv/", rev) == keys, "revoke's DELETEs on %s" % n)
    check(exists(nodes[0], "rv/plain"), "a key without the lease stays")
    st, js = jreq(nodes[0], "DELETE", "/lease/%d" % lid)
    check(st == 404 and js["reason"] == "lease_not_found", "second revoke: %s %s" % (st, js))
    st, js = jreq(nodes[0], "GET", "/lease")
    check({"id": lid} not in js["leases"], "revoked lease still listed: %s" % js)


def test_lease_survives_leader_kill(env):
    nodes = fast_cluster(env)
    leader = env.leader()
    others = [n for n in nodes if n is not leader]
    lid, ttl = grant(others[0], 2)
    check(put(others[0], "fo/k", "v", lease=lid)[0] == 200, "PUT with lease")
    # others[1] may hold the entry without knowing it is committed when the
    # leader dies, and a serializable read need not see it until the new
    # leader commits in its term: the loop below checks the lease, not that.
    wait_for(lambda: others[1].request("GET", "/kv/fo/k?serializable=true").status == 200,
             what="%s applied the PUT" % others[1])
    ka = KeepAlive(others, lid, 0.3)
    try:
        leader.kill()
        new_leader = env.leader(others)
        check(new_leader is not leader, "a survivor leads")
        # hold on across several TTLs after the failover: the key stays
        end = monotonic() + 3 * ttl
        while monotonic() < end:
            r = others[1].request("GET", "/kv/fo/k?serializable=true")
            check(r.status == 200, "key lost during failover: %r" % r)
            ka.stopped.wait(0.1)
        check(not ka.errors, "keepalive errors: %s" % ka.errors)
        leader.restart()
        env.wait_healthy([leader])
        check(exists(leader, "fo/k"), "restarted node has the key")
        st, js = jreq(leader, "GET", "/lease/%d" % lid)
        check(st == 200 and js["granted_ttl"] == ttl, "lease after restart: %s %s" % (st, js))
    finally:
        ka.stop()
    wait_for(lambda: not exists(others[0], "fo/k"), 15, "the key to expire once keepalives stop")


def test_lease_survives_full_restart(env):
    nodes = fast_cluster(env)
    lid, _ = grant(nodes[0], 60)
    check(put(nodes[0], "rs/k", "v", lease=lid)[0] == 200, "PUT with lease")
    for n in nodes:
        n.stop()
    for n in nodes:
        n.restart()
    env.wait_healthy(nodes)
    st, js = jreq(nodes[1], "GET", "/lease/%d?keys=true" % lid)
    check(st == 200 and js["granted_ttl"] == 60 and [k["key"] for k in js["keys"]] == ["rs/k"],
          "lease after a full restart: %s %s" % (st, js))
    check(js["ttl"] > 50, "a restart grants a fresh TTL, not an expiry: %s" % js)


def test_lease_bad_input(env):
    nodes = fast_cluster(env)
    n = nodes[0]
    lid, _ = grant(n, 30)
    rev = revision(n)
    bad_bodies = [
        ({"ttl": 0}, "ttl"), ({"ttl": -5}, "ttl"), ({"ttl": 9000000001}, "ttl"),
        ({"ttl": "10"}, "ttl"), ({"ttl": 1.5}, "ttl"), ({}, "ttl"),
        ({"ttl": 10, "id": 0}, "id"), ({"ttl": 10, "id": 2 ** 53}, "id"),
        ({"ttl": 10, "id": -1}, "id"), ({"ttl": 10, "idd": 3}, "ttl"),
    ]
    for body, param in bad_bodies:
        st, js = jreq(n, "POST", "/lease", body)
        check(st == 400 and param in js["error"], "POST /lease %s: %s %s" % (body, st, js))
    for raw in (b"{", b"[1]", b"ttl=5", b""):
        st, js = jreq(n, "POST", "/lease", raw)
        check(st == 400 and js["reason"] == "invalid_json", "POST /lease %r: %s %s" % (raw, st, js))
    for path in ("/lease/abc", "/lease/0", "/lease/9007199254740992"):
        st, js = jreq(n, "GET", path)
        check(st == 400 and "id" in js["error"], "GET %s: %s %s" % (path, st, js))
    st, js = jreq(n, "POST", "/lease/77/keepalive")
    check(st == 404 and js["reason"] == "lease_not_found", "keepalive unknown: %s %s" % (st, js))
    st, js = jreq(n, "DELETE", "/lease/77")
    check(st == 404 and js["reason"] == "lease_not_found", "revoke unknown: %s %s" % (st, js))
    st, js = jreq(n, "GET", "/lease/77")
    check(st == 404 and js["reason"] == "lease_not_found", "get unknown: %s %s" % (st, js))
    st, js = jreq(n, "GET", "/lease/%d?keys=maybe" % lid)
    check(st == 400 and "keys" in js["error"], "keys=maybe: %s %s" % (st, js))
    st, r = put(n, "bad/k", "v", lease=77)
    check(st == 404 and r.json()["reason"] == "lease_not_found", "PUT unknown lease: %r" % r)
    st, js = jreq(n, "POST", "/txn", {"success": [
        {"request_put": {"key": "bad/a", "value": "1"}},
        {"request_put": {"key": "bad/b", "value": "2", "lease": 77}}]})
    check(st == 404 and js["reason"] == "lease_not_found", "txn unknown lease: %s %s" % (st, js))
    st, js = jreq(n, "PUT", "/lease")
    check(st == 405, "PUT /lease: %s" % st)
    check(revision(n) == rev, "nothing written: revision %d -> %d" % (rev, revision(n)))
    for k in ("bad/k", "bad/a", "bad/b"):
        check(not exists(n, k), "%s must not exist" % k)
    check(n.healthy(), "node still healthy")
