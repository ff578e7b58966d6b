"""history: the record of every client operation of a run, and the HTTP call
that classifies an answer as ok / fail / info.

An operation is a dict {id, process, f, key, value, type, invoke, complete,
...}: `invoke` and `complete` are positions in one global event counter
taken before the request is sent and after the answer is read, so real-time
order between operations is exact. type is "ok" (happened), "fail"
(definitely did not happen) or "info" (may or may not have happened).
Must never: guess an outcome — a request that may have reached the server
is info unless the answer proves otherwise.
"""

import http.client
import json
import socket
import threading
import time

from cluster import harness

INFO_STATUSES = (500, 502, 503, 504)


class History:
    def __init__(self):
        self._lock = threading.Lock()
        self._clock = 0
        self.ops = []

    def _tick(self):
        with self._lock:
            self._clock += 1
            return self._clock

    def invoke(self, process, f, key, value=None, **extra):
        op = {"id": None, "process": process, "f": f, "key": key, "value": value,
              "type": "invoke", "invoke": self._tick(), "complete": None}
        op.update(extra)
        with self._lock:
            op["id"] = len(self.ops)
            self.ops.append(op)
        return op

    def complete(self, op, typ, **fields):
        op.update(fields)
        op["type"] = typ
        op["complete"] = self._tick()
        return op

    def close_pending(self):
        """Marks the operations still in flight when the run is checked
        (a client thread outlived its join) as info: their outcome is
        unknown, as a timeout's, never "not sent". Returns how many."""
        with self._lock:
            pending = [op for op in self.ops if op["type"] == "invoke"]
        for op in pending:
            self.complete(op, "info", pending=True)
        return len(pending)

    def dump(self, path):
        with open(path, "w") as f:
            for op in self.ops:
                f.write(json.dumps(op, sort_keys=True) + "\n")

    def counts(self):
        """{(f, type): n}"""
        out = {}
        for op in self.ops:
            k = (op["f"], op["type"])
            out[k] = out.get(k, 0) + 1
        return out


class Answer:
    """What one HTTP call came to: status (None if no answer), body, and
    whether the request may have reached the server."""

    def __init__(self, status=None, body=b"", sent=False, error=None):
        self.status = status
        self.body = body
        self.sent = sent
        self.error = error

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:
            return None

    def outcome(self):
        """"fail" only when it certainly did not happen: never sent, or a
        4xx refusal; "info" for no answer or a 5xx (503 no_leader/timeout
        may have been proposed)."""
        if self.status is None:
            return "info" if self.sent else "fail"
        if self.status in INFO_STATUSES or self.status >= 500:
            return "info"
        return "ok" if self.status < 300 else "fail"

    def __repr__(self):
        return "<%s %r %s>" % (self.status, self.body[:80], self.error or "")


def read_until(port, path, deadline, ok=(200,), timeout=10.0):
    """A read (GET) asked again until its answer's status is in ok or the
    deadline (time.monotonic()) passes; the last answer. For the checks'
    final reads only: they run once the cluster has converged, but a
    member may still be finishing an election or catching up, and one
    refused or timed-out read must not make a whole run uncheckable."""
    while True:
        a = call(port, "GET", path, timeout=timeout)
        if a.status in ok or time.monotonic() >= deadline:
            return a
        time.sleep(0.2)  # a retry pause, not a wait for a condition


def call(port, method, path, body=None, timeout=3.0, host="127.0.0.1"):
    """One request on a fresh connection. A failure to connect is "not
    sent"; anything after the connection is up counts as sent."""
    conn = harness.http_connection(port, timeout, host)
    try:
        try:
            conn.connect()
        except OSError as e:
            return Answer(sent=False, error=type(e).__name__)
        if isinstance(body, str):
            body = body.encode()
        try:
            conn.request(method, path, body=body)
            r = conn.getresponse()
            return Answer(r.status, r.read(), True)
        except (OSError, http.client.HTTPException, socket.timeout) as e:
            return Answer(sent=True, error=type(e).__name__)
    finally:
        conn.close()
