#!/usr/bin/env python3
"""watch_fanout: opens STREAMS watch streams on one etcd (POST /v3/watch, the
v3 JSON gateway) or raftkv (GET /watch/{key}?stream=true) endpoint, then one
writer PUTs the watched key RATE times a second; prints "p50_ms p99_ms" of
the time from the writer's acknowledgement to each stream's delivery (a
delivery that beats the acknowledgement counts as 0). Streams are spread over
several processes so the client is not the bottleneck on one core.
With --arrival kernel both ends are the kernel's receive timestamps
(SO_TIMESTAMPNS) of the writer's acknowledgement and of each delivery, so a
client process that is late to read (2 cores, 10 000 sockets) does not add
its own lag to the figure; the default (read) takes the clock when Python
reads.
Owns this measurement only; it must never write any other key, and it exits
non-zero when a stream cannot be opened or a delivery is missing."""
import argparse
import base64
import http.client
import json
import multiprocessing
import selectors
import socket
import struct
import sys
import time

KEY = "watch-fanout"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value, SCM_ = SO_


def watch_request(kind, host, port):
    if kind == "etcd":
        body = json.dumps({"create_request": {"key": base64.b64encode(KEY.encode()).decode()}})
        return ("POST /v3/watch HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n%s" % (host, port, len(body), body)).encode()
    return ("GET /watch/%s?stream=true HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (KEY, host, port)).encode()


class Stream:
    """One watch connection: HTTP headers, then chunked NDJSON lines."""

    def __init__(self, kind):
        self.kind = kind
        self.raw = b""
        self.headers_done = False
        self.chunked = False
        self.body = b""
        self.created = False

    def feed(self, data, now, seen):
        self.raw += data
        if not self.headers_done:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.raw[:end].decode("latin-1").lower()
            if not head.startswith("http/1.1 200"):
                raise RuntimeError("watch refused: " + head.splitlines()[0])
            self.chunked = "transfer-encoding: chunked" in head
            self.raw = self.raw[end + 4:]
            self.headers_done = True
        self.dechunk()
        while True:
            nl = self.body.find(b"\n")
            if nl < 0:
                return
            line, self.body = self.body[:nl], self.body[nl + 1:]
            if line.strip():
                self.line(json.loads(line), now, seen)

    def dechunk(self):
        if not self.chunked:
            self.body += self.raw
            self.raw = b""
            return
        while True:
            crlf = self.raw.find(b"\r\n")
            if crlf < 0:
                return
            size = int(self.raw[:crlf].split(b";")[0], 16)
            if len(self.raw) < crlf + 2 + size + 2:
                return
            self.body += self.raw[crlf + 2:crlf + 2 + size]
            self.raw = self.raw[crlf + 2 + size + 2:]

    def line(self, obj, now, seen):
        obj = obj.get("result", obj)
        if obj.get("created"):
            self.created = True
        for ev in obj.get("events") or []:
            kv = ev.get("kv", {})
            if self.kind == "etcd":
                value = base64.b64decode(kv.get("value", ""))
            elif "value_base64" in kv:
                value = base64.b64decode(kv["value_base64"])
            else:
                value = kv.get("value", "").encode()
            if value.startswith(b"w"):
                seen.append((int(value[1:9]), now))


def stamped_recv(sock, kernel):
    """recv, and the arrival time: the kernel's (realtime) or the reader's."""
    if not kernel:
        return sock.recv(65536), time.monotonic()
    data, anc, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16))
    for level, typ, raw in anc:
        if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(raw) >= 16:
            sec, nsec = struct.unpack("qq", raw[:16])
            return data, sec + nsec / 1e9
    return data, time.time()


def connect(host, port, kernel):
    s = socket.create_connection((host, port), timeout=10)
    if kernel:
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return s


def watcher(kind, endpoint, count, kernel, ready, stop, out):
    host, port = endpoint.split(":")
    port = int(port)
    sel = selectors.DefaultSelector()
    streams = []
    seen = []
    for _ in range(count):
        s = connect(host, port, kernel)
        s.sendall(watch_request(kind, host, port))
        s.setblocking(False)
        st = Stream(kind)
        streams.append(st)
        sel.register(s, selectors.EVENT_READ, st)
    signalled = False
    deadline = time.monotonic() + 30
    last_data = time.monotonic()
    # after stop, read on until the sockets have been quiet for a second:
    # what is still queued for a lagging client must not count as missing
    while not (stop.is_set() and time.monotonic() - last_data > 1.0):
        for key, _ in sel.select(timeout=0.05):
            data, at = stamped_recv(key.fileobj, kernel)
            if not data:
                raise RuntimeError("watch stream closed by the server")
            key.data.feed(data, at, seen)
            last_data = time.monotonic()
        if not signalled and all(st.created for st in streams):
            ready.release()
            signalled = True
        if not signalled and time.monotonic() > deadline:
            raise RuntimeError("watch streams not created within 30 s")
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    out.put(seen)


