"""The request-line limit (docs/API.md section 8): a long key in the URL
(8 KiB, every byte percent-encoded: a 24 KiB path) is stored, replicated,
read and deleted like any other; a path or headers beyond the ~32 KiB
libmicrohttpd gives a request's line and headers are refused with 414 or
431 (MHD's own answer, not JSON: 0.9.75 has no hook for it), nothing is
written and the node keeps serving. A key that long goes through /txn.

Owns its raw-socket request (MHD answers a too-long line before reading
it all). Waits are polls with a deadline; nothing is timed.
"""

import base64
import socket
import urllib.parse

import harness
from harness import check, wait_for

LIMIT = 32 * 1024


def raw_status(node, request):
    """Sends request bytes (the peer may hang up before taking them all)
    and returns the answer's status code and body."""
    s = harness.connect(node.port, timeout=15)
    try:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            data += d
    finally:
        s.close()
    check(data.startswith(b"HTTP/1.1 "), "no answer: %r" % data[:200])
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


def long_key():
    """8 KiB of bytes that all need percent-encoding (non-ASCII, and %2F
    kept as a slash inside the key)."""
    return bytes(0x80 + (i % 0x7f) for i in range(8 * 1024 - 1)) + b"/"


def test_long_key_in_url(env):
    n1, n2, n3 = env.cluster(3)
    key = long_key()
    path = "/kv/" + urllib.parse.quote(key, safe="")
    check(len(path) > 24 * 1024 - 16, "the path is %d bytes" % len(path))
    r = n1.request("PUT", path, b"long")
    check(r.status == 200, "PUT of an 8 KiB key: %r" % r)
    rev = r.json()["header"]["revision"]
    wait_for(lambda: n2.status()["revision"] >= rev, 10, "n2 to apply")
    r = n2.request("GET", path)
    check(r.status == 200, "GET of an 8 KiB key: %r" % r)
    kvs = r.json()["kvs"]
    check(len(kvs) == 1 and base64.b64decode(kvs[0]["key_base64"]) == key and
          kvs[0]["value"] == "long", "read back: %r" % r)
    r = n3.request("DELETE", path)
    check(r.status == 200 and r.json().get("deleted") == 1, "DELETE: %r" % r)
    check(n1.request("GET", path).status == 404, "gone after DELETE")


def test_oversized_url_and_headers_refused(env):
    (n,) = env.cluster(1)
    before = n.status()["revision"]
    path = b"/kv/" + b"%41" * (LIMIT // 3 + 100)
    st, body = raw_status(n, b"PUT " + path + b" HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 1\r\n\r\nv")
    check(st == 414, "a %d-byte path: %d %r" % (len(path), st, body[:200]))
    st, body = raw_status(n, b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * LIMIT +
                          b"\r\nContent-Length: 1\r\n\r\nv")
    check(st == 431, "a %d-byte header: %d %r" % (LIMIT, st, body[:200]))
    check(n.status()["revision"] == before, "nothing written")
    check(n.request("GET", "/kv/a").status == 404, "the refused PUTs wrote nothing")
    # the same key, too long for a URL, goes through /txn in the body
    key = b"A" * (LIMIT + 100)
    txn = ('{"success":[{"request_put":{"key_base64":"%s","value":"v"}}]}'
           % base64.b64encode(key).decode())
    r = n.request("POST", "/txn", txn)
    check(r.status == 200 and r.json()["succeeded"] is True, "txn with a long key: %r" % r)
    check(n.status()["revision"] == before + 1, "the txn wrote once")
