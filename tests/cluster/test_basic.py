"""Basic reads and writes: raftexample's README on one node and on three.
Owns no helpers; must not retry reads (they are linearizable)."""

import signal
import threading

from harness import check, wait_for


def test_single_node_put_get(env):
    (n,) = env.cluster(1)
    check(n.put("my-key", "hello") == 204, "PUT must answer 204")
    st, body = n.get("my-key")
    check((st, body) == (200, b"hello"), "GET my-key: %s %r" % (st, body))
    st, _ = n.get("missing-key")
    check(st == 404, "GET of a missing key must be 404, got %s" % st)
    check(n.put("my-key", "world") == 204, "overwrite must answer 204")
    st, body = n.get("my-key")
    check((st, body) == (200, b"world"), "after overwrite: %s %r" % (st, body))


def test_single_node_binary_and_empty_values(env):
    (n,) = env.cluster(1)
    value = bytes(range(256)) * 4
    check(n.put("bin", value) == 204, "PUT of binary bytes")
    check(n.get("bin") == (200, value), "binary value must round-trip exactly")
    check(n.put("empty", b"") == 204, "PUT of an empty value")
    check(n.get("empty") == (200, b""), "empty value must read back empty")
    check(n.put("a%20b", "spaced") == 204, "PUT of a percent-encoded key")
    check(n.get("a%20b") == (200, b"spaced"), "percent-encoded key reads back")


def test_root_and_kv_paths_name_same_key(env):
    (n,) = env.cluster(1)
    check(n.put("shared", "v1") == 204, "PUT /shared")
    r = n.request("GET", "/kv/shared?raw=true")
    check((r.status, r.body) == (200, b"v1"),
          "GET /kv/shared?raw=true must read the root key: %r" % r)


def test_three_nodes_linearizable_read(env):
    nodes = env.cluster(3)
    n1, n2, n3 = nodes
    for i in range(10):
        key, val = "key-%d" % i, "value-%d" % i
        writer = nodes[i % 3]
        check(writer.put(key, val) == 204, "PUT %s on %s" % (key, writer))
        # Right after the 204, with no sleep and no retry, every node must
        # see the write: reads go through ReadIndex.
        for reader in nodes:
            st, body = reader.get(key)
            check((st, body) == (200, val.encode()),
                  "GET %s on %s right after PUT on %s: %s %r"
                  % (key, reader, writer, st, body))
    check(n2.put("my-key", "bar") == 204, "overwrite via node 2")
    check(n1.get("my-key") == (200, b"bar") and n3.get("my-key") == (200, b"bar"),
          "overwrite visible on nodes 1 and 3")


def test_reads_waiting_together_share_one_round(env):
    # A long election timeout: the followers are stopped below for as long
    # as it takes 16 reads to reach the leader, which must not step down
    # or ask its round again meanwhile.
    nodes = env.cluster(3, extra=["--election-ms", "6000"])
    leader = env.leader(nodes)
    check(leader.put("shared-read", "v") == 204, "PUT shared-read")
    followers = [x for x in nodes if x is not leader]
    reads0 = leader.metric("raftkv_reads_total")
    rounds0 = leader.metric("raftkv_read_rounds_total")
    answers = []

    def read():
        answers.append(leader.get("shared-read", timeout=30))
    threads = [threading.Thread(target=read) for _ in range(16)]
    for f in followers:
        f.proc.send_signal(signal.SIGSTOP)
    try:
        for t in threads:
            t.start()
        # No quorum: the first round cannot be answered, so every read that
        # arrives after it has to wait for the next one.
        wait_for(lambda: leader.metric("raftkv_reads_total") - reads0 >= 16, 20,
                 "16 reads to reach the leader")
    finally:
        for f in followers:
            f.proc.send_signal(signal.SIGCONT)
        for t in threads:
            t.join(60)
    check(answers == [(200, b"v")] * 16, "every read answers the value: %r" % answers)
    rounds = leader.metric("raftkv_read_rounds_total") - rounds0
    # One round was out when the followers stopped, one more serves every
    # read queued behind it. A round per arrival would be up to 16.
    check(1 <= rounds <= 2, "16 reads that waited together took %d rounds" % rounds)


def test_a_member_reads_the_writes_it_answered(env):
    """A member answers a write once it is applied, before kv.db commits it
    (docs/ARCHITECTURE.md, flush.c): every read on that member after the
    answer — serializable, /status, a watch from the write's revision —
    still sees it, with no sleep and no retry (a backup too:
    test_backup.py's gateway snapshot counts every key just written)."""
    nodes = env.cluster(3)
    leader = env.leader(nodes)
    follower = [n for n in nodes if n is not leader][0]
    for i in range(40):
        writer = leader if i % 2 else follower
        key = "ryw-%d" % i
        r = writer.request("PUT", "/kv/" + key, ("v%d" % i).encode())
        check(r.status == 200, "PUT %s on %s: %r" % (key, writer, r))
        rev = r.json()["header"]["revision"]
        g = writer.request("GET", "/kv/%s?serializable=true&raw=true" % key)
        check((g.status, g.body) == (200, ("v%d" % i).encode()),
              "serializable GET of %s on %s right after its PUT: %r" % (key, writer, g))
        st = writer.status()
        check(st["revision"] >= rev, "/status on %s says revision %s after a write at %s"
              % (writer, st["revision"], rev))
        w = writer.request("GET", "/watch/%s?start_revision=%d&timeout=5" % (key, rev), timeout=10)
        check(w.status == 200 and ("v%d" % i) in w.body.decode(),
              "a watch from the write's revision on %s: %r" % (writer, w))
