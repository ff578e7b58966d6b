"""Compaction and revision durability on real processes (docs/API.md
section 4, README durability): history below the compact revision is gone on every
node (410 with compact_revision) while latest values and the compact
revision itself stay readable; compaction and every key's revisions
survive kill -9 + restart and reach a node through a snapshot install.
Must never trust one node: every check is made on each node's own state
(serializable reads after a linearizable barrier)."""

from harness import check, wait_for
from kvclient import (call, check_error, check_same_state, compact, get, one, put, rev_of,
                      revision, txn)


def _history(node, key, n):
    """Writes key n times; returns the revision of each write."""
    return [rev_of(put(node, key, "%s-%d" % (key, i))) for i in range(n)]


def _check_compacted(node, key, old_rev, compact_rev, latest):
    """On node's local state: old_rev is gone (410 naming compact_rev), the
    compact revision itself still reads, the latest value is intact."""
    revision(node)  # barrier: the node has applied the compaction
    gone = get(node, key, expect=410, rev=old_rev, serializable=True)
    check_error(gone, "compacted", "compact")
    check(gone.get("compact_revision") == compact_rev,
          "%s: 410 names compact_revision %r, want %d" % (node, gone.get("compact_revision"),
                                                          compact_rev))
    at = one(get(node, key, rev=compact_rev, serializable=True))
    check(at["mod_revision"] <= compact_rev, "%s: read at the compact revision: %r" % (node, at))
    now = one(get(node, key, serializable=True))
    check(now["value"] == latest, "%s: latest %s is %r, want %r" % (node, key, now, latest))
    st = node.status()
    check(st["compact_revision"] == compact_rev,
          "%s: /status compact_revision %r, want %d" % (node, st["compact_revision"], compact_rev))


def test_compaction_drops_history_on_every_node(env):
    nodes = env.cluster(3)
    n1, n2, n3 = nodes
    revs = _history(n1, "h", 10)
    doomed = rev_of(put(n2, "doomed", "x"))
    call(n3, "DELETE", "/kv/doomed")
    put(n3, "after", "y")
    target = revs[6]
    for i, r in enumerate(revs[:7]):  # every history entry below: old values visible
        check(one(get(n2, "h", rev=r))["value"] == "h-%d" % i, "h at %d before compaction" % r)
    before = revision(n1)
    doc = compact(n2, target)
    check(rev_of(doc) == before, "compaction does not write a revision: %r" % doc)
    for n in nodes:
        _check_compacted(n, "h", revs[0], target, "h-9")
        _check_compacted(n, "h", revs[5], target, "h-9")
        check(one(get(n, "h", rev=target, serializable=True))["value"] == "h-6",
              "%s: value at the compact revision" % n)
        check(one(get(n, "h", rev=revs[8], serializable=True))["value"] == "h-8",
              "%s: history above the compact revision stays" % n)
        # a key deleted after the compact revision: still visible there
        check(one(get(n, "doomed", rev=doomed, serializable=True))["value"] == "x",
              "%s: doomed at its revision (above compaction)" % n)
        get(n, "doomed", expect=404, serializable=True)
    # Compacting again below (or at) the compact revision is 410, in the future 400.
    again = compact(n3, revs[2], expect=410)
    check(again.get("compact_revision") == target, "compact below: %r" % again)
    check_error(compact(n1, before + 100, expect=400), "future_revision", "revision")
    # A txn reading a compacted revision is refused whole: its put is not written.
    doc = txn(n1, {"success": [{"request_put": {"key": "txn-put", "value": "v"}},
                               {"request_range": {"key": "h", "revision": revs[1]}}]}, expect=410)
    check(doc.get("compact_revision") == target, "txn at a compacted rev: %r" % doc)
    for n in nodes:
        get(n, "txn-put", expect=404)
        check(revision(n) == before, "%s: revision moved after refused requests" % n)
    for bad, reason, name in [('{"revision":"5"}', "invalid_argument", "revision"),
                              ('{"revision":0}', "invalid_argument", "revision"),
                              ('{"rev":5}', "invalid_argument", "body"),
                              ('{"revision":5,"x":1}', "invalid_argument", "body"),
                              ("nope", "invalid_json", "body")]:
        check_error(call(n2, "POST", "/compact", bad, expect=400), reason, name)
    # Compacting up to the current revision keeps every latest value.
    compact(n1, before)
    state = check_same_state(nodes, "after compacting to the current revision")
    check(state[2] == {b"h": b"h-9", b"after": b"y"}, "latest values: %r" % state[2])


def test_compaction_survives_kill9_restart(env):
    nodes = env.cluster(3)
    n1, n2, n3 = nodes
    revs = _history(n2, "k", 6)
    for i in range(5):
        put(nodes[i % 3], "other/%d" % i, "o%d" % i)
    compact(n3, revs[4])
    before = check_same_state(nodes, "before the crash")
    for n in nodes:
        n.kill()
    for n in nodes:
        n.restart()
    env.wait_healthy(nodes)
    after = check_same_state(nodes, "after kill -9 of every node")
    check(after == before, "state changed across the crash:\n%r\n%r" % (before, after))
    for n in nodes:
        _check_compacted(n, "k", revs[3], revs[4], "k-5")
    # The cluster keeps counting from where it was.
    check(rev_of(put(n1, "k", "k-6")) == before[0] + 1, "first write after restart")


def _snap_installed(node):
    return "installed snapshot" in node.log_text()


def test_snapshot_install_carries_compaction_and_revisions(env):
    nodes = env.cluster(3, extra=["--snapshot-count", "50"])
    n1, n2, n3 = nodes
    revs = _history(n1, "s", 5)
    check(n3.stop() == 0, "node 3 SIGTERM exit code")
    env.put_retry(n1, "warmup", "w")
    for i in range(120):
        put((n1, n2)[i % 2], "bulk/%03d" % i, "b%d" % i)
    more = _history(n2, "s", 3)
    compact(n1, more[0])
    for i in range(120, 240):  # so the leader's latest snapshot includes the compaction
        put((n1, n2)[i % 2], "bulk/%03d" % i, "b%d" % i)
    before = check_same_state([n1, n2], "before node 3 returns")
    n3.restart()
    env.wait_healthy([n3])
    wait_for(lambda: n3.status()["revision"] == before[0], 30,
             "node 3 to catch up to revision %d" % before[0])
    check(_snap_installed(n3), "node 3 caught up without installing a snapshot (log:\n%s)"
          % n3.log_text()[-2000:])
    check(check_same_state(nodes, "after node 3's snapshot catch-up") == before,
          "the snapshot changed the state")
    # A plain restart (SIGTERM) of a follower: revisions must not move either.
    follower = next(n for n in (n2, n1) if n is not env.leader())
    check(follower.stop() == 0, "%s SIGTERM exit code" % follower)
    follower.restart()
    env.wait_healthy([follower])
    check(check_same_state(nodes, "after restarting %s" % follower) == before,
          "%s's state changed across a restart" % follower)
    statuses = [(n.status()["revision"], n.status()["compact_revision"]) for n in nodes]
    check(statuses == [(before[0], more[0])] * 3, "/status (revision, compact_revision): %r"
          % statuses)
    _check_compacted(n3, "s", revs[4], more[0], "s-2")
    check(one(get(n3, "s", rev=more[1], serializable=True))["value"] == "s-1",
          "history above the compact revision reached node 3")
