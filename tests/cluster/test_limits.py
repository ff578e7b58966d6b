"""Client resource limits and listen addresses (docs/SECURITY.md): one
address cannot take every connection, a client that sends a request slowly
is cut off after a bounded total time, the client port listens on loopback
unless told otherwise, and --initial-cluster-token changes the cluster id.
"""

import os
import resource
import socket
import subprocess
import sys
import time

import harness
from harness import check, wait_for

# Opens N connections to 127.0.0.1:PORT and holds them (idle, or sending one
# header byte at a time when SLOW); prints "ready N" once all are opened,
# then holds until its stdin closes. A connection the server refuses or
# closes is just dropped: the point is what the server does with the rest.
_FLOODER = r"""
import resource, socket, sys, time, select
port, n, slow = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        continue
    socks.append(s)
print("ready %d" % len(socks), flush=True)
header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100000
i = 0
while not select.select([sys.stdin], [], [], 0.2)[0]:
    if slow:
        for s in socks:
            try:
                s.send(header[i:i + 1])
            except OSError:
                pass
        i += 1
"""


# run.py --jobs runs these alone: a flood takes the machine, and
# their answers to the other address are timed
SERIAL = {"test_idle_connection_flood_leaves_room_for_others",
          "test_byte_at_a_time_flood_leaves_room_for_others",
          "test_slowloris_cut_after_total_deadline",
          "test_peer_port_connection_flood_is_capped"}


