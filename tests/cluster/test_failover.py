"""Failover without a failed write (README.md, Fault tolerance): a leader
stopped with SIGTERM hands leadership over first, so clients writing
through the other members see no error and a new leader within two
election timeouts; a leader killed with SIGKILL costs the clients of the
other members no error either — what they forwarded is proposed again to
the new leader and applied exactly once; POST /maintenance/move-leader
moves leadership on demand.
"""

import json
import signal
import threading
import time

import kvclient
from harness import check, free_port, scheme, wait_for


# run.py --jobs runs these alone: leadership must move within 2 s
SERIAL = {"test_sigterm_leader_hands_over_without_errors"}


def _writers(nodes, key, stop, results):
    """One client per node, each PUTting unique values to `key` in a loop;
    results: (node id, value, status or exception name)."""
    def run(n):
        i = 0
        while not stop.is_set():
            value = "n%d-%d" % (n.id, i)
            try:
                st = n.request("PUT", "/kv/" + key, value, timeout=30).status
            except OSError as e:
                st = type(e).__name__
            results.append((n.id, value, st))
            i += 1
    ts = [threading.Thread(target=run, args=(n,), daemon=True) for n in nodes]
    for t in ts:
        t.start()
    return ts


def _cluster_writing(env, before, what):
    """A 3-node cluster whose two followers each have a writer (_writers)
    that has done `before` writes: (leader, others, threads, stop, results)."""
    nodes = env.cluster(3)
    leader = env.leader()
    others = [n for n in nodes if n is not leader]
    stop, results = threading.Event(), []
    ts = _writers(others, "k", stop, results)
    wait_for(lambda: len(results) >= before, 30, what)
    return leader, others, ts, stop, results


def _writers_end(ts, stop, results, more, timeout, what):
    """Waits for `more` writes beyond those done so far, stops the writers
    and returns the writes that failed."""
    n = len(results)
    wait_for(lambda: len(results) >= n + more, timeout, what)
    stop.set()
    for t in ts:
        t.join(timeout)
    return [r for r in results if r[2] != 200]


def _history(node, key):
    """Every value the key ever had, in revision order (its watch history).
    A watch reads the node's own applied state: a linearizable read first
    brings it up to every write acknowledged by any member."""
    kvclient.revision(node)
    values, start = [], 1
    while True:
        r = node.request("GET", "/watch/%s?start_revision=%d&timeout=0" % (key, start), timeout=30)
        check(r.status == 200, "history: %r" % r)
        js = r.json()
        if not js["events"]:
            return values
        values += [e["kv"]["value"] for e in js["events"] if e.get("type", "PUT") == "PUT"]
        start = js["next_revision"]


def _leader_id(nodes):
    ids = {n.status().get("leader") for n in nodes}
    return ids.pop() if len(ids) == 1 else None


def test_sigterm_leader_hands_over_without_errors(env):
    leader, others, ts, stop, results = _cluster_writing(env, 40, "writes before the stop")
    t0 = time.monotonic()
    leader.proc.send_signal(signal.SIGTERM)
    new = wait_for(lambda: (_leader_id(others) or 0) not in (0, leader.id) and _leader_id(others),
                   10, "a new leader")
    moved = time.monotonic() - t0
    code = leader.wait_exit(30)
    errors = _writers_end(ts, stop, results, 40, 30, "writes after the hand-off")
    print("  leadership moved to node %d in %.2f s; %d writes, %d errors"
          % (new, moved, len(results), len(errors)))
    check(code == 0, "the old leader exits 0 after handing over: %s" % code)
    check(not errors, "writes through members that stayed up failed: %r" % errors[:5])
    check(moved < 2.0, "leadership moved within two election timeouts (%.2f s)" % moved)
    check("handing leadership to node" in leader.log_text(), "the leader said it handed over")


def test_kill9_leader_loses_no_write_and_applies_each_once(env):
    nodes = env.cluster(3)
    leader = env.leader()
    others = [n for n in nodes if n is not leader]
    stop, results = threading.Event(), []
    ts = _writers(others, "log", stop, results)
    wait_for(lambda: len(results) >= 40, 30, "writes before the kill")
    leader.kill()
    errors = _writers_end(ts, stop, results, 60, 60, "writes after the kill")
    acked = [r[1] for r in results if r[2] == 200]
    history = _history(others[0], "log")
    dups = sorted({v for v in history if history.count(v) > 1})
    print("  %d writes through the followers, %d errors; history %d values, %d twice"
          % (len(results), len(errors), len(history), len(dups)))
    check(not errors, "writes failed across the kill: %r" % errors[:5])
    check(not dups, "values applied twice: %r" % dups[:5])
    check(sorted(history) == sorted(acked),
          "the history holds every acknowledged value once and nothing else "
          "(%d in history, %d acknowledged)" % (len(history), len(acked)))


