"""Alarms (docs/API.md, Maintenance): kv.db past --quota-bytes raises NOSPACE
cluster-wide — writes that add data get 507, reads, deletes and compaction
still work, /health names the alarm, and a disarm brings writes back; a
value whose bytes were flipped on disk is never served (503 corrupt, or a
watch stream's last line canceled as corrupt) and raises CORRUPT naming its
member."""

import base64
import json
import sqlite3

from harness import check, wait_for


def _alarms(node):
    r = node.request("GET", "/maintenance/alarms")
    check(r.status == 200, "GET /maintenance/alarms on %s: %r" % (node, r))
    return sorted((a["member_id"], a["alarm"]) for a in r.json()["alarms"])


def _fill_until_nospace(leader):
    """Writes 4 KiB values until a write is refused with 507; returns the
    keys acknowledged."""
    acked = []
    for i in range(2000):
        r = leader.request("PUT", "/kv/fill-%04d" % i, b"x" * 4096)
        if r.status == 507:
            check(r.json()["reason"] == "no_space", "507 says no_space: %r" % r)
            return acked
        check(r.status == 200, "fill write %d: %r" % (i, r))
        acked.append("fill-%04d" % i)
    raise AssertionError("2000 writes never met the quota")


def test_quota_raises_nospace_and_disarm_brings_writes_back(env):
    nodes = env.cluster(3, extra=["--quota-bytes", "600000"])
    leader = env.leader()
    check(_alarms(leader) == [], "no alarm at start")
    # The alarm is raised within a second of kv.db passing the quota; until
    # then writes still succeed, so fill until one is refused.
    acked = _fill_until_nospace(leader)
    for n in nodes:
        wait_for(lambda n=n: any(a == "NOSPACE" for _, a in _alarms(n)),
                 what="NOSPACE on %s" % n)
        r = n.request("GET", "/health")
        check(r.status == 503 and r.json().get("alarm") == "NOSPACE", "%s /health: %r" % (n, r))
        check(n.put("more", "x") == 507, "%s refuses a raftexample PUT" % n)
        check(n.request("PUT", "/kv/more", b"x").status == 507, "%s refuses a PUT /kv" % n)
        r = n.request("POST", "/txn", json.dumps(
            {"success": [{"request_put": {"key": "t", "value": "v"}}]}).encode())
        check(r.status == 507, "%s refuses a txn with a put: %r" % (n, r))
        check(n.get(acked[0]) == (200, b"x" * 4096), "%s still reads" % n)
    r = leader.request("DELETE", "/kv/" + acked[-1])
    check(r.status == 200 and r.json()["deleted"] == 1, "a delete still works: %r" % r)
    r = leader.request("POST", "/lease", json.dumps({"ttl": 30}).encode())
    check(r.status == 507, "a lease grant adds data: %r" % r)
    # Make room for good: restart every node with a larger quota, then disarm.
    for n in nodes:
        n.stop()
        n.args[n.args.index("--quota-bytes") + 1] = str(1 << 30)
        n.restart()
    leader = env.leader()
    r = leader.request("POST", "/maintenance/alarms/disarm", json.dumps({"alarm": "NOSPACE"}).encode())
    check(r.status == 200 and r.json()["alarms"] == [], "disarm answers the alarms left: %r" % r)
    env.wait_healthy(nodes)
    for n in nodes:
        check(_alarms(n) == [], "%s has no alarm after the disarm" % n)
    env.put_retry(leader, "after-disarm", "ok")
    for n in nodes:
        check(n.get("after-disarm") == (200, b"ok"), "%s reads the write after the disarm" % n)


def test_disarm_and_hash_bad_input(env):
    nodes = env.cluster(1)
    n = nodes[0]
    for body in (b"", b"{}", b'{"alarm":"NOPE"}', b'{"alarm":"NOSPACE","x":1}',
                 b'{"alarm":"NOSPACE","member_id":-1}', b"[]"):
        r = n.request("POST", "/maintenance/alarms/disarm", body)
        check(r.status == 400, "disarm %r answered %r" % (body, r))
    check(n.request("GET", "/maintenance/hash?revision=x").status == 400, "bad revision")
    check(n.request("GET", "/maintenance/hash?revision=999999").status == 400, "future revision")
    check(n.request("GET", "/maintenance/hash?nope=1").status == 400, "unknown parameter")
    r = n.request("GET", "/maintenance/hash")
    check(r.status == 200 and {"hash", "revision", "compact_revision"} <= set(r.json()), "%r" % r)