def _hard_nofile():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def _start_flooders(port, total, slow):
    """Enough processes to hold `total` connections from 127.0.0.1, at most
    10 000 each (fewer when the fd limit is lower)."""
    per = max(100, min(10000, _hard_nofile() - 64))
    procs = []
    left = total
    while left > 0:
        n = min(per, left)
        procs.append(subprocess.Popen([sys.executable, "-c", _FLOODER, str(port), str(n),
                                       "1" if slow else "0"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        left -= n
    opened = 0
    for p in procs:
        line = p.stdout.readline().decode()
        check(line.startswith("ready"), "a flooder failed to start: %r" % line)
        opened += int(line.split()[1])
    return procs, opened


def _stop_flooders(procs):
    for p in procs:
        try:
            p.stdin.close()
        except OSError:
            pass
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _timed_health(port, source):
    """GET /health from `source` on a fresh connection: (status, seconds)."""
    t0 = time.monotonic()
    s = harness.connect(port, timeout=10, source=source)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None
    return status, time.monotonic() - t0


def _other_address_served(port):
    times = []
    for _ in range(20):
        status, secs = _timed_health(port, "127.0.0.2")
        check(status == 200, "GET /health from 127.0.0.2 answered %s" % status)
        times.append(secs)
    times.sort()
    print("    127.0.0.2: 20 answers, median %.1f ms, max %.1f ms"
          % (times[10] * 1000, times[-1] * 1000))
    check(times[10] < 0.1, "median answer to 127.0.0.2 took %.0f ms" % (times[10] * 1000))
    # The tail is the kernel's, not the server's: while the flood fills the
    # listen queue, a SYN from 127.0.0.2 can be dropped and is sent again
    # after the kernel's 1 s timeout. Under ASan with TLS answers of 1.2 s
    # and 1.9 s were seen in one run (median 56 ms). So 18 of 20 within a
    # second, and none past a second retransmission (1 + 2 s).
    check(times[-3] < 1.0, "the third slowest answer to 127.0.0.2 took %.0f ms"
          % (times[-3] * 1000))
    check(times[-1] < 3.0, "the slowest answer to 127.0.0.2 took %.0f ms" % (times[-1] * 1000))


def _connection_flood(env, slow):
    (n,) = env.cluster(1)
    procs = []
    try:
        procs, opened = _start_flooders(n.port, 20000, slow)
        print("    127.0.0.1 holds %d connection attempts%s"
              % (opened, " sending a byte at a time" if slow else ""))
        _other_address_served(n.port)
        check(n.alive(), "the node died under the flood")
    finally:
        _stop_flooders(procs)
    wait_for(n.healthy, 30, "the node to serve after the flood")


def test_idle_connection_flood_leaves_room_for_others(env):
    _connection_flood(env, slow=False)


def test_byte_at_a_time_flood_leaves_room_for_others(env):
    _connection_flood(env, slow=True)


def _slow_client(port, interval):
    """Sends a request's header one byte every `interval` seconds until the
    server closes the connection; returns how long it stayed open."""
    s = harness.connect(port, timeout=10)
    t0 = time.monotonic()
    try:
        head = b"PUT /slow HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"b" * 10000
        for i in range(len(head)):
            try:
                s.sendall(head[i:i + 1])
            except OSError:
                break
            s.settimeout(interval)
            try:
                if s.recv(4096) == b"":
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        return time.monotonic() - t0
    finally:
        s.close()


def test_slowloris_cut_after_total_deadline(env):
    """A byte every 100 ms never trips an idle timeout; the total deadline
    (--request-read-timeout-ms 1000) cuts it, and nothing is written."""
    (n,) = env.cluster(1, extra=["--request-read-timeout-ms", "1000"])
    held = _slow_client(n.port, 0.1)
    print("    slow client cut after %.2f s" % held)
    check(held < 5, "a client sending a byte every 100 ms kept its connection %.1f s" % held)
    status, _ = n.get("slow")
    check(status == 404, "the slow request must not have written anything (GET: %d)" % status)
    # a normal request on a connection that stays open between requests
    # is not cut: each request is on time
    conn = harness.http_connection(n.port, timeout=10)
    try:
        for i in range(3):
            conn.request("PUT", "/k%d" % i, body=b"v")
            r = conn.getresponse()
            r.read()
            check(r.status == 204, "keep-alive PUT %d answered %d" % (i, r.status))
    finally:
        conn.close()


def test_client_port_listens_on_loopback_by_default(env):
    (n,) = env.cluster(1)
    addr = _non_loopback_address()
    if addr:
        try:
            s = socket.create_connection((addr, n.port), timeout=3)
            s.close()
            raise harness.TestFailure("the client port answered on %s" % addr)
        except ConnectionRefusedError:
            pass
    # 127.0.0.2 is loopback but not the address bound: refused too
    try:
        s = socket.create_connection(("127.0.0.2", n.port), timeout=3)
        s.close()
        raise harness.TestFailure("the client port answered on 127.0.0.2")
    except ConnectionRefusedError:
        pass
    check(n.healthy(), "the node serves on 127.0.0.1")


def test_client_host_every_interface(env):
    (n,) = env.cluster(1, extra=["--client-host", "0.0.0.0"])
    s = socket.create_connection(("127.0.0.2", n.port), timeout=3)
    s.close()


def _non_loopback_address():
    """This machine's first address that is not loopback, or None."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True,
                             timeout=5).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return next((a for a in out if ":" not in a and not a.startswith("127.")), None)


def _cluster_id_with(env, extra):
    nodes = env.cluster(3, extra=extra)
    cid = nodes[0].status()["header"]["cluster_id"]
    for n in nodes:
        check(n.status()["header"]["cluster_id"] == cid, "%s has another cluster id" % n)
    return nodes, cid


def test_initial_cluster_token_changes_cluster_id(env):
    nodes, plain = _cluster_id_with(env, None)
    # the same peer URLs, fresh data dirs, another token: another cluster
    env.stop_all()
    for n in nodes:
        harness.shutil.rmtree(n.data_dir)
        n.args = None
    urls = [n.peer_url for n in nodes]
    for n in nodes:
        n.start(urls, extra=["--initial-cluster-token", "staging"])
    env.wait_healthy(nodes)
    other = nodes[0].status()["header"]["cluster_id"]
    check(other != plain, "--initial-cluster-token left the cluster id at %s" % plain)
    for n in nodes:
        check(n.status()["header"]["cluster_id"] == other, "%s disagrees on the id" % n)


def test_peer_port_connection_flood_is_capped(env):
    """The peer listener (run by the node loop) holds at most 256
    connections: past the cap it stops accepting until some close, so a
    flood of idle connections cannot take the node's fds or load its loop
    (the kernel's backlog keeps the rest). The members' own connections
    keep the cluster committing."""
    nodes = env.cluster(3)
    leader = env.leader()
    target = next(n for n in nodes if n is not leader)
    fd_dir = "/proc/%d/fd" % target.proc.pid
    before = len(os.listdir(fd_dir))
    socks = []
    try:
        for _ in range(400):
            socks.append(socket.create_connection(("127.0.0.1", target.peer_port), timeout=5))
        # the listener takes connections until the cap, then no more
        wait_for(lambda: len(os.listdir(fd_dir)) >= before + 200, 10,
                 "the listener to take the first connections")
        for i in range(5):
            env.put_retry(leader, "flood-%d" % i, "v")
        check(target.get("flood-4") == (200, b"v"), "the flooded member still commits")
        during = len(os.listdir(fd_dir))
        # the cap, and a few fds the node's own senders may open meanwhile
        check(during <= before + 256 + 8, "the node holds %d fds under the flood, %d before"
              % (during, before))
    finally:
        for s in socks:
            s.close()
    for i in range(5, 10):
        env.put_retry(leader, "flood-%d" % i, "v")
    check(target.get("flood-9") == (200, b"v"), "the member commits after the flood")


def test_largest_request_reaches_every_member(env):
    """--max-request-bytes takes at most 32 MiB (config_test refuses one
    byte more): a request that large becomes an entry that still fits in one
    peer message (64 MiB). Before the ceiling, a 70 MB PUT under
    --max-request-bytes 100000000 never reached a follower (the listener
    refused its body): it cost an election and came back 503. At the
    ceiling, a PUT through the leader and one through a follower (a
    forwarded proposal) reach every member, under the same leader and
    term. The election timeout is long so that a slow build's transfer of
    32 MiB (a sanitizer build under TLS took over a second: the heartbeats
    behind it in the peer order waited) is not taken for a dead leader."""
    most = 32 << 20
    nodes = env.cluster(3, extra=["--max-request-bytes", str(most), "--election-ms", "5000"])
    lead = env.leader(nodes)
    follower = next(n for n in nodes if n is not lead)
    term = lead.status()["raft_term"]
    for via, key in ((lead, "big-lead"), (follower, "big-follower")):
        value = (key.encode() * (most // len(key) + 1))[:most]
        code = via.put(key, value, timeout=60)
        check(code in (200, 204), "a %d-byte PUT through %s answered %s" % (most, via, code))
        for n in nodes:
            wait_for(lambda: n.request("GET", "/kv/%s?serializable=true&raw=true" % key,
                                       timeout=30).body == value,
                     60, "%s to serve all of %s" % (n, key))
    check(env.leader(nodes) is lead and lead.status()["raft_term"] == term,
          "the big writes cost no election")
    check(lead.put("one-more", b"x") in (200, 204), "a small write after them")
