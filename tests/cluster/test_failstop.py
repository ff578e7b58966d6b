"""Hostile peers and failing nodes (README.md, Exit status): forged peer
messages that once took a cluster down or were committed change nothing; a
follower started on a rolled-back copy of its data dir stops with exit 5
and says so; an internal apply error (a failpoint) stops the node with exit
4 before it answers, and the restart converges to the others' state; a
client request that finds no memory is answered 500 and the node goes on."""

import json
import os
import shutil

import peerwire
from harness import check, http_connection, wait_for

MAX_U64 = (1 << 64) - 1
BOUND = 1 << 63


def _raft_index(node):
    return node.status()["raft_index"]


def _term(node):
    return node.status()["raft_term"]


def test_forged_max_term_heartbeat_keeps_the_cluster(env):
    """One 116-byte POST from non-member 99 used to stop all three nodes for
    good: its term (2^64-1) was persisted and the next election wrapped."""
    nodes = env.cluster(3)
    leader = env.leader()
    term = _term(leader)
    for n in nodes:
        r = peerwire.send(n, [peerwire.message(peerwire.HEARTBEAT, 99, n.id, MAX_U64, commit=5)])
        check(r.status == 400, "%s took a heartbeat of term 2^64-1: %r" % (n, r))
        # Well formed (below 2^63), but not from a member: decoded, then refused.
        r = peerwire.send(n, [peerwire.message(peerwire.HEARTBEAT, 99, n.id, BOUND - 1)])
        check(r.status in (200, 204), "%s: %r" % (n, r))
    env.put_retry(leader, "after-forged-hb", "ok")
    for n in nodes:
        check(n.get("after-forged-hb") == (200, b"ok"), "%s reads after the forgery" % n)
        check(_term(n) < 1000, "%s term went to %d" % (n, _term(n)))
        check(n.alive(), "%s died" % n)
    # Nothing the forgeries said moved a term: any change since is the
    # cluster's own election, a few terms at most.
    check(all(_term(n) < term + 10 for n in nodes), "terms moved after refused forgeries")


def test_forged_prop_and_append_from_non_member_change_nothing(env):
    nodes = env.cluster(3)
    leader = env.leader()
    follower = next(n for n in nodes if n is not leader)
    before = _raft_index(leader)
    prop = peerwire.message(peerwire.PROP, 99, leader.id, 0,
                            entries=[peerwire.entry(0, 0, b"forged-proposal")])
    r = peerwire.send(leader, [prop])
    check(r.status in (200, 204), "PROP decoded: %r" % r)
    st = follower.status()
    term, last = st["raft_term"], st["raft_index"]
    app = peerwire.message(peerwire.APPEND, 99, follower.id, term, log_term=term, index=last,
                           commit=last + 1,
                           entries=[peerwire.entry(term, last + 1, b"forged-append")])
    r = peerwire.send(follower, [app])
    check(r.status in (200, 204), "APPEND decoded: %r" % r)
    # One real write: the log grows by exactly that one entry everywhere,
    # so neither forgery was appended, committed or applied.
    check(leader.put("real-key", "real") == 204, "real write")
    for n in nodes:
        wait_for(lambda n=n: _raft_index(n) >= before + 1, what="%s to apply the write" % n)
        check(_raft_index(n) == before + 1,
              "%s raft_index %d, want %d: a forgery got in" % (n, _raft_index(n), before + 1))
        check(n.get("real-key") == (200, b"real"), "%s serves the real write" % n)