def test_move_leader_on_demand(env):
    nodes = env.cluster(3)
    leader = env.leader()
    target = next(n for n in nodes if n is not leader)
    via = next(n for n in nodes if n is not leader and n is not target)
    r = via.request("POST", "/maintenance/move-leader", json.dumps({"to": target.id}))
    check(r.status == 200 and r.json()["leader"] == target.id, "move-leader: %r" % r)
    wait_for(lambda: _leader_id(nodes) == target.id, 10, "every member to see the new leader")
    check(target.put("after-move", "x") == 204, "the cluster writes after the move")
    # etcd's MoveLeader through the gateway, back to the first leader
    r = via.request("POST", "/v3/maintenance/transfer-leadership",
                    json.dumps({"targetID": str(leader.id)}))
    check(r.status == 200 and "header" in r.json(), "transfer-leadership: %r" % r)
    wait_for(lambda: _leader_id(nodes) == leader.id, 10, "leadership back on the first leader")
    r = via.request("POST", "/v3/maintenance/transfer-leadership", json.dumps({"targetID": "99"}))
    check(r.status == 412 and r.json()["code"] == 9, "a bad transferee: %r" % r)
    r = via.request("POST", "/maintenance/move-leader", json.dumps({"to": 99}))
    check(r.status == 404, "an unknown member: %r" % r)
    r = via.request("POST", "/maintenance/move-leader", json.dumps({"too": 1}))
    check(r.status == 400, "a bad body: %r" % r)


def test_failed_transfer_costs_forwarded_proposals_no_error(env):
    """A leader moving leadership to a member that never answers (paused)
    takes no proposal for an election timeout, then gives the transfer up
    and leads on. What a follower forwarded meanwhile is refused with a
    word ("transferring"), sent again on the follower's next tick and
    applied once the transfer is over: no write, and no membership change,
    waits out its request timeout for a 503."""
    nodes = env.cluster(3)
    leader = env.leader()
    target = next(n for n in nodes if n is not leader)
    via = next(n for n in nodes if n is not leader and n is not target)
    stop, results = threading.Event(), []
    ts = _writers([via], "k", stop, results)
    wait_for(lambda: len(results) >= 20, 30, "writes before the transfer")
    refused0 = via.metric("raftkv_proposals_refused_total")
    moved = {}
    mover = threading.Thread(target=lambda: moved.update(r=leader.request(
        "POST", "/maintenance/move-leader", json.dumps({"to": target.id}), timeout=30)))
    target.proc.send_signal(signal.SIGSTOP)
    try:
        mover.start()
        wait_for(lambda: via.metric("raftkv_proposals_refused_total") > refused0, 10,
                 "the leader to refuse a forwarded write during its transfer")
        url = "%s://127.0.0.1:%d" % (scheme(), free_port())
        added = via.request("POST", "/members",
                            json.dumps({"peer_urls": [url], "is_learner": True}), timeout=30)
        mover.join(30)
        errors = _writers_end(ts, stop, results, 20, 30, "writes after the transfer")
    finally:
        stop.set()
        target.proc.send_signal(signal.SIGCONT)
    print("  move-leader to the paused member: %r; %d writes through a follower, "
          "%d refused and sent again, %d errors"
          % (moved.get("r"), len(results),
             via.metric("raftkv_proposals_refused_total") - refused0, len(errors)))
    check(moved.get("r") is not None and moved["r"].status == 503,
          "the transfer to a paused member fails: %r" % moved.get("r"))
    check(not errors, "writes forwarded during the transfer failed: %r" % errors[:5])
    check(added.status == 201, "a learner added through the follower: %r" % added)
    members = [m["id"] for m in leader.request("GET", "/members").json()["members"]]
    check(added.json()["member"]["id"] in members, "the learner is a member: %r" % members)


