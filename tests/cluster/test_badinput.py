"""Hostile input (docs/API.md sections 1, 2 and 8;
the peer port's checks in docs/ARCHITECTURE.md): bad requests get the right
4xx, never crash a node and never write anything. The node must stay healthy
and keep serving after each."""

import os
import random
import select
import socket

import harness
from harness import check


def _big_put(port, path, size):
    """PUT of `size` bytes the way curl sends one: headers with Expect:
    100-continue first, the body only if the server asks for it, and stop
    sending as soon as the server answers. Returns the final status code
    (None if the connection dropped without an answer)."""
    s = harness.connect(port, timeout=15)
    try:
        s.sendall(("PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
                   "Expect: 100-continue\r\n\r\n" % (path, size)).encode())
        head = _read_head(s)
        if head is not None and head.startswith(b"HTTP/1.1 100"):
            head = head.split(b"\r\n\r\n", 1)[1] or None
            if head is None:
                _send_until_answered(s, size)
                head = _read_head(s)
        if not head:
            return None
        return int(head.split(b" ", 2)[1])
    finally:
        s.close()


def _send_until_answered(s, size):
    chunk = b"x" * 65536
    sent = 0
    try:
        while sent < size:
            if select.select([s], [], [], 0)[0]:
                return  # the server answered early (413): stop, read it
            s.sendall(chunk[:size - sent])
            sent += len(chunk)
    except OSError:
        pass  # it may answer and close before the body all arrives


def _read_head(s):
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            data = s.recv(4096)
            if not data:
                return buf or None
            buf += data
    except OSError:
        return buf or None
    return buf


def _still_serving(n, tag):
    check(n.healthy(), "%s unhealthy after %s" % (n, tag))
    check(n.put("alive-" + tag, "yes") == 204, "PUT after %s" % tag)
    check(n.get("alive-" + tag) == (200, b"yes"), "GET after %s" % tag)


def test_client_errors(env):
    (n,) = env.cluster(1)
    r = n.request("POST", "/abc", "http://127.0.0.1:1")
    check(r.status == 400, "POST /abc answered %r" % r)
    try:
        body = r.json()
    except ValueError:
        body = {}
    check(isinstance(body, dict) and body.get("reason"), "400 body lacks a reason: %r" % r.body)
    r = n.request("PATCH", "/key", "x")
    check(r.status == 405, "PATCH /key answered %r" % r)
    check("allow" in r.headers, "405 without an Allow header: %r" % r.headers)
    r = n.request("POST", "/4", "not a url")
    check(r.status == 400, "POST /4 with a bad URL answered %r" % r)
    r = n.request("DELETE", "/99")
    check(r.status in (400, 404), "DELETE of an unknown member answered %r" % r)
    # A JSON body that breaks just before bytes that are not UTF-8: the
    # parser's message quotes them, and the answer must still be a 400
    # (the gateway's was a 500 "out of memory": found by fuzz_body).
    bad = b'{"key":"Y29uZ\\\xdc\x88\xc9","value":"eA=="}'
    r = n.request("POST", "/v3/kv/put", bad)
    check(r.status == 400 and r.json()["code"] == 3, "gateway put with that body: %r" % r)
    r = n.request("POST", "/txn", bad)
    check(r.status == 400 and r.json()["reason"] == "invalid_json", "POST /txn with it: %r" % r)
    _still_serving(n, "client-errors")
    check(n.get("abc")[0] == 404 and n.get("key")[0] == 404, "bad requests wrote nothing")


def test_oversized_put_is_413(env):
    (n,) = env.cluster(1)
    status = _big_put(n.port, "/huge", 8 << 20)
    check(status == 413, "8 MiB PUT answered %s, want 413" % status)
    _still_serving(n, "big-put")
    check(n.get("huge")[0] == 404, "the oversized PUT wrote nothing")


def _garbage_bodies():
    rnd = random.Random(42)
    yield "empty", b""
    yield "one byte", b"\x01"
    yield "truncated header", b"RKV1\x00\x00"
    for size in (16, 300, 5000):
        yield "random %d" % size, bytes(rnd.randrange(256) for _ in range(size))
    yield "text", b"hello raft, this is not a message"


def _truncated_body(port, path):
    """Declares 1000 bytes, sends 10, hangs up: the server must just drop it."""
    s = harness.connect(port, timeout=5, peer=True)
    try:
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" % path).encode()
                  + os.urandom(10))
    finally:
        s.close()


def test_peer_port_rejects_garbage(env):
    nodes = env.cluster(3)
    leader = env.leader()
    target = next(n for n in nodes if n is not leader)  # a follower
    for path in ("/raft/message", "/raft/snapshot"):
        for what, body in _garbage_bodies():
            r = target.peer_request("POST", path, body,
                                    headers={"Content-Type": "application/octet-stream"})
            check(r.status == 400, "%s %s answered %r, want 400" % (path, what, r))
        _truncated_body(target.peer_port, path)
    check(target.alive(), "%s died from peer garbage" % target)
    env.wait_healthy(nodes)
    _still_serving(target, "peer-garbage")
    for n in nodes:
        check(n.get("alive-peer-garbage") == (200, b"yes"), "%s serves after peer garbage" % n)


def test_many_bad_requests_do_not_crash(env):
    (n,) = env.cluster(1)
    rnd = random.Random(7)
    for i in range(50):
        raw = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400)))
        # A short timeout: the server may wait for more of a request that
        # never comes; either way it must survive.
        s = harness.connect(n.port, timeout=1)
        try:
            s.sendall(raw + b"\r\n\r\n")
            _read_head(s)
        finally:
            s.close()
    check(n.alive(), "node died from random client bytes")
    _still_serving(n, "random-bytes")