def test_rolled_back_follower_stops_with_exit_5(env):
    nodes = env.cluster(3)
    leader = env.leader()
    follower = next(n for n in nodes if n is not leader)
    check(leader.put("rb-0", "v") == 204, "first write")
    wait_for(lambda: follower.get("rb-0", timeout=5) == (200, b"v"), what="follower has rb-0")
    check(follower.stop() == 0, "clean stop exits 0")
    old = follower.data_dir + ".old"
    shutil.copytree(follower.data_dir, old)
    follower.restart()
    for i in range(1, 30):
        check(leader.put("rb-%d" % i, "v") == 204, "write %d" % i)
    wait_for(lambda: follower.get("rb-29", timeout=5) == (200, b"v"), what="follower caught up")
    check(follower.stop() == 0, "clean stop exits 0")
    shutil.rmtree(follower.data_dir)
    os.rename(old, follower.data_dir)
    follower.restart()
    code = follower.wait_exit(30)
    check(code == 5, "rolled-back follower exit code %r, want 5" % code)
    check("raft log corrupted, truncated or lost" in follower.log_text(),
          "the log says why %s stopped" % follower)
    check(leader.put("rb-after", "v") == 204, "the cluster goes on")


def test_apply_error_stops_node_and_restart_converges(env):
    nodes = env.cluster(3)
    victim = nodes[2]
    victim.restart_with_failpoints("kv.apply=EIO@3")
    leader = nodes[0]  # writes go through a node that stays up; any leader is fine
    for i in range(10):
        env.put_retry(leader, "ap-%d" % i, "v%d" % i)
    victim.expect_stop(4, "kv: cannot apply entry")
    victim.restart()
    env.wait_healthy(nodes)
    for i in range(10):
        check(victim.get("ap-%d" % i) == (200, ("v%d" % i).encode()), "ap-%d on %s" % (i, victim))
    revs = {n.id: n.status()["revision"] for n in nodes}
    check(len(set(revs.values())) == 1, "revisions differ after the restart: %r" % revs)
    rev = revs[victim.id]
    hashes = {n.id: n.request("GET", "/maintenance/hash?revision=%d" % rev).json()["hash"]
              for n in nodes}
    check(len(set(hashes.values())) == 1, "hashes differ after the restart: %r" % hashes)


def test_membership_change_it_cannot_follow_stops_node(env):
    """A member that cannot follow an applied membership change (failpoint
    conf.apply, standing for running out of memory adding the new peer to
    the transport) stops with exit 4 rather than never sending to the new
    member. Restarted, it applies the change again and lists the member."""
    nodes = env.cluster(3)
    victim = next(n for n in nodes if n is not env.leader(nodes))
    victim.restart_with_failpoints("conf.apply=ENOMEM")
    env.wait_healthy([victim])
    leader = env.leader(nodes)
    if leader is victim:  # the change must commit on a member that can follow it
        other = next(n for n in nodes if n is not victim)
        r = victim.request("POST", "/maintenance/move-leader", '{"to": %d}' % other.id)
        check(r.status == 200, "move leadership off %s: %r" % (victim, r))
        leader = other
    new = env.new_node()
    r = leader.request("POST", "/members",
                       '{"peer_urls":["%s"],"is_learner":true}' % new.peer_url)
    check(r.status == 201, "add a learner: %r" % r)
    victim.expect_stop(4, "cannot follow an applied membership change")
    victim.restart()
    env.wait_healthy([victim])
    wait_for(lambda: new.id in [m["id"] for m in
                                victim.request("GET", "/members?serializable=true")
                                .json()["members"]],
             30, "%s to list the new member after its restart" % victim)


