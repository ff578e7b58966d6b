"""Fault tolerance, as in raftexample's README: a stopped node does not stop
the cluster, and a restarted node catches up. Must not retry reads: once a
node answers /health, its reads are linearizable."""

from harness import check


def test_stop_node_write_read_restart(env):
    n1, n2, n3 = env.cluster(3)
    check(n1.put("my-key", "foo") == 204, "PUT foo")
    code = n2.stop()
    check(code == 0, "node 2 SIGTERM exit code %d" % code)
    # Node 2 may have been the leader: the write waits out the election.
    env.put_retry(n1, "my-key", "bar")
    st, body = n3.get("my-key")
    check((st, body) == (200, b"bar"), "GET on node 3 while node 2 is down: %s %r" % (st, body))
    n2.restart()
    env.wait_healthy([n2])
    st, body = n2.get("my-key")
    check((st, body) == (200, b"bar"), "GET on restarted node 2: %s %r" % (st, body))


def test_leader_crash_and_rejoin(env):
    nodes = env.cluster(3)
    leader = env.leader()
    others = [n for n in nodes if n is not leader]
    check(others[0].put("before", "1") == 204, "PUT before the crash")
    leader.kill()
    env.put_retry(others[0], "after", "2")
    new_leader = env.leader(others)
    check(new_leader is not leader, "a live node must lead")
    check(others[1].get("after") == (200, b"2"), "survivor reads the new write")
    leader.restart()
    env.wait_healthy([leader])
    for key, val in (("before", b"1"), ("after", b"2")):
        st, body = leader.get(key)
        check((st, body) == (200, val), "old leader after restart, %s: %s %r" % (key, st, body))
