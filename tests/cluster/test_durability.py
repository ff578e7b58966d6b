"""Durability (README.md, Fault tolerance): an acknowledged write survives kill -9
of every node, and of the leader under concurrent load. Every client thread
writes its own keys, so an acknowledged key has exactly one right value."""

import http.client
import threading

from harness import check, wait_for


def _check_all(nodes, acked):
    for n in nodes:
        for key, val in acked.items():
            st, body = n.get(key)
            check((st, body) == (200, val.encode()),
                  "acknowledged %s on %s: %s %r" % (key, n, st, body))


def test_kill9_all_nodes_keeps_acknowledged_writes(env):
    nodes = env.cluster(3)
    acked = {}
    for i in range(200):
        key, val = "dur-%03d" % i, "value-%d" % i
        check(nodes[i % 3].put(key, val) == 204, "PUT %s" % key)
        acked[key] = val
    for n in nodes:
        n.kill()
    for n in nodes:
        n.restart()
    env.wait_healthy(nodes)
    for i, (key, val) in enumerate(acked.items()):
        n = nodes[i % 3]
        st, body = n.get(key)
        check((st, body) == (200, val.encode()), "%s on %s after kill -9: %s %r" % (key, n, st, body))


class _Writer(threading.Thread):
    """Writes t<i>-<seq> through one node until told to stop; records every
    write answered 204. Errors are expected while the leader is down."""

    def __init__(self, i, node, stop):
        super().__init__(daemon=True)
        self.i, self.node, self.stop_event = i, node, stop
        self.acked = {}
        self.errors = 0

    def run(self):
        seq = 0
        while not self.stop_event.is_set():
            key, val = "t%d-%d" % (self.i, seq), "v%d-%d" % (self.i, seq)
            seq += 1
            try:
                if self.node.put(key, val, timeout=5) == 204:
                    self.acked[key] = val
            except (OSError, http.client.HTTPException):
                self.errors += 1
                # Pace retries against a dead node so the spin does not
                # starve the live nodes of CPU.
                self.stop_event.wait(0.05)


def test_kill9_leader_under_concurrent_writes(env):
    nodes = env.cluster(3)
    stop = threading.Event()
    writers = [_Writer(i, nodes[i % 3], stop) for i in range(6)]

    def total():
        return sum(len(w.acked) for w in writers)
    try:
        for w in writers:
            w.start()
        wait_for(lambda: total() >= 100, 30, "100 acknowledged writes")
        leader = env.leader()
        leader.kill()
        at_kill = total()
        wait_for(lambda: total() >= at_kill + 100, 30, "100 more writes after the leader died")
        leader.restart()
        env.wait_healthy([leader])
        at_restart = total()
        wait_for(lambda: total() >= at_restart + 50, 30, "writes after the restart")
    finally:
        stop.set()
        for w in writers:
            w.join(15)
    acked = {}
    for w in writers:
        acked.update(w.acked)
    env.wait_healthy(nodes)
    _check_all(nodes, acked)
