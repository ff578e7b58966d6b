"""Dynamic reconfiguration, as in raftexample's README: POST /4 adds a node
that then starts with --join; DELETE /3 removes node 3, which stops itself."""

import glob
import json
import os

from harness import check, free_port, scheme, wait_for


def test_add_node4_then_remove_node3(env):
    n1, n2, n3 = env.cluster(3)
    check(n1.put("my-key", "foo") == 204, "PUT before adding node 4")
    n4 = env.new_node()
    r = n1.request("POST", "/4", n4.peer_url)
    check(r.status == 204, "POST /4 answered %r" % r)
    env.join_node(n4)
    env.wait_healthy([n4])
    st, body = n4.get("my-key")
    check((st, body) == (200, b"foo"), "node 4 serves the old data: %s %r" % (st, body))
    check(n4.put("from-4", "x") == 204, "node 4 accepts writes")
    check(n2.get("from-4") == (200, b"x"), "node 4's write is replicated")

    r = n1.request("DELETE", "/3")
    check(r.status == 204, "DELETE /3 answered %r" % r)
    code = n3.wait_exit(30)
    check(code == 0, "removed node 3 exit code %s" % code)
    # Node 3 may have led: the next write waits out the election.
    env.put_retry(n1, "my-key", "bar")
    for n in (n1, n2, n4):
        st, body = n.get("my-key")
        check((st, body) == (200, b"bar"), "after removing node 3, %s: %s %r" % (n, st, body))
    members = n1.request("GET", "/members")
    check(members.status == 200, "GET /members answered %r" % members)
    check(n3.peer_url not in members.text and n4.peer_url in members.text,
          "members after the change: %s" % members.text)


def test_join_node_survives_restart(env):
    n1, _, _ = env.cluster(3)
    n4 = env.new_node()
    check(n1.request("POST", "/4", n4.peer_url).status == 204, "POST /4")
    env.join_node(n4)
    env.wait_healthy([n4])
    check(n1.put("k", "v") == 204, "PUT with 4 members")
    check(n4.get("k") == (200, b"v"), "node 4 reads")
    n4.kill()
    env.put_retry(n1, "k", "v2")
    n4.restart()
    env.wait_healthy([n4])
    check(n4.get("k") == (200, b"v2"), "restarted joined node reads the new value")


def test_member_unknown_to_a_node_behind_is_503_not_404(env):
    """A node that knows of committed entries it has not applied may not
    have applied the one that added a member: to removing or promoting that
    member it answers 503 (try again), not a 404 its stale view would give:
    the change's read barrier cannot complete on it. The node kept behind
    here is a follower that cannot apply a write on a full disk
    (kv.apply=ENOSPC): it stays up, keeps receiving the log and applies
    nothing from that write on until it has space."""
    nodes = env.cluster(3)
    leader = env.leader()
    behind = next(n for n in nodes if n is not leader)
    behind.restart_with_failpoints("kv.apply=ENOSPC@1")
    env.wait_healthy([behind])
    check(leader.put("before-the-add", "v") == 204, "a write the follower cannot apply")
    url = "%s://127.0.0.1:%d" % (scheme(), free_port())
    r = leader.request("POST", "/members", json.dumps({"peer_urls": [url], "is_learner": True}))
    check(r.status == 201, "add through the leader: %r" % r)
    new_id = r.json()["member"]["id"]

    def lag():
        st = behind.request("GET", "/status").json()
        return st["raft_applied_index"], behind.metric("raftkv_raft_commit_index")
    # it knows the addition committed (the next heartbeat tells it at the
    # latest) and has not applied it
    wait_for(lambda: lag()[1] >= leader.metric("raftkv_raft_commit_index"),
             what="%s to learn the addition's commit" % behind)
    applied, commit = lag()
    check(applied < commit, "%s applied all it knows committed: %d >= %d" % (behind, applied, commit))
    r = behind.request("DELETE", "/members/%d" % new_id)
    check(r.status == 503, "removal on a node behind: %r" % r)
    r = leader.request("DELETE", "/members/%d" % new_id)
    check(r.status == 200, "the leader, up to date, removes it: %r" % r)
    r = leader.request("DELETE", "/members/%d" % new_id)
    check(r.status == 404, "and then does not know it: %r" % r)


