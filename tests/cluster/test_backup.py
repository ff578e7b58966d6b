"""Backups, restore into a new cluster, defrag (docs/OPERATIONS.md,
"Backups" and "Defragmenting"): `raftkv snapshot save` from a member while
clients write through every member; `snapshot status` describes it;
`snapshot restore` builds a new 3-node cluster on other ports whose every
key, value, create/mod revision and version equal the backup's, which takes
writes, has another cluster id and refuses the old cluster's messages; a
truncated or bit-flipped backup is refused with a clear message; defrag
after deleting most keys shrinks db_size while a writer keeps going.
"""

import json
import os
import subprocess
import threading
import time

import harness
import peerwire
from harness import cert, check, wait_for


def _cli(args, timeout=60):
    return subprocess.run([harness.binary(), "snapshot"] + args, capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _endpoint_args(node):
    scheme = "https" if harness.TLS else "http"
    args = ["--endpoint", "%s://127.0.0.1:%d" % (scheme, node.port)]
    if harness.TLS:
        args += ["--cacert", cert("ca.pem"), "--cert", cert("client-root.pem"),
                 "--key", cert("client-root-key.pem")]
    return args


def _all_keys(node, rev=None):
    q = "?range_end=%00" + ("&rev=%d" % rev if rev else "")
    r = node.request("GET", "/kv/%00" + q)
    check(r.status == 200, "range read: %r" % r)
    return {kv["key"]: (kv["value"], kv["create_revision"], kv["mod_revision"], kv["version"])
            for kv in r.json()["kvs"]}


def _writers(nodes, stop, acked):
    def run(i, node):
        n = 0
        while not stop.is_set():
            try:
                r = node.request("PUT", "/kv/w%d/%d" % (i, n), "v%d" % n, timeout=10)
                if r.status == 200:
                    acked.append((i, n))
            except OSError:
                pass
            n += 1
    ts = [threading.Thread(target=run, args=(i, n), daemon=True) for i, n in enumerate(nodes)]
    for t in ts:
        t.start()
    return ts


def test_backup_restores_into_a_new_cluster(env):
    old = env.cluster(3)
    for i in range(30):
        check(old[i % 3].request("PUT", "/kv/base/%d" % i, "b%d" % i).status == 200, "seed %d" % i)
    check(old[0].request("DELETE", "/kv/base/0").status == 200, "a delete in history")
    stop, acked = threading.Event(), []
    ts = _writers(old, stop, acked)
    wait_for(lambda: len(acked) >= 30, 30, "writes through every member")
    path = os.path.join(env.dir, "cluster.backup")
    r = _cli(["save"] + _endpoint_args(old[1]) + [path])
    check(r.returncode == 0, "save: %r" % (r,))
    wait_for(lambda: len(acked) >= 60, 30, "writes after the backup")
    stop.set()
    for t in ts:
        t.join(30)
    r = _cli(["status", "-w", "json", path])
    check(r.returncode == 0, "status: %r" % (r,))
    info = json.loads(r.stdout)
    rev = info["revision"]
    check(info["keys"] >= 59 and info["size"] == os.path.getsize(path), "status: %r" % info)
    want = _all_keys(old[0], rev)
    check(len(want) == info["keys"], "status counts %d keys, the cluster had %d at %d"
          % (info["keys"], len(want), rev))
    # a new cluster on other ports, every member restored from the one file
    new = [env.new_node() for _ in range(3)]
    urls = ",".join(n.peer_url for n in new)
    for n in new:
        r = _cli(["restore", path, "--id", str(n.id - 3), "--cluster", urls,
                  "--data-dir", n.data_dir])
        check(r.returncode == 0, "restore %s: %r" % (n, r))
        n.id -= 3  # ids in the new cluster are 1..3
    for n in new:
        n.start(urls.split(","))
    env.wait_healthy(new)
    for n in new:
        got = _all_keys(n)
        check(got == want, "%s: the restored keys differ from the backup's (%d vs %d keys)"
              % (n, len(got), len(want)))
    # it takes writes, its revisions go on from the backup's
    r = new[1].request("PUT", "/kv/after-restore", "x")
    check(r.status == 200 and r.json()["header"]["revision"] == rev + 1, "write: %r" % r)
    check(new[0].status()["header"]["cluster_id"] != old[0].status()["header"]["cluster_id"],
          "a new cluster id")
    members = new[0].request("GET", "/members").json()["members"]
    check(sorted(m["peer_urls"][0] for m in members) == sorted(urls.split(",")),
          "members from --cluster: %r" % members)
    # the old cluster's messages are refused by the new one
    forged = peerwire.batch(peerwire.cluster_id(old[0]),
                            [peerwire.message(peerwire.HEARTBEAT, 2, 1, 99)])
    r = new[0].peer_request("POST", "/raft/message", forged,
                            headers={"Content-Type": "application/octet-stream"})
    check(400 <= r.status < 500, "an old member's message: %r" % r)
    check(new[0].status()["raft_term"] < 99, "the old cluster's term did not reach the new one")


def test_damaged_backup_is_refused(env):
    (n,) = env.cluster(1)
    for i in range(20):
        check(n.request("PUT", "/kv/k%d" % i, "v").status == 200, "put")
    path = os.path.join(env.dir, "good.backup")
    check(_cli(["save"] + _endpoint_args(n) + [path]).returncode == 0, "save")
    data = open(path, "rb").read()
    cases = {"truncated": data[:len(data) // 2],
             "flipped": data[:5000] + bytes([data[5000] ^ 0x40]) + data[5001:],
             "trailer": data[:-3] + b"xyz"}
    for name, body in cases.items():
        bad = os.path.join(env.dir, name + ".backup")
        with open(bad, "wb") as f:
            f.write(body)
        r = _cli(["status", bad])
        check(r.returncode == 1 and r.stderr.strip(), "status of a %s backup: %r" % (name, r))
        check(b"damaged" in r.stderr or b"truncated" in r.stderr or b"cut off" in r.stderr,
              "the message says what is wrong: %r" % r.stderr)
        d = os.path.join(env.dir, "restore-" + name)
        r = _cli(["restore", bad, "--id", "1", "--cluster", "http://127.0.0.1:1", "--data-dir", d])
        check(r.returncode == 1 and not os.path.exists(d), "restore of a %s backup: %r" % (name, r))
    r = _cli(["restore", path, "--id", "1", "--cluster", "http://127.0.0.1:1",
              "--data-dir", n.data_dir])
    check(r.returncode == 1 and b"exists" in r.stderr, "an existing data dir is refused: %r" % r)
    r = _cli(["save", "--endpoint", "http://127.0.0.1:%d" % harness.free_port(),
              os.path.join(env.dir, "x.backup")])
    check(r.returncode == 1 and not os.path.exists(os.path.join(env.dir, "x.backup")),
          "an unreachable member leaves no file: %r" % r)


def test_gateway_snapshot_is_the_same_backup(env):
    """etcd's maintenance/snapshot through the gateway: result lines whose
    blobs, put together, are a backup `snapshot status` accepts."""
    import base64
    (n,) = env.cluster(1)
    for i in range(50):
        check(n.request("PUT", "/kv/g%d" % i, "v" * 2000).status == 200, "put")
    r = n.request("POST", "/v3/maintenance/snapshot", "{}", timeout=60)
    check(r.status == 200, "gateway snapshot: %r" % r)
    lines = [json.loads(x) for x in r.body.decode().splitlines() if x.strip()]
    blob = b"".join(base64.b64decode(x["result"]["blob"]) for x in lines)
    check(len(lines) > 1 and lines[-1]["result"]["remaining_bytes"] == "0",
          "%d lines, the last says %r" % (len(lines), lines[-1]["result"].get("remaining_bytes")))
    path = os.path.join(env.dir, "gw.backup")
    with open(path, "wb") as f:
        f.write(blob)
    st = _cli(["status", "-w", "json", path])
    check(st.returncode == 0 and json.loads(st.stdout)["keys"] == 50, "status: %r" % (st,))


def test_defrag_shrinks_the_database(env):
    (n,) = env.cluster(1)
    big = "x" * 16384
    for i in range(400):
        check(n.request("PUT", "/kv/big/%d" % i, big).status == 200, "fill %d" % i)
    r = n.request("DELETE", "/kv/big/?prefix=true")
    check(r.status == 200, "delete: %r" % r)
    rev = r.json()["header"]["revision"]
    check(n.request("POST", "/compact", json.dumps({"revision": rev})).status == 200, "compact")
    before = n.status()["db_size"]
    stop, worst = threading.Event(), [0.0]

    def writer():
        i = 0
        while not stop.is_set():
            t = time.monotonic()
            n.request("PUT", "/kv/live", str(i))
            worst[0] = max(worst[0], time.monotonic() - t)
            i += 1
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    r = n.request("POST", "/maintenance/defrag", timeout=120)
    stop.set()
    t.join(30)
    check(r.status == 200, "defrag: %r" % r)
    js = r.json()
    check(js["db_size"] < before / 4, "db_size %d -> %d" % (before, js["db_size"]))
    n.request("PUT", "/kv/live", "last")
    wait_for(lambda: n.status()["db_size"] < before / 4, 10, "/status to show the smaller db_size")
    print("  db_size %d -> %d bytes; the slowest write during defrag took %.1f ms"
          % (before, js["db_size"], worst[0] * 1000))
    check(n.request("GET", "/kv/live?raw=true").body == b"last", "the store still works")
