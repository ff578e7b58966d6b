"""Watch (docs/API.md sections 5 and 9) against real nodes: long-poll from history,
blocking until a write, timeouts, DELETE with prev_kv, filters, bad input,
NDJSON streams (created, order, progress, disconnect frees the watcher),
compaction (410 and the canceled line), a cursor resumed on every node
while all three take writes, 1000 concurrent watchers, and a stream that
never reads while 100 000 writes go through.

Owns its stream reader (raw socket, chunked decoding). Must never sleep in
place of a condition: every wait is a poll or a blocking read with a
deadline, and no assertion is about speed.
"""

import http.client
import json
import os
import socket
import threading
import time
import urllib.parse

import harness
import kvclient
from harness import check, wait_for


# ---- helpers ----

def put(node, key, value):
    """PUT (checked); returns the new revision."""
    return kvclient.rev_of(kvclient.put(node, key, value))


def watch(node, key, timeout=30, http_timeout=None, **params):
    params["timeout"] = timeout
    q = urllib.parse.urlencode({k: str(v).lower() if isinstance(v, bool) else v
                                for k, v in params.items()})
    return node.request("GET", "/watch/%s?%s" % (key, q),
                        timeout=http_timeout or timeout + 15)


def poll_events(node, key, cursor, want, deadline=30, dropped=None, **params):
    """Long-polls from cursor until `want` events came; returns (events,
    next cursor). With `dropped` (a list), a poll whose connection the
    server closed unanswered is asked again from the same cursor — what a
    client does — and counted there (the caller bounds the count)."""
    events = []
    end = time.monotonic() + deadline
    while len(events) < want:
        check(time.monotonic() < end, "only %d of %d events by the deadline" % (len(events), want))
        try:
            r = watch(node, key, timeout=5, start_revision=cursor, **params)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if dropped is None:
                raise
            dropped.append(cursor)
            continue
        check(r.status == 200, "watch: %r" % r)
        body = r.json()
        check(body["next_revision"] >= cursor, "next_revision went backwards")
        events += body["events"]
        cursor = body["next_revision"]
    return events, cursor


def rss_kb(node):
    with open("/proc/%d/status" % node.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Stream:
    """GET ...&stream=true over a raw socket: status, then NDJSON lines
    decoded from the chunked body. rcvbuf shrinks the socket's receive
    buffer (a reader that stops reading then pushes back early)."""

    def __init__(self, node, key, rcvbuf=None, **params):
        params["stream"] = "true"
        q = urllib.parse.urlencode(params)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", node.port))
        if harness.TLS:
            self.sock = harness.client_context().wrap_socket(self.sock,
                                                             server_hostname="127.0.0.1")
        req = "GET /watch/%s?%s HTTP/1.1\r\nHost: x\r\n\r\n" % (key, q)
        self.sock.sendall(req.encode())
        self.raw = b""
        self.body = b""
        self.ended = False
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])
        self.headers = head.decode().lower()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("stream closed")
        self.raw += data

    def _until(self, sep):
        while sep not in self.raw:
            self._fill()
        out, self.raw = self.raw.split(sep, 1)
        return out

    def _chunk(self):
        size = int(self._until(b"\r\n").split(b";")[0], 16)
        while len(self.raw) < size + 2:
            self._fill()
        data, self.raw = self.raw[:size], self.raw[size + 2:]
        if size == 0:
            self.ended = True
        self.body += data

    def line(self, timeout=30):
        """The next JSON line, or None at the end of the stream."""
        self.sock.settimeout(timeout)
        while b"\n" not in self.body:
            if self.ended:
                return None
            self._chunk()
        text, self.body = self.body.split(b"\n", 1)
        return json.loads(text)

    def close(self):
        self.sock.close()


def stream_events(s, want, timeout=30):
    """Reads lines until `want` events; returns (events, progress lines)."""
    events, progress = [], 0
    end = time.monotonic() + timeout
    while len(events) < want:
        check(time.monotonic() < end, "stream: %d of %d events" % (len(events), want))
        ln = s.line()
        check(ln is not None and "canceled" not in ln, "stream ended early: %r" % ln)
        if ln.get("progress"):
            progress += 1
        revs = [e["kv"]["mod_revision"] for e in ln.get("events", [])]
        check(revs == sorted(revs), "events out of order in one line")
        events += ln.get("events", [])
    return events, progress


