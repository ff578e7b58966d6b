"""leaselib: helpers shared by the lease, lock, election and recipe cluster
tests — a fast-timeout cluster (so the minimum lease TTL is 1 s), JSON
requests, lease grant/keepalive, and a keepalive thread. Must never sleep
in place of a condition: waits poll with a deadline (harness.wait_for)."""

import http.client
import json
import threading
import time

from harness import check, wait_for

# heartbeat 50 ms, election 300 ms: minimum TTL = ceil(3 * 0.3 s) = 1 s
FAST = ["--heartbeat-ms", "50", "--election-ms", "300"]
ELECTION_S = 0.3


def fast_cluster(env, n=3):
    return env.cluster(n, extra=FAST)


def jreq(node, method, path, body=None, timeout=10):
    """(status, parsed JSON or None). body: a dict (sent as JSON) or bytes."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    r = node.request(method, path, body, timeout=timeout)
    try:
        return r.status, r.json()
    except ValueError:
        return r.status, None


def jreq_retry(node, method, path, body=None, timeout=30, ok=(200,)):
    """Retries while the cluster has no leader (503 or no answer)."""
    last = ["nothing"]

    def attempt():
        try:
            st, js = jreq(node, method, path, body, timeout=5)
        except (OSError, http.client.HTTPException) as e:
            last[0] = repr(e)
            return None
        last[0] = (st, js)
        if st == 503:
            return None
        return (st, js)
    try:
        st, js = wait_for(attempt, timeout, "%s %s on %s" % (method, path, node))
    except AssertionError as e:
        raise AssertionError("%s (last: %s)" % (e, last[0])) from None
    check(st in ok, "%s %s on %s: %s %s" % (method, path, node, st, js))
    return js


def grant(node, ttl, lease_id=None):
    body = {"ttl": ttl}
    if lease_id is not None:
        body["id"] = lease_id
    js = jreq_retry(node, "POST", "/lease", body)
    check(isinstance(js.get("id"), int) and 0 < js["id"] < 2 ** 53, "lease id: %s" % js)
    return js["id"], js["ttl"]


def keepalive(node, lease_id, timeout=5):
    st, js = jreq(node, "POST", "/lease/%d/keepalive" % lease_id, timeout=timeout)
    return st, js


def put(node, key, value, lease=None, timeout=10):
    path = "/kv/" + key + ("?lease=%d" % lease if lease else "")
    r = node.request("PUT", path, value, timeout=timeout)
    return r.status, r


def exists(node, key):
    r = node.request("GET", "/kv/" + key)
    check(r.status in (200, 404), "GET /kv/%s on %s: %r" % (key, node, r))
    return r.status == 200


def revision(node):
    return node.status()["revision"]


class KeepAlive:
    """Keeps a lease alive from a thread through the given nodes (round
    robin, skipping dead ones) every `every` seconds until stop(). Like a
    real client, it gives up on a request well within the TTL and tries
    the next node: a keepalive proposed to a leader that then died is only
    answered at the server's request timeout."""

    def __init__(self, nodes, lease_id, every):
        self.nodes = nodes
        self.id = lease_id
        self.every = every
        self.stopped = threading.Event()
        self.errors = []
        self.ok = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        i = 0
        while not self.stopped.is_set():
            node = self.nodes[i % len(self.nodes)]
            i += 1
            if node.alive():
                try:
                    st, js = keepalive(node, self.id, timeout=2 * self.every + 0.2)
                    if st == 200:
                        self.ok += 1
                    elif st == 404:
                        self.errors.append("keepalive: lease %d not found" % self.id)
                        return
                except (OSError, http.client.HTTPException):
                    pass  # a dead or electing node: try the next one
            self.stopped.wait(self.every)

    def stop(self):
        self.stopped.set()
        self.thread.join(15)


def monotonic():
    return time.monotonic()