def put_request(kind, seq):
    value = ("w%08d" % seq).ljust(256, "v").encode()
    if kind == "etcd":  # v2 writes are invisible to v3 watches: use the v3 gateway
        body = json.dumps({"key": base64.b64encode(KEY.encode()).decode(),
                           "value": base64.b64encode(value).decode()}).encode()
        return "POST", "/v3/kv/put", body, {"Content-Type": "application/json"}
    return "PUT", "/" + KEY, value, {}


def ack_http(conn, req):
    """One write through http.client; the acknowledgement time is when the
    answer has been read."""
    method, path, body, headers = req
    conn.request(method, path, body, headers)
    resp = conn.getresponse()
    resp.read()
    if resp.status >= 300:
        raise RuntimeError("writer: HTTP %d" % resp.status)
    return time.monotonic()


def ack_kernel(sock, host, port, req):
    """One write on a raw keep-alive socket; the acknowledgement time is the
    kernel's arrival time of the answer's last bytes."""
    method, path, body, headers = req
    head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %d\r\n" % (method, path, host, port, len(body))
    head += "".join("%s: %s\r\n" % kv for kv in headers.items())
    sock.sendall(head.encode() + b"\r\n" + body)
    raw, need, at = b"", None, None
    while need is None or len(raw) < need:
        data, at = stamped_recv(sock, True)
        if not data:
            raise RuntimeError("writer: connection closed")
        raw += data
        end = raw.find(b"\r\n\r\n")
        if need is None and end >= 0:
            lines = raw[:end].decode("latin-1").lower().split("\r\n")
            status = int(lines[0].split()[1])
            if status >= 300:
                raise RuntimeError("writer: HTTP %d" % status)
            length = [int(x.split(":", 1)[1]) for x in lines[1:] if x.startswith("content-length:")]
            if not length and status not in (204, 304):
                raise RuntimeError("writer: an answer without Content-Length")
            need = end + 4 + (length[0] if length else 0)
    return at


def write(kind, endpoint, n, rate, kernel):
    host, port = endpoint.split(":")
    port = int(port)
    if kernel:
        sock = connect(host, port, True)
        ack, close = (lambda req: ack_kernel(sock, host, port, req)), sock.close
    else:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        ack, close = (lambda req: ack_http(conn, req)), conn.close
    acks = {}
    start = time.monotonic()
    for seq in range(n):
        at = start + seq / rate
        time.sleep(max(0.0, at - time.monotonic()))
        acks[seq] = ack(put_request(kind, seq))
    close()
    return acks


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("kind", choices=["etcd", "raftkv"])
    p.add_argument("endpoint", help="host:port of the node the streams (and the writer) use")
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--rate", type=float, default=20.0, help="writes per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--arrival", choices=["read", "kernel"], default="read",
                   help="when a byte counts as arrived: when Python reads it, or the kernel's receive time")
    args = p.parse_args()
    ready = multiprocessing.Semaphore(0)
    stop = multiprocessing.Event()
    out = multiprocessing.Queue()
    per = [args.streams // args.procs + (i < args.streams % args.procs) for i in range(args.procs)]
    procs = [multiprocessing.Process(target=watcher, args=(args.kind, args.endpoint, c, args.arrival == "kernel", ready, stop, out),
                                     daemon=True) for c in per]
    for pr in procs:
        pr.start()
    try:
        for pr in procs:
            if not ready.acquire(timeout=60):
                raise RuntimeError("watch streams were not all created")
        n = int(args.rate * args.seconds)
        acks = write(args.kind, args.endpoint, n, args.rate, args.arrival == "kernel")
        time.sleep(1.0)  # let the last deliveries arrive before stopping
    finally:
        stop.set()
    lat, delivered = [], 0
    for _ in procs:
        for seq, t in out.get(timeout=30):
            if seq in acks:
                lat.append(max(0.0, t - acks[seq]) * 1000)
                delivered += 1
    for pr in procs:
        pr.join(10)
    expected = n * args.streams
    if delivered < expected:
        print("watch_fanout: %d of %d deliveries missing" % (expected - delivered, expected),
              file=sys.stderr)
        sys.exit(1)
    print("%.2f %.2f" % (percentile(lat, 50), percentile(lat, 99)))


if __name__ == "__main__":
    main()