def sig(events):
    return [(e["type"], e["kv"]["key"], e["kv"].get("value"), e["kv"]["mod_revision"])
            for e in events]


def run_threads(fns):
    errors = []

    def wrap(fn):
        try:
            fn()
        except Exception as e:  # reported below, not swallowed
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(fn,), daemon=True) for fn in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    check(not any(t.is_alive() for t in ts), "a thread did not finish")
    if errors:
        raise errors[0]


# ---- long-poll ----

def test_watch_longpoll_history_block_timeout(env):
    n1, n2, n3 = env.cluster(3)
    r1 = put(n1, "w/a", "1")
    put(n1, "w/a", "2")
    events, cursor = poll_events(n2, "w/a", r1, 2)
    check([e["kv"]["value"] for e in events] == ["1", "2"], "history: %r" % events)
    check(all(e["type"] == "PUT" for e in events), "types: %r" % events)

    # blocks until the write, on another node than the writer
    got = {}
    t = threading.Thread(target=lambda: got.update(r=watch(n3, "w/a", timeout=60,
                                                           start_revision=cursor)))
    t.start()
    wait_for(lambda: n3.metric("raftkv_watchers") >= 1, 10, "the long-poll to park")
    rev = put(n1, "w/a", "3")
    t.join(60)
    check(not t.is_alive() and got["r"].status == 200, "long-poll answer: %r" % got)
    body = got["r"].json()
    check(sig(body["events"]) == [("PUT", "w/a", "3", rev)], "delivered: %r" % body)
    check(body["next_revision"] == rev + 1, "next_revision %r" % body["next_revision"])

    # timeout: no events, a valid unchanged cursor
    wait_for(lambda: n2.status()["revision"] >= rev, 10, "n2 to apply")
    r = watch(n2, "w/a", timeout=1, start_revision=rev + 1)
    body = r.json()
    check(r.status == 200 and body["events"] == [], "timeout answer %r" % r)
    check(body["next_revision"] == rev + 1, "timeout cursor moved: %r" % body)
    # an unrelated write moves the cursor of an empty answer forward, never past an event
    other = put(n1, "w/b", "x")
    wait_for(lambda: n2.status()["revision"] >= other, 10, "n2 to apply")
    body = watch(n2, "w/a", timeout=0, start_revision=rev + 1).json()
    check(body["events"] == [] and body["next_revision"] == other + 1, "cursor %r" % body)


def test_watch_longpoll_client_hangs_up(env):
    """A parked long-poll whose client hangs up loses its watcher within
    about a second (its socket is probed), not at its 600 s timeout."""
    (n,) = env.cluster(1)
    took = harness.hang_up_parked(n, b"GET /watch/hang?timeout=600 HTTP/1.1\r\nHost: x\r\n\r\n",
                                  lambda: put(n, "other", "x"), "the long-poll")
    print("  the watcher went %.2fs after its client hung up" % took)
    # the node still serves long-polls
    rev = put(n, "hang", "v")
    body = watch(n, "hang", timeout=5, start_revision=rev).json()
    check(sig(body["events"]) == [("PUT", "hang", "v", rev)], "after: %r" % body)


def test_watch_stream_client_hangs_up(env):
    """A parked stream whose client hangs up loses its watcher within about
    a second (its socket is probed), not at its next progress line, which
    may be an hour away."""
    (n,) = env.cluster(1)
    took = harness.hang_up_parked(
        n, b"GET /watch/hang?stream=true&progress_ms=3600000 HTTP/1.1\r\nHost: x\r\n\r\n",
        lambda: put(n, "other", "x"), "the stream")
    print("  the stream went %.2fs after its client hung up" % took)