def test_leader_removed_through_a_follower_hands_over_first(env):
    """DELETE of the leader asked of a follower: the leader does not remove
    itself (it could step down before the others heard the removal commit,
    tests/raft/FOUND-BUGS.md #6); it hands leadership to the most caught-up
    voter and refuses the change with a word, the follower sends it again
    to the new leader, and the old leader, removed, stops. Writes through
    the followers meanwhile see no error."""
    leader, others, ts, stop, results = _cluster_writing(env, 20, "writes before the removal")
    refused0 = others[0].metric("raftkv_proposals_refused_total")
    r = others[0].request("DELETE", "/%d" % leader.id, timeout=30)
    code = leader.wait_exit(30)
    errors = _writers_end(ts, stop, results, 20, 30, "writes after the removal")
    refused = others[0].metric("raftkv_proposals_refused_total") - refused0
    print("  DELETE /%d through node %d: %r; %d refusal(s) heard, %d writes, %d errors"
          % (leader.id, others[0].id, r, refused, len(results), len(errors)))
    check(r.status == 204, "the removal is done: %r" % r)
    check(code == 0, "the removed leader stops cleanly: %s" % code)
    check(refused >= 1, "the leader refused its own removal and handed over first")
    check(_leader_id(others) in [n.id for n in others], "one of the others leads")
    check(not errors, "writes through the followers failed: %r" % errors[:5])
    members = others[1].request("GET", "/members")
    check(members.status == 200 and leader.peer_url not in members.text,
          "the old leader is no member: %s" % members.text)


def test_leader_removal_passes_over_a_paused_successor(env):
    """DELETE of the leader when the voter it would hand over to (the most
    caught-up; on a tie the first in id order) is paused: that transfer
    lapses after an election timeout, the next retry hands over to the
    other follower, and the removal is done well before the request's
    deadline, instead of a transfer to the paused member on every retry
    and a 503 after 5 s."""
    nodes = env.cluster(3)
    leader = env.leader()
    paused, other = sorted((n for n in nodes if n is not leader), key=lambda n: n.id)
    last = leader.status()["raft_index"]
    wait_for(lambda: all(n.status()["raft_applied_index"] >= last for n in (paused, other)), 10,
             "both followers to hold the whole log (a tie: the first in id order is chosen)")
    paused.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = other.request("DELETE", "/%d" % leader.id, timeout=30)
        took = time.monotonic() - t0
        print("  DELETE /%d through node %d with node %d paused: %r in %.2f s"
              % (leader.id, other.id, paused.id, r, took))
        check(r.status == 204, "the removal is done: %r" % r)
        code = leader.wait_exit(30)
    finally:
        paused.proc.send_signal(signal.SIGCONT)
    check(code == 0, "the removed leader stops cleanly: %s" % code)
    check(took < 4.0, "done within a few election timeouts, not the deadline: %.2f s" % took)
    # two voters are left: with the paused one back, they agree on a leader
    wait_for(lambda: _leader_id([paused, other]) in (paused.id, other.id), 10,
             "the two members left to agree on a leader")
    members = other.request("GET", "/members")
    check(members.status == 200 and leader.peer_url not in members.text,
          "the old leader is no member: %s" % members.text)