def test_member_removed_through_a_follower_that_missed_its_addition(env):
    """A membership change is checked after a read barrier: a follower
    restarted from a log without a member's addition (it was down while
    the addition committed) first catches up to the leader's commit, then
    removes the member — where its own stale view would have said 404."""
    nodes = env.cluster(3)
    leader = env.leader()
    behind = next(n for n in nodes if n is not leader)
    check(behind.stop() == 0, "clean stop")
    url = "%s://127.0.0.1:%d" % (scheme(), free_port())
    r = leader.request("POST", "/members", json.dumps({"peer_urls": [url], "is_learner": True}))
    check(r.status == 201, "add through the leader: %r" % r)
    new_id = r.json()["member"]["id"]
    behind.restart()
    # the first request it can answer, before any leader has told it more
    wait_for(behind.status, what="%s to listen" % behind)
    r = behind.request("DELETE", "/members/%d" % new_id)
    check(r.status == 200, "removal through the follower that missed the addition: %r" % r)
    wait_for(lambda: all(new_id not in [m["id"] for m in
                                        n.request("GET", "/members").json()["members"]]
                         for n in nodes), what="the removal on every member")



def _snapshot_indexes(node):
    names = glob.glob(os.path.join(node.data_dir, "snap", "snap-*.db"))
    return sorted(int(os.path.basename(p)[len("snap-"):len("snap-") + 20]) for p in names)


def test_removed_member_behind_its_own_addition_stops(env):
    """A member restarted from a snapshot older than its own addition does
    not find itself in the conf it applied, so it never campaigns. If it
    was removed while down, no leader sends to it again; it still asks the
    voters it knows with prevotes, their peer listeners answer 410 Gone,
    and it stops (exit 0). Found by the 600 s fault run with seed 36, where
    such a member ran on for good. Node 4 here joins by a snapshot taken
    before its addition, then loses kv.db (the corrupt nemesis's repair),
    so it restarts from that snapshot."""
    nodes = env.cluster(3, extra=["--snapshot-count", "50"])
    leader = env.leader()
    i = 0
    # two snapshots on the leader: its log no longer starts at 1, so a new
    # member is sent the latest snapshot, not the whole log
    while not [x for x in _snapshot_indexes(leader) if x >= 100]:
        check(leader.put("k%d" % i, "v") == 204, "PUT k%d" % i)
        i += 1
        check(i < 1000, "no second snapshot on %s after %d writes" % (leader, i))
    before_add = leader.metric("raftkv_raft_commit_index")
    n4 = env.new_node()
    r = leader.request("POST", "/4", n4.peer_url)
    check(r.status == 204, "POST /4 answered %r" % r)
    env.join_node(n4, extra=["--snapshot-count", "50"])
    env.wait_healthy([n4])
    # healthy is serving, which can come before the leader's snapshot does
    wait_for(lambda: _snapshot_indexes(n4), what="node 4 to install the leader's snapshot")
    snaps = _snapshot_indexes(n4)
    check(snaps[-1] <= before_add,
          "node 4's snapshots %r, its addition came after %d" % (snaps, before_add))
    n4.kill()
    for suffix in ("", "-wal", "-shm"):
        path = os.path.join(n4.data_dir, "kv.db" + suffix)
        if os.path.exists(path):
            os.remove(path)
    r = leader.request("DELETE", "/4")
    check(r.status == 204, "DELETE /4 while it is down answered %r" % r)
    n4.restart()
    code = n4.wait_exit(30)
    check(code == 0, "the removed node 4 exit code %s" % code)
    check("removed from the cluster" in n4.log_text(), "node 4's log says why it stopped")
    env.put_retry(leader, "after", "v")
    check(all(n.get("after") == (200, b"v") for n in nodes), "the three left serve the write")