def test_watch_delete_prev_kv_filters_bad_input(env):
    (n,) = env.cluster(1)
    r1 = put(n, "d/k", "v1")
    rd = n.request("DELETE", "/kv/d/k").json()["header"]["revision"]
    body = watch(n, "d/", prefix=True, start_revision=r1, prev_kv=True).json()
    check([e["type"] for e in body["events"]] == ["PUT", "DELETE"], "events %r" % body)
    dele = body["events"][1]
    check(dele["kv"]["mod_revision"] == rd and dele["kv"]["key"] == "d/k", "delete %r" % dele)
    check(dele["prev_kv"]["value"] == "v1", "prev_kv %r" % dele)
    check(body["next_revision"] == rd + 1, "next %r" % body)
    body = watch(n, "d/k", start_revision=r1, filters="noput").json()
    check([e["type"] for e in body["events"]] == ["DELETE"], "noput %r" % body)
    body = watch(n, "d/k", start_revision=r1, filters="nodelete").json()
    check([e["type"] for e in body["events"]] == ["PUT"], "nodelete %r" % body)
    # range_end: [d/, d/l) holds d/k
    body = watch(n, "d/", range_end="d/l", start_revision=r1).json()
    check(len(body["events"]) == 2, "range %r" % body)
    before = n.status()["revision"]
    for q, name in [("start_revision=abc", "start_revision"), ("filters=nope", "filters"),
                    ("timeout=4000", "timeout"), ("timeout=-1", "timeout"),
                    ("progress_ms=50", "progress_ms"), ("prefix=true&range_end=z", "prefix"),
                    ("bogus=1", "bogus"), ("prev_kv=maybe", "prev_kv")]:
        r = n.request("GET", "/watch/d/k?" + q)
        check(r.status == 400 and name in r.json()["error"], "%s: %r" % (q, r))
    check(n.status()["revision"] == before, "bad input wrote something")


# ---- streams ----

def test_watch_stream_created_order_progress_disconnect(env):
    (n,) = env.cluster(1)
    base = n.metric("raftkv_watchers")
    s = Stream(n, "s/", prefix="true", progress_ms=200)
    try:
        check(s.status == 200, "stream status %d" % s.status)
        check("application/x-ndjson" in s.headers and "chunked" in s.headers, s.headers)
        first = s.line()
        check(first.get("created") is True and "header" in first, "first line %r" % first)
        check(n.metric("raftkv_watchers") == base + 1, "gauge while streaming")
        revs = [put(n, "s/%d" % i, str(i)) for i in range(5)]
        events, _ = stream_events(s, 5)
        check([e["kv"]["mod_revision"] for e in events] == revs, "order %r" % events)
        check([e["kv"]["value"] for e in events] == [str(i) for i in range(5)], "values")
        # idle: progress lines keep coming, with the cursor in the header
        progress = []
        while len(progress) < 2:
            ln = s.line(timeout=10)
            check(ln is not None and ln["events"] == [], "idle line %r" % ln)
            progress.append(ln)
        check(all(p["progress"] is True and p["header"]["revision"] == revs[-1]
                  for p in progress), "progress %r" % progress)
    finally:
        s.close()
    # the next progress tick finds the socket closed: the watcher is freed
    wait_for(lambda: n.metric("raftkv_watchers") == base, 15, "the gauge to fall back")


def test_watch_compacted(env):
    (n,) = env.cluster(1)
    r1 = put(n, "c/k", "1")
    r2 = put(n, "c/k", "2")
    put(n, "c/k", "3")
    r = n.request("POST", "/compact", json.dumps({"revision": r2}))
    check(r.status == 200, "compact %r" % r)
    r = watch(n, "c/k", start_revision=r1)
    check(r.status == 410 and r.json()["reason"] == "compacted", "410 %r" % r)
    check(r.json()["compact_revision"] == r2, "compact_revision %r" % r)
    check(watch(n, "c/k", start_revision=r2).status == 410, "cursor == compact revision")
    check(watch(n, "c/k", start_revision=r2 + 1, timeout=0).status == 200, "cursor after it")
    s = Stream(n, "c/k", start_revision=r1)
    try:
        check(s.line().get("created") is True, "created first")
        last = s.line()
        check(last.get("canceled") is True and last["reason"] == "compacted"
              and last["compact_revision"] == r2, "canceled line %r" % last)
        check(s.line() is None, "the stream ends after the canceled line")
    finally:
        s.close()


