"""Snapshots (README.md, Snapshots): with --snapshot-count 50, a node that was
down while 600 keys were written catches up (by snapshot or by log) and
serves every value; snapshot files appear under <data-dir>/snap/."""

import glob
import os
import re

from harness import check, wait_for


def _snap_files(node):
    return glob.glob(os.path.join(node.data_dir, "snap", "snap-*.db"))


def test_lagging_node_catches_up_after_compaction(env):
    nodes = env.cluster(3, extra=["--snapshot-count", "50"])
    n1, n2, n3 = nodes
    check(n3.stop() == 0, "node 3 SIGTERM exit code")
    env.put_retry(n1, "warmup", "w")
    for i in range(600):
        writer = (n1, n2)[i % 2]
        check(writer.put("snap-%03d" % i, "value-%d" % i) == 204, "PUT snap-%03d" % i)
    wait_for(lambda: _snap_files(n1) and _snap_files(n2), 10,
             "snapshot files under snap/ on nodes 1 and 2")
    n3.restart()
    env.wait_healthy([n3])
    for i in range(600):
        st, body = n3.get("snap-%03d" % i)
        check((st, body) == (200, ("value-%d" % i).encode()),
              "snap-%03d on node 3: %s %r" % (i, st, body))
    check(_snap_files(n3), "node 3 has a snapshot file under %s/snap" % n3.data_dir)
    applied = n3.status().get("raft_applied_index", 0)
    check(applied >= 600, "node 3 raft_applied_index %s < 600" % applied)


def test_restart_from_snapshot(env):
    (n,) = env.cluster(1, extra=["--snapshot-count", "50"])
    for i in range(230):
        check(n.put("r-%03d" % i, "v%d" % i) == 204, "PUT r-%03d" % i)
    wait_for(lambda: _snap_files(n), 10, "a snapshot file")
    n.kill()
    n.restart()
    env.wait_healthy([n])
    for i in range(230):
        check(n.get("r-%03d" % i) == (200, ("v%d" % i).encode()), "r-%03d after restart" % i)


def _compactions(node):
    """(snapshot index, compacted-to) of each snapshot the node's log names."""
    out = []
    for line in node.log_text().splitlines():
        m = re.search(r"snapshot at index (\d+), log compacted to (\d+)", line)
        if m:
            out.append((int(m.group(1)), int(m.group(2))))
    return out


def test_big_values_bring_a_snapshot_before_the_count(env):
    """With the default --snapshot-count (100 000), 72 values of 1 MiB
    bring a snapshot anyway: past 64 MiB of applied entries (or kv.db's
    size, if larger) one is due, since the core keeps its log in memory and
    raft.db keeps it on disk (100 000 entries of 1 MiB would be 100 GB of
    each). The tail kept for slow followers holds at most 16 MiB, so a
    member that was down gets the leader's snapshot, and serves every
    value. Before, no snapshot came and the whole log stayed."""
    nodes = env.cluster(3)
    n1, n2, n3 = nodes
    check(n3.stop() == 0, "node 3 SIGTERM exit code")
    value = b"v" * (1 << 20)
    for i in range(72):
        env.put_retry((n1, n2)[i % 2], "big-%02d" % i, value)
    for n in (n1, n2):
        wait_for(lambda: _compactions(n), 30, "%s to take a snapshot" % n)
        index, to = _compactions(n)[0]
        check(index < 100000 and index - to <= 16,
              "%s: snapshot at %d, compacted to %d: a tail over 16 MiB" % (n, index, to))
    n3.restart()
    env.wait_healthy([n3])
    wait_for(lambda: "installed snapshot" in n3.log_text(), 60, "node 3 to install a snapshot")
    for i in range(72):
        wait_for(lambda: n3.request("GET", "/kv/big-%02d?serializable=true&raw=true" % i,
                                    timeout=30).body == value, 30, "big-%02d on node 3" % i)