def _flip_value(data_dir, key):
    db = sqlite3.connect(data_dir + "/kv.db")
    try:
        (val,) = db.execute("SELECT value FROM kv_cur WHERE key = ?", (key.encode(),)).fetchone()
        bad = bytes(b ^ 0x20 for b in val)
        db.execute("UPDATE kv_cur SET value = ? WHERE key = ?", (bad, key.encode()))
        db.execute("UPDATE kv_hist SET value = ? WHERE key = ?", (bad, key.encode()))
        db.commit()
    finally:
        db.close()
    return bad


def test_flipped_value_never_served_and_raises_corrupt(env):
    nodes = env.cluster(3)
    leader = env.leader()
    victim = next(n for n in nodes if n is not leader)
    check(leader.request("PUT", "/kv/precious", b"the-real-value").status == 200, "write")
    wait_for(lambda: victim.request("GET", "/kv/precious?serializable=true").status == 200,
             what="the victim has the key")
    check(victim.stop() == 0, "clean stop")
    bad = _flip_value(victim.data_dir, "precious")
    victim.restart()
    env.wait_healthy([n for n in nodes if n is not victim])
    wait_for(lambda: victim.request("GET", "/status").status == 200, what="victim serving")
    for path in ("/kv/precious", "/kv/precious?serializable=true", "/precious",
                 "/kv/p?prefix=true"):
        r = victim.request("GET", path)
        check(bad not in r.body, "%s served the flipped bytes" % path)
        check(r.status == 503 and r.json()["reason"] == "corrupt", "%s on %s: %r" % (path, victim, r))
    # The watches reading that revision from history: the long-poll answers
    # the same; a stream (native or etcd's) ends with a canceled line
    # saying why, where it used to stall without a word.
    r = victim.request("GET", "/watch/precious?start_revision=1&timeout=1")
    check(bad not in r.body and r.status == 503 and r.json()["reason"] == "corrupt",
          "a long-poll watch from revision 1: %r" % r)
    r = victim.request("GET", "/watch/precious?start_revision=1&stream=true")
    last = json.loads(r.body.splitlines()[-1])
    check(bad not in r.body and r.status == 200 and last.get("canceled") is True and
          last.get("reason") == "corrupt", "a watch stream from revision 1: %r" % r)
    r = victim.request("POST", "/v3/watch", json.dumps({"create_request": {
        "key": base64.b64encode(b"precious").decode(), "start_revision": "1"}}))
    last = json.loads(r.body.splitlines()[-1])["result"]
    check(bad not in r.body and base64.b64encode(bad) not in r.body and last.get("canceled") and
          last.get("cancel_reason") == "etcdserver: corrupt cluster",
          "the gateway's watch from revision 1: %r" % r)
    # The victim knows at once, before its alarm has gone through Raft.
    r = victim.request("GET", "/health")
    check(r.status == 503 and r.json().get("alarm") == "CORRUPT", "/health names CORRUPT: %r" % r)
    wait_for(lambda: (victim.id, "CORRUPT") in _alarms(leader), what="CORRUPT raised for the victim")
    wait_for(lambda: (victim.id, "CORRUPT") in _alarms(victim), what="the victim applies CORRUPT")
    for n in nodes:
        if n is not victim:
            check(n.get("precious") == (200, b"the-real-value"), "%s serves the real value" % n)


def test_leader_compares_replicas_and_names_the_odd_one(env):
    """Nothing reads the damaged key: only the leader's comparison of the
    members' hashes (--corrupt-check-ms) can find it."""
    nodes = env.cluster(3, extra=["--corrupt-check-ms", "300"])
    leader = env.leader()
    victim = next(n for n in nodes if n is not leader)
    check(leader.request("PUT", "/kv/quiet", b"original-bytes").status == 200, "write")
    for n in nodes:  # every member, not only the victim, hashes that revision
        wait_for(lambda n=n: n.request("GET", "/kv/quiet?serializable=true").status == 200,
                 what="%s has the key" % n)
    hashes = set()
    for n in nodes:
        r = n.peer_request("GET", "/raft/hash?revision=%d" % leader.status()["revision"])
        check(r.status == 200, "GET /raft/hash on %s: %r" % (n, r))
        hashes.add(r.json()["hash"])
    check(len(hashes) == 1, "replicas agree before the damage: %r" % hashes)
    check(_alarms(leader) == [], "no alarm while they agree")
    check(victim.stop() == 0, "clean stop")
    _flip_value(victim.data_dir, "quiet")
    victim.restart()
    wait_for(lambda: (victim.id, "CORRUPT") in _alarms(leader), what="CORRUPT for the victim")
    line = "corruption check: member %d differs" % victim.id
    check(any(line in n.log_text() for n in nodes if n is not victim),
          "a leader's log names member %d" % victim.id)
    r = victim.peer_request("GET", "/raft/hash")
    check(r.status == 503 and r.json()["reason"] == "corrupt", "the victim's hash: %r" % r)