# ---- many nodes, many watchers ----

def test_watch_cursor_resumes_across_nodes(env):
    nodes = env.cluster(3)
    start = put(nodes[0], "x/start", "0") + 1
    per_node = 30

    def writer(i):
        return lambda: [put(nodes[i], "r/%d/%d" % (i, j), "%d-%d" % (i, j))
                        for j in range(per_node)]

    seen = []

    def reader():
        cursor, k = start, 0
        end = time.monotonic() + 90
        while len(seen) < 3 * per_node:
            check(time.monotonic() < end, "reader: %d events" % len(seen))
            body = watch(nodes[k % 3], "r/", prefix=True, timeout=2,
                         start_revision=cursor).json()
            seen.extend(body["events"])
            cursor = body["next_revision"]
            k += 1  # every call goes to the next node

    run_threads([writer(0), writer(1), writer(2), reader])
    truth, _ = poll_events(nodes[0], "r/", start, 3 * per_node, prefix=True)
    check(sig(seen) == sig(truth), "resumed sequence differs from the history")
    revs = [e["kv"]["mod_revision"] for e in seen]
    check(revs == sorted(set(revs)), "repeated or unordered revisions")
    check(sorted(e["kv"]["value"] for e in seen) ==
          sorted("%d-%d" % (i, j) for i in range(3) for j in range(per_node)),
          "not exactly the writes")