def test_idempotency_key_runs_a_write_once(env):
    nodes = env.cluster(3)
    key = {"Idempotency-Key": "order-4711"}
    r1 = nodes[0].request("PUT", "/kv/orders/4711?prev_kv=true", "paid", key)
    check(r1.status == 200, "first: %r" % r1)
    rev = r1.json()["header"]["revision"]
    # the same request again, on every member: the first answer, nothing run
    def body(resp):  # member_id and raft_term say who answered
        js = resp.json()
        return js["header"]["revision"], {k: v for k, v in js.items() if k != "header"}
    for n in nodes:
        r = n.request("PUT", "/kv/orders/4711?prev_kv=true", "paid", key)
        check(r.status == 200 and body(r) == body(r1), "retry on %s: %r vs %r" % (n, r, r1))
    r = nodes[1].request("GET", "/kv/orders/4711")
    check(r.json()["kvs"][0]["version"] == 1 and r.json()["header"]["revision"] == rev,
          "the key was written once: %r" % r)
    # the same key for another request: 422, nothing written
    r = nodes[2].request("PUT", "/kv/orders/4711", "refunded", key)
    check(r.status == 422 and r.json()["reason"] == "idempotency_key_reused", "reuse: %r" % r)
    r = nodes[0].request("DELETE", "/kv/orders/4711", None, key)
    check(r.status == 422, "the same key on another route: %r" % r)
    check(nodes[0].request("GET", "/kv/orders/4711?raw=true").body == b"paid", "unchanged")
    # a txn whose compare fails: the retry gets the same answer even after
    # the compare would hold
    txn = json.dumps({"compare": [{"key": "flag", "target": "VERSION", "result": "EQUAL",
                                   "version": 1}],
                      "success": [{"request_put": {"key": "flagged", "value": "x"}}]})
    tk = {"Idempotency-Key": "txn-1"}
    a = nodes[1].request("POST", "/txn", txn, tk)
    check(a.status == 200 and a.json()["succeeded"] is False, "txn: %r" % a)
    check(nodes[0].request("PUT", "/kv/flag", "1").status == 200, "make the compare hold")
    b = nodes[2].request("POST", "/txn", txn, tk)
    check(b.status == 200 and b.json()["succeeded"] is False, "txn retry: %r" % b)
    check(nodes[0].request("GET", "/kv/flagged").status == 404, "the txn never ran its success")
    # a lease grant retried gets the same lease
    lk = {"Idempotency-Key": "lease-1"}
    g1 = nodes[0].request("POST", "/lease", json.dumps({"ttl": 60}), lk)
    g2 = nodes[1].request("POST", "/lease", json.dumps({"ttl": 60}), lk)
    check(g1.status == 200 and g2.status == 200 and g1.json()["id"] == g2.json()["id"],
          "lease grant retried: %r %r" % (g1, g2))
    check(len(nodes[0].request("GET", "/lease").json()["leases"]) == 1, "one lease granted")
    r = nodes[0].request("PUT", "/kv/x", "y", {"Idempotency-Key": "k" * 200})
    check(r.status == 400, "a key too long: %r" % r)


def test_idempotency_key_on_membership_changes(env):
    nodes = env.cluster(3)
    url = "%s://127.0.0.1:%d" % (scheme(), free_port())
    add = json.dumps({"peer_urls": [url], "is_learner": True})
    key = {"Idempotency-Key": "add-learner-1"}
    a = nodes[0].request("POST", "/members", add, key)
    check(a.status == 201, "add: %r" % a)
    added = a.json()["member"]
    # a retry on every member answers the first add: same id, no new member
    for n in nodes:
        r = n.request("POST", "/members", add, key)
        check(r.status == 201 and r.json()["member"] == added, "retry on %s: %r vs %r" % (n, r, a))
    members = nodes[2].request("GET", "/members").json()["members"]
    check(len(members) == 4, "one member added: %r" % members)
    other = json.dumps({"peer_urls": ["%s://127.0.0.1:%d" % (scheme(), free_port())]})
    r = nodes[1].request("POST", "/members", other, key)
    check(r.status == 422 and r.json()["reason"] == "idempotency_key_reused", "reuse: %r" % r)
    # removal: the retry gets the first answer, not 404
    rk = {"Idempotency-Key": "remove-%d" % added["id"]}
    path = "/members/%d" % added["id"]
    r1 = nodes[1].request("DELETE", path, None, rk)
    check(r1.status == 200, "remove: %r" % r1)
    for n in nodes:
        r = n.request("DELETE", path, None, rk)
        check(r.status == 200, "remove retried on %s: %r" % (n, r))
    check(nodes[0].request("DELETE", path).status == 404, "without the key it is gone: 404")
    # raftexample's routes alike: POST /{id} with a URL, DELETE /{id}
    rid = added["id"] + 1
    rurl = "%s://127.0.0.1:%d" % (scheme(), free_port())
    for n in nodes:
        r = n.request("POST", "/%d" % rid, rurl, {"Idempotency-Key": "raft-add"})
        check(r.status == 204, "raftexample add on %s: %r" % (n, r))
    for n in nodes:
        r = n.request("DELETE", "/%d" % rid, None, {"Idempotency-Key": "raft-remove"})
        check(r.status == 204, "raftexample remove on %s: %r" % (n, r))
    members = nodes[0].request("GET", "/members").json()["members"]
    check(sorted(m["id"] for m in members) == [n.id for n in nodes], "back to three: %r" % members)
    r = nodes[0].request("DELETE", "/%d" % rid, None, {"Idempotency-Key": "add-learner-1"})
    check(r.status == 422, "a member change's key on another change: %r" % r)