def test_promote_waits_until_the_learner_caught_up(env):
    """etcd's rule: a learner is promoted only once it has caught up (its
    log holds the change that made the leader's conf and 90 % of the
    committed log). Before, the leader answers 409 learner_not_ready, and
    the gateway etcd's FailedPrecondition, through any member; nothing
    changes."""
    env.cluster(3)
    leader = env.leader()
    n4 = env.new_node()
    r = leader.request("POST", "/members",
                       json.dumps({"peer_urls": [n4.peer_url], "is_learner": True}))
    check(r.status == 201 and r.json()["member"]["id"] == n4.id, "add the learner: %r" % r)
    path = "/members/%d/promote" % n4.id
    r = leader.request("POST", path)
    check(r.status == 409 and r.json()["reason"] == "learner_not_ready",
          "promote a learner that has not started: %r" % r)
    r = leader.request("POST", "/v3/cluster/member/promote", json.dumps({"ID": str(n4.id)}))
    check(r.status == 412 and r.json()["code"] == 9 and "in sync" in r.json()["message"],
          "the gateway's promote: %r" % r)
    # a follower forwards the change; the leader refuses it and tells the
    # follower why, which answers as the leader did, at once
    follower = next(n for n in env.nodes[:3] if n is not leader)
    r = follower.request("POST", path)
    check(r.status == 409 and r.json()["reason"] == "learner_not_ready",
          "promote through a follower (not its 503 timeout): %r" % r)
    r = follower.request("POST", "/v3/cluster/member/promote", json.dumps({"ID": str(n4.id)}))
    check(r.status == 412 and r.json()["code"] == 9, "the gateway's promote on a follower: %r" % r)
    members = leader.request("GET", "/members").json()["members"]
    check([m["is_learner"] for m in members if m["id"] == n4.id] == [True],
          "still a learner: %r" % members)
    env.join_node(n4)
    env.wait_healthy([n4])

    def promoted():
        r = leader.request("POST", path)
        check(r.status in (200, 409), "promote while it catches up: %r" % r)
        return r.status == 200
    wait_for(promoted, what="the promotion of %s once it caught up" % n4)
    wait_for(lambda: n4.status().get("is_learner") is False, what="%s to know it votes" % n4)
    check(n4.put("from-the-promoted", "v") == 204, "the cluster writes with four voters")


def test_add_with_a_members_peer_url_is_refused(env):
    """etcd's rule: a new member may not take a peer URL a member has (two
    ids at one address: the new one could never be reached). 409
    peer_url_exists on the HTTP API, FailedPrecondition on the gateway,
    nothing changes; once the member holding it is removed, the URL can
    be added again."""
    nodes = env.cluster(3)
    leader = env.leader()
    victim = next(n for n in nodes if n is not leader)
    before = leader.request("GET", "/members").json()["members"]
    for url in (victim.peer_url, leader.peer_url):
        r = leader.request("POST", "/members", json.dumps({"peer_urls": [url]}))
        check(r.status == 409 and r.json()["reason"] == "peer_url_exists",
              "add at %s, a member's URL: %r" % (url, r))
    r = leader.request("POST", "/v3/cluster/member/add",
                       json.dumps({"peerURLs": [victim.peer_url], "isLearner": True}))
    check(r.status == 412 and r.json()["code"] == 9 and
          r.json()["message"] == "etcdserver: Peer URLs already exists",
          "the gateway's add: %r" % r)
    after = leader.request("GET", "/members").json()["members"]
    check(after == before, "the members changed: %r -> %r" % (before, after))
    r = leader.request("DELETE", "/members/%d" % victim.id)
    check(r.status == 200, "remove %s: %r" % (victim, r))
    r = leader.request("POST", "/members",
                       json.dumps({"peer_urls": [victim.peer_url], "is_learner": True}))
    check(r.status == 201 and r.json()["member"]["id"] not in [m["id"] for m in before],
          "add at the removed member's URL, as a new id: %r" % r)