def test_snapshot_whose_members_cannot_be_read_back_stops_node(env):
    """A follower that installs a leader's snapshot and cannot read back
    from it the removed ids (failpoint removed.load) or the members' peer
    URLs for the transport (peers.sync; each from its second hit: the
    first is at start, where it refuses to start, exit 1) stops with exit 3, instead of going on with a stale
    list (a removed id given out again, a member never dialled). Restarted
    without it, it comes back from the snapshot and serves the values."""
    nodes = env.cluster(3, extra=["--snapshot-count", "50"])
    lead = env.leader(nodes)
    victim = next(n for n in nodes if n is not lead)
    writer = next(n for n in nodes if n is not victim)
    for fp, words in (("removed.load", "reading the removed members"),
                      ("peers.sync", "reading the members")):
        check(victim.stop() == 0, "clean stop")
        # at start (the first hit) the node refuses to start
        victim.env_vars["RAFTKV_FAILPOINTS"] = fp + "=EIO"
        victim.restart()
        code = victim.wait_exit(30)
        check(code == 1, "%s at start: exit code %r, want 1" % (fp, code))
        for i in range(300):
            env.put_retry(writer, "%s-%03d" % (fp, i), "v%d" % i)
        victim.env_vars["RAFTKV_FAILPOINTS"] = fp + "=EIO@2"
        victim.restart()
        code = victim.wait_exit(60)
        check(code == 3, "%s: exit code %r, want 3" % (fp, code))
        check("installing snapshot: " + words in victim.log_text(),
              "%s: the log names the failure" % fp)
        victim.env_vars.clear()
        victim.restart()
        env.wait_healthy([victim])
        wait_for(lambda: victim.get("%s-299" % fp) == (200, b"v299"), 30,
                 "%s to catch up after its restart" % victim)
        for i in (0, 150):
            check(victim.get("%s-%03d" % (fp, i)) == (200, ("v%d" % i).encode()),
                  "%s-%03d on %s" % (fp, i, victim))


def test_snapshot_it_cannot_record_stops_node(env):
    """A follower whose own snapshot cannot be made durable (failpoint
    storage.snapshot: the rename or the directory's fsync failing) stops
    with exit 3 and a log line naming it, where it went on before with its
    Raft core and its storage disagreeing on its snapshot. A full disk
    there (ENOSPC) is not fatal: it warns and goes on serving. Restarted
    without the failpoint, it serves every acknowledged write."""
    nodes = env.cluster(3, extra=["--snapshot-count", "20"])
    lead = env.leader(nodes)
    victim = next(n for n in nodes if n is not lead)
    victim.restart_with_failpoints("storage.snapshot=ENOSPC")
    env.wait_healthy([victim])
    for i in range(40):
        env.put_retry(lead, "full-%02d" % i, "v%d" % i)
    wait_for(lambda: "snapshot at" in victim.log_text() and "not recorded" in victim.log_text(),
             30, "%s to warn that a full disk kept its snapshot" % victim)
    check(victim.alive(), "a full disk at a snapshot does not stop the node")
    wait_for(lambda: victim.get("full-39") == (200, b"v39"), 30,
             "%s to go on applying" % victim)
    # It may stop as soon as it starts: with no snapshot recorded, it takes
    # one on its first applied turn. 10 writes keep the leader short of its
    # next snapshot (every 20 entries), so the leader's log still holds all
    # the victim lacks: with 40, the leader compacted past a victim slow to
    # reconnect and sent it a snapshot, whose install fails on the same
    # failpoint ("installing snapshot", also exit 3) before any adopt.
    victim.restart_with_failpoints("storage.snapshot=EIO")
    for i in range(10):
        env.put_retry(lead, "io-%02d" % i, "v%d" % i)
    victim.expect_stop(3, "adopting a snapshot")
    victim.restart()
    env.wait_healthy([victim])
    wait_for(lambda: victim.get("io-09") == (200, b"v9"), 30, "%s to catch up" % victim)
    for key in ("full-00", "io-00"):
        check(victim.get(key)[0] == 200, "%s on %s after its restart" % (key, victim))


def test_failed_peer_listener_stops_node(env):
    """The node loop runs the peer listener; a run that fails (failpoint
    peer.run, standing for libmicrohttpd's MHD_NO) stops the node with exit
    6 instead of leaving a member that no peer can reach. The others keep
    serving writes."""
    nodes = env.cluster(3)
    victim = nodes[2]
    victim.restart_with_failpoints("peer.run=EIO@50")
    code = victim.wait_exit(30)
    check(code == 6, "peer listener failure exit code %r, want 6" % code)
    check("the peer listener failed" in victim.log_text(), "the log names the failure")
    env.put_retry(nodes[0], "after-listener", "v")
    check(nodes[1].get("after-listener") == (200, b"v"),
          "the other two still commit")


