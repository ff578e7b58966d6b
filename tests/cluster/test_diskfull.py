"""A full disk (README.md, Exit status; docs/API.md section 11): three nodes
keep their data dirs on one small tmpfs, which a filler file fills. No node
stops: reads are still answered (serializable everywhere; linearizable by
the members that applied what is committed — a member whose kv.db cannot
take committed entries answers those once it has space), writes that add
data get 507 no_space, no acknowledged write is lost, and once space is
freed and the NOSPACE alarm disarmed, writes work again without a restart.
A failed fsync (failpoint) is different: the node exits 3 and never
retries it."""

import json
import os
import subprocess

from harness import check, wait_for

MB = 1 << 20


def _mount_tmpfs(path, size_mb):
    os.makedirs(path)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb, "tmpfs", path],
                       capture_output=True, text=True)
    check(r.returncode == 0, "mount tmpfs (needs root, as CI is): %s" % r.stderr.strip())


def _free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(path, leave):
    """A filler file that leaves about `leave` bytes free."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb") as f:
        chunk = b"\0" * MB
        while _free_bytes(path) > leave + MB:
            f.write(chunk)
            f.flush()
        rest = _free_bytes(path) - leave
        if rest > 0:
            f.write(b"\0" * rest)
    return filler


def _write_until_refused(leader, acked):
    for i in range(5000):
        key = "df-%04d" % i
        try:
            r = leader.request("PUT", "/kv/" + key, b"v" * 2048, timeout=8)
        except OSError:
            return None
        if r.status == 200:
            acked[key] = b"v" * 2048
            continue
        return r.status
    return None


def test_full_disk_keeps_serving_reads_and_refuses_writes(env):
    mnt = os.path.join(env.dir, "tmpfs")
    _mount_tmpfs(mnt, 48)
    try:
        nodes = [env.new_node() for _ in range(3)]
        for n in nodes:
            n.data_dir = os.path.join(mnt, "raftkv-%d" % n.id)
            n.start([x.peer_url for x in nodes], extra=["--snapshot-count", "1000000"])
        env.wait_healthy(nodes)
        leader = env.leader()
        acked = {}
        for i in range(20):
            check(leader.request("PUT", "/kv/early-%d" % i, b"e").status == 200, "early write")
            acked["early-%d" % i] = b"e"
        filler = _fill(mnt, 256 * 1024)
        first = _write_until_refused(leader, acked)
        check(first in (503, 507, None), "the first refused write answered %r" % first)
        # From now on the leader knows its disk is full: 507 at once.
        wait_for(lambda: leader.request("PUT", "/kv/more", b"x", timeout=8).status == 507,
                 timeout=30, what="writes to answer 507 no_space")
        r = leader.request("PUT", "/kv/more", b"x")
        check(r.json()["reason"] == "no_space", "507 says no_space: %r" % r)
        linearizable = 0
        for n in nodes:
            check(n.alive(), "%s stopped on a full disk" % n)
            r = n.request("GET", "/kv/early-3?serializable=true&raw=true")
            check((r.status, r.body) == (200, b"e"), "%s serializable read: %r" % (n, r))
            st, body = n.get("early-3", timeout=10)
            check(st in (200, 503), "%s linearizable read answered %s" % (n, st))
            linearizable += (st, body) == (200, b"e")
        check(linearizable >= 1, "no member answered a linearizable read on a full disk")
        os.unlink(filler)
        # Space is back: whatever alarm was written is disarmed, writes work.
        def disarmed():
            r = leader.request("POST", "/maintenance/alarms/disarm",
                               json.dumps({"alarm": "NOSPACE"}).encode(), timeout=8)
            if r.status != 200:
                return False
            return leader.request("PUT", "/kv/after", b"ok", timeout=8).status == 200
        wait_for(disarmed, timeout=60, what="writes back after space is freed and disarm")
        for n in nodes:
            check(n.alive(), "%s stopped" % n)
            wait_for(lambda n=n: n.get("after", timeout=8) == (200, b"ok"), timeout=30,
                     what="%s to read the write after the disk emptied" % n)
            for key, val in list(acked.items())[::25]:
                check(n.get(key, timeout=8) == (200, val), "acknowledged %s lost on %s" % (key, n))
            # the space reserve given up for committed entries is back
            reserve = os.path.join(n.data_dir, "space.reserve")
            wait_for(lambda: os.path.exists(reserve) and os.path.getsize(reserve) == 4 << 20,
                     timeout=30, what="%s to make its space reserve again" % n)
    finally:
        env.stop_all()
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def test_failed_fsync_exits_3(env):
    nodes = env.cluster(3)
    victim = nodes[2]
    victim.restart_with_failpoints("storage.commit=EIO@5")
    leader = nodes[0]  # writes go through a node that stays up; any leader is fine
    acked = []
    # writes until the victim's fifth commit fails: a member that caught up
    # in a few large appends may need more than a handful
    for i in range(1000):
        env.put_retry(leader, "fs-%d" % i, "v")
        acked.append("fs-%d" % i)
        if not victim.alive():
            break
    code = victim.wait_exit(30)
    check(code == 3, "failed fsync exit code %r, want 3" % code)
    check("cannot persist the raft log" in victim.log_text(), "the log says why")
    victim.env_vars.clear()
    victim.restart()
    env.wait_healthy(nodes)
    for key in acked:
        check(victim.get(key) == (200, b"v"), "%s on the restarted node" % key)