def test_watch_1000_watchers(env):
    # Over TLS (RAFTKV_TEST_TLS=1) every long-poll round is a new Python TLS
    # handshake, and 1000 threads of them on a small machine time out in the
    # client before the server is tested: 250 watchers there.
    watchers = 250 if harness.TLS else 1000
    # 1000 client threads under one GIL can take seconds between connecting
    # and sending: the 10 s receive deadline from accept is not under test
    nodes = env.cluster(3, extra=["--request-read-timeout-ms", "60000"])
    start = put(nodes[0], "m0", "x") + 1
    writes = 20
    results = [None] * watchers
    # With 1000 Python threads on two cores, a long-poll's fresh connection
    # was closed unanswered in CI under load (three times; most likely the
    # receive deadline above, counted from accept). The poller asks again
    # from its cursor, as a client does; more than 1 in 50 such polls fails.
    dropped = []

    def longpoller(i):
        def run():
            results[i], _ = poll_events(nodes[i % 3], "m/", start, writes, deadline=100,
                                        dropped=dropped, prefix=True)
        return run

    def streamer(i):
        def run():
            s = Stream(nodes[i % 3], "m/", prefix="true", start_revision=start)
            try:
                check(s.line(timeout=60).get("created") is True, "created")
                results[i], _ = stream_events(s, writes, timeout=100)
            finally:
                s.close()
        return run

    fns = [streamer(i) if i % 2 else longpoller(i) for i in range(watchers)]

    def writer():
        for j in range(writes):
            put(nodes[j % 3], "m/%02d" % j, "v%d" % j)

    run_threads(fns + [writer])
    ref = sig(results[0])
    check(len(ref) == writes, "reference has %d events" % len(ref))
    bad = [i for i, r in enumerate(results) if r is None or sig(r[:writes]) != ref]
    check(not bad, "%d watchers saw another sequence (e.g. #%s)" % (len(bad), bad[:5]))
    print("  %d long-polls dropped unanswered and asked again" % len(dropped))
    check(len(dropped) <= watchers // 50, "%d long-polls dropped" % len(dropped))


def test_watch_longpoll_answer_is_bounded_in_bytes(env):
    """A long-poll's answer holds at most 4 MiB of keys and values
    (KV_HISTORY_MAX_BYTES, then one whole revision), as it holds at most
    1 000 events: 12 values of 1 MiB come in answers of 4, and following
    next_revision delivers each once, in order. Before the cap, all 12 came
    in one answer, and 1 000 values of 32 MiB would have been one."""
    (n,) = env.cluster(1)
    value = "v" * (1 << 20)
    revs = [put(n, "wbig/%02d" % i, value) for i in range(12)]
    r = watch(n, "wbig/", prefix=True, start_revision=revs[0])
    check(r.status == 200, "watch: %r" % r)
    first = r.json()
    check(len(first["events"]) == 4 and first["next_revision"] == revs[4],
          "first answer: %d events, next_revision %r" % (len(first["events"]),
                                                          first["next_revision"]))
    events, _ = poll_events(n, "wbig/", revs[0], 12, prefix=True)
    check([e["kv"]["mod_revision"] for e in events] == revs, "each event once, in order")
    check(all(e["kv"]["value"] == value for e in events), "the values whole")


def test_watch_stream_reader_that_never_reads(env):
    # AddressSanitizer keeps up to 256 MB of freed memory in quarantine,
    # which would hide (or fake) growth caused by the stream: turn it off
    # for this node only (ignored by builds without sanitizers).
    saved = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = ((saved + ":") if saved else "") + "quarantine_size_mb=0"
    try:
        (n,) = env.cluster(1)
    finally:
        if saved is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = saved
    start = put(n, "big0", "x") + 1
    rss0 = rss_kb(n)
    s = Stream(n, "big/", rcvbuf=4096, prefix="true", start_revision=start)
    try:
        check(s.line().get("created") is True, "created")
        per_txn, txns, writers = 100, 1000, 8
        value = "v" * 200
        revs = []
        lock = threading.Lock()

        def writer(w):
            def run():
                for t in range(w, txns, writers):
                    ops = [{"request_put": {"key": "big/%04d/%03d" % (t, k), "value": value}}
                           for k in range(per_txn)]
                    r = n.request("POST", "/txn", json.dumps({"success": ops}))
                    check(r.status == 200, "txn %r" % r)
                    with lock:
                        revs.append(r.json()["header"]["revision"])
            return run

        run_threads([writer(w) for w in range(writers)])
        rss1 = rss_kb(n)
        print("  RSS before %d kB, after %d writes %d kB (+%d kB)"
              % (rss0, per_txn * txns, rss1, rss1 - rss0), flush=True)
        check(rss1 - rss0 < 200 * 1024, "RSS grew by %d kB" % (rss1 - rss0))
        # now read it all: caught up with no gap (nothing was compacted)
        got = {}
        count = 0
        while count < per_txn * txns:
            ln = s.line(timeout=30)
            check(ln is not None, "stream ended after %d events" % count)
            check("canceled" not in ln, "canceled although nothing was compacted: %r" % ln)
            for e in ln.get("events", []):
                rev = e["kv"]["mod_revision"]
                got[rev] = got.get(rev, 0) + 1
                count += 1
        check(sorted(got) == sorted(revs), "revisions missing or extra")
        check(all(c == per_txn for c in got.values()), "a revision was split or short")
    finally:
        s.close()


def test_watch_sigterm_with_parked_watchers(env):
    """A parked stream and a parked long-poll do not hold shutdown up: the
    long-poll gets 503 (or its connection closes), the stream ends, the node
    exits 0 without sanitizer reports."""
    (n,) = env.cluster(1)
    s = Stream(n, "z/", prefix="true", progress_ms=60000)
    try:
        check(s.line().get("created") is True, "created")
        got = {}

        def poll():
            try:
                got["r"] = watch(n, "q", timeout=60)
            except (OSError, ConnectionError) as e:  # closed while stopping: fine too
                got["r"] = e

        t = threading.Thread(target=poll)
        t.start()
        wait_for(lambda: n.metric("raftkv_watchers") == 2, 10, "both watchers to park")
        check(n.stop() == 0, "exit code after SIGTERM")
        t.join(30)
        r = got.get("r")
        check(not t.is_alive() and r is not None, "the long-poll did not end")
        check(not hasattr(r, "status") or r.status == 503, "long-poll at shutdown: %r" % r)
        try:
            check(s.line(timeout=10) is None, "the stream ends at shutdown")
        except (OSError, EOFError):
            pass  # closed without the last chunk: ended all the same
    finally:
        s.close()