def test_bad_failpoint_spec_is_a_usage_error(env):
    node = env.new_node()
    node.env_vars["RAFTKV_FAILPOINTS"] = "kv.apply=NOPE"
    node.start([node.peer_url])
    check(node.wait_exit(10) == 2, "a bad RAFTKV_FAILPOINTS is exit 2")


def test_raft_db_without_exclusive_locks_refuses_to_start(env):
    """raft.db is opened holding SQLite's locks for good; a node that cannot
    (failpoint storage.lock) refuses to start with exit 1 and says why."""
    node = env.new_node()
    node.env_vars["RAFTKV_FAILPOINTS"] = "storage.lock=EIO"
    node.start([node.peer_url])
    check(node.wait_exit(30) == 1, "exit 1 without exclusive locks")
    check("cannot hold exclusive locks" in node.log_text(), "the log says why")


def test_damaged_log_entry_refuses_to_start(env):
    """Bytes changed inside a log entry's data in raft.db (its checksum
    kept) used to pass the integrity check and be applied and spread."""
    import sqlite3
    nodes = env.cluster(3)
    leader = env.leader()
    follower = next(n for n in nodes if n is not leader)
    for i in range(5):
        check(leader.put("ent-%d" % i, "value-%d" % i) == 204, "write %d" % i)
    wait_for(lambda: follower.get("ent-4", timeout=5) == (200, b"value-4"), what="caught up")
    check(follower.stop() == 0, "clean stop")
    db = sqlite3.connect(os.path.join(follower.data_dir, "raft.db"))
    try:
        idx, data = db.execute("SELECT idx, data FROM entries WHERE length(data) > 8"
                               " ORDER BY idx DESC LIMIT 1").fetchone()
        bad = bytes(data[:-4]) + bytes(b ^ 0x55 for b in data[-4:])
        db.execute("UPDATE entries SET data = ? WHERE idx = ?", (bad, idx))
        db.commit()
    finally:
        db.close()
    follower.restart()
    check(follower.wait_exit(30) == 1, "a damaged raft.db is refused with exit 1")
    log = follower.log_text()
    check("raft.db: entry %d fails its checksum" % idx in log, "the log names raft.db and %d" % idx)
    check(leader.put("ent-after", "x") == 204, "the others go on")


def test_damaged_snapshot_file_refuses_to_start(env):
    nodes = env.cluster(3, extra=["--snapshot-count", "20"])
    leader = env.leader()
    follower = next(n for n in nodes if n is not leader)
    for i in range(60):
        check(leader.put("sn-%d" % i, "v") == 204, "write %d" % i)
    snap_dir = os.path.join(follower.data_dir, "snap")
    wait_for(lambda: any(f.startswith("snap-") for f in os.listdir(snap_dir)),
             what="a snapshot on %s" % follower)
    check(follower.stop() == 0, "clean stop")
    snap = sorted(f for f in os.listdir(snap_dir) if f.startswith("snap-"))[-1]
    path = os.path.join(snap_dir, snap)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    follower.restart()
    check(follower.wait_exit(30) == 1, "a damaged snapshot file is refused with exit 1")
    check(snap in follower.log_text() and "damaged" in follower.log_text(),
          "the log names %s" % snap)


def _write_until_down(node, prefix, n=5000):
    """Sequential writes until the node stops answering (a failpoint that
    fires at its N-th kv.db commit, one per 20 ms of writes, stops it long
    before n); the acknowledged."""
    acked = []
    for i in range(n):
        key = "%s-%d" % (prefix, i)
        try:
            r = node.request("PUT", "/kv/" + key, b"v", timeout=5)
        except OSError:
            break
        if r.status != 200:
            break
        acked.append(key)
    return acked


