"""Snapshots (README.md, Snapshots): with --snapshot-count 50, a node that was
down while 600 keys were written catches up (by snapshot or by log) and
serves every value; snapshot files appear under <data-dir>/snap/."""

import glob
import os

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