def test_failed_kv_commit_stops_node_and_keeps_acknowledged_writes(env):
    """A write is answered once applied, before kv.db commits it with the
    next ones (flush.c): a commit that fails (failpoint kv.flush) stops the
    node with exit 3, and the restart applies again from the Raft log every
    write it had answered."""
    node = env.new_node()
    node.env_vars["RAFTKV_FAILPOINTS"] = "kv.flush=EIO@10"
    node.start([node.peer_url])
    env.wait_healthy([node])
    acked = _write_until_down(node, "fl")
    check(node.wait_exit(30) == 3, "a failed kv.db commit is exit 3")
    check("kv: cannot commit applied batches" in node.log_text(), "the log names the commit")
    check(len(acked) >= 5, "only %d writes answered before the failure" % len(acked))
    node.env_vars.clear()
    node.restart()
    env.wait_healthy([node])
    for key in acked:
        check(node.get(key) == (200, b"v"), "%s was answered, then lost" % key)


def test_full_disk_at_kv_commit_keeps_the_node(env):
    """The same commit on a full disk (kv.flush=ENOSPC) does not stop the
    node: what it lost waits to be applied again, writes that add data get
    507, reads are answered, and nothing answered is lost."""
    node = env.new_node()
    node.env_vars["RAFTKV_FAILPOINTS"] = "kv.flush=ENOSPC@10"
    node.start([node.peer_url])
    env.wait_healthy([node])
    acked = _write_until_down(node, "fs")
    check(node.alive(), "the node stopped on a full disk")
    check(len(acked) >= 5, "only %d writes answered before the failure" % len(acked))
    wait_for(lambda: node.request("PUT", "/kv/more", b"x", timeout=8).status == 507,
             timeout=30, what="writes to answer 507")
    r = node.request("GET", "/kv/%s?serializable=true&raw=true" % acked[0])
    check((r.status, r.body) == (200, b"v"), "a serializable read on a full disk: %r" % r)
    check(node.stop() == 0, "clean stop")
    node.env_vars.clear()
    node.restart()
    env.wait_healthy([node])
    for key in acked:
        check(node.get(key) == (200, b"v"), "%s was answered, then lost" % key)


def _oom_answer(resp, what):
    body = resp.read()
    check(resp.status == 500 and json.loads(body) == {"error": "out of memory", "reason": "internal"},
          "%s: %d %r" % (what, resp.status, body))


def test_request_without_memory_is_500_and_the_node_goes_on(env):
    """No memory for a request's context (api.request=ENOMEM, standing for
    a failed allocation): a static 500 is answered, its body is read and
    dropped, the keep-alive connection serves the next request, and the
    member goes on working with its peers; disarmed, it serves again."""
    nodes = env.cluster(3)
    leader = env.leader()
    victim, other = [n for n in nodes if n is not leader]
    victim.restart_with_failpoints("api.request=ENOMEM")

    def listening():
        try:
            return victim.request("GET", "/health", timeout=3).status == 500
        except OSError:
            return False
    wait_for(listening, what="%s to answer" % victim)
    conn = http_connection(victim.port)
    try:
        conn.request("PUT", "/big", body=b"v" * 200000)
        _oom_answer(conn.getresponse(), "a PUT with a 200 kB body")
        conn.request("GET", "/big")
        _oom_answer(conn.getresponse(), "the next request on the same connection")
    finally:
        conn.close()
    # Its peers still count on it: with the other follower stopped, the
    # leader commits only with its acknowledgement.
    check(other.stop() == 0, "clean stop of %s" % other)
    env.put_retry(leader, "while-armed", "v")
    victim.restart_with_failpoints("")
    env.wait_healthy([victim])
    check(victim.get("while-armed") == (200, b"v"), "the write it acknowledged while armed")
    check(victim.get("big")[0] == 404, "the refused PUT wrote nothing")
