"""leases: the lock and lease-expiry workloads of a fault run.

lock: clients grant a short lease, take the server-side lock fl (POST
  /lock/fl?timeout=), then do a fenced write — a txn that sets fence/last to
  their token only if their owner key still has that create revision and
  fence/last holds a smaller token — and unlock. The checker: every granted
  token is unique; an acquisition that began after another ended has the
  greater token; fenced writes that committed did so in token order.
lease: clients grant a short lease, attach a key to it, keep it alive a
  few times and abandon it (or revoke it). Once the faults heal, every
  lease must expire and take its keys with it, on every node: no lease
  survives its TTL for long, and no key outlives its lease.
Must never: record an outcome the answer does not prove (history.py), or
wait without a deadline.
"""

import json
import time

from history import call
from workloads import CLIENT_TIMEOUT, Workload

TTL = 2          # seconds; the fault cluster's minimum (3 x --election-ms 500)
LOCK_WAIT = 3    # ?timeout for POST /lock


def _json_ok(a):
    return a.json() if a.status == 200 else None


class Lock(Workload):
    name = "lock"

    def start(self, stop):
        # a VALUE compare on a missing key is false: start the resource at 0
        node = self.cluster.nodes[0]
        deadline = time.monotonic() + 30
        while call(node.port, "PUT", "/kv/fence/last", "%020d" % 0, timeout=5).status != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("lock workload: cannot initialise fence/last")
            time.sleep(0.2)   # the cluster has just started: retry with a deadline
        super().start(stop)

    def one_op(self, process, node, rng):
        g = _json_ok(call(node.port, "POST", "/lease", json.dumps({"ttl": TTL}),
                          timeout=CLIENT_TIMEOUT))
        if g is None:
            return
        lease = g["id"]
        op = self.history.invoke(process, "acquire", "fl", lease, node=node.id)
        a = call(node.port, "POST", "/lock/fl?timeout=%d" % LOCK_WAIT,
                 json.dumps({"lease": lease}), timeout=LOCK_WAIT + CLIENT_TIMEOUT)
        body = _json_ok(a)
        if body is None:
            self.history.complete(op, a.outcome() if a.status != 200 else "info", status=a.status)
        else:
            self.history.complete(op, "ok", token=body["revision"], owner=body["key"])
            self.fenced_write(process, node, body["key"], body["revision"])
            call(node.port, "DELETE", "/lock/" + body["key"], timeout=CLIENT_TIMEOUT)
        call(node.port, "DELETE", "/lease/%d" % lease, timeout=CLIENT_TIMEOUT)

    def fenced_write(self, process, node, owner, token):
        padded = "%020d" % token
        txn = {"compare": [{"key": owner, "target": "CREATE", "result": "EQUAL",
                            "create_revision": token},
                           {"key": "fence/last", "target": "VALUE", "result": "LESS",
                            "value": padded}],
               "success": [{"request_put": {"key": "fence/last", "value": padded}}]}
        op = self.history.invoke(process, "fenced", "fence/last", token, node=node.id)
        a = call(node.port, "POST", "/txn", json.dumps(txn), timeout=CLIENT_TIMEOUT)
        body = _json_ok(a)
        if body is None or "succeeded" not in body:
            self.history.complete(op, a.outcome() if a.status != 200 else "info", status=a.status)
        else:
            self.history.complete(op, "ok", succeeded=body["succeeded"],
                                  revision=body["header"]["revision"])

    def check(self, lead):
        acq = [o for o in self.history.ops if o["f"] == "acquire" and o["type"] == "ok"]
        tokens = [o["token"] for o in acq]
        if len(set(tokens)) != len(tokens):
            return {"valid": False, "reason": "lock: a fencing token was granted twice"}
        by_end = sorted(acq, key=lambda o: o["complete"])
        for a in by_end:
            for b in acq:
                if b["invoke"] > a["complete"] and b["token"] <= a["token"]:
                    return {"valid": False, "reason": "lock: acquisition %d (token %d) began "
                            "after %d (token %d) ended" % (b["id"], b["token"], a["id"], a["token"])}
        writes = sorted((o["revision"], o["value"]) for o in self.history.ops
                        if o["f"] == "fenced" and o["type"] == "ok" and o["succeeded"])
        for (r1, t1), (r2, t2) in zip(writes, writes[1:]):
            if t2 <= t1:
                return {"valid": False, "reason": "lock: fenced writes out of token order "
                        "(%d at revision %d, then %d at %d)" % (t1, r1, t2, r2)}
        return {"valid": True, "reason": "", "acquired": len(acq), "fenced_writes": len(writes)}


class LeaseExpiry(Workload):
    name = "lease"

    def one_op(self, process, node, rng):
        g = _json_ok(call(node.port, "POST", "/lease", json.dumps({"ttl": TTL}),
                          timeout=CLIENT_TIMEOUT))
        if g is None:
            return
        lease, key = g["id"], "lx/%s-%x" % (process, g["id"])
        op = self.history.invoke(process, "attach", key, lease, node=node.id)
        a = call(node.port, "PUT", "/kv/%s?lease=%d" % (key, lease), "v", timeout=CLIENT_TIMEOUT)
        self.history.complete(op, a.outcome(), status=a.status)
        for _ in range(rng.randrange(4)):
            time.sleep(TTL / 4)   # keepalive pacing: the op is keeping a lease, not waiting
            call(node.port, "POST", "/lease/%d/keepalive" % lease, timeout=CLIENT_TIMEOUT)
        if rng.random() < 0.3:
            call(node.port, "DELETE", "/lease/%d" % lease, timeout=CLIENT_TIMEOUT)
        # otherwise abandoned: it must expire by itself

    def _left(self):
        """Per node: (leases, keys under lx/) still there, or None if unreadable."""
        out = {}
        for x in self.cluster.nodes:
            ls = _json_ok(call(x.port, "GET", "/lease", timeout=5))
            kv = _json_ok(call(x.port, "GET", "/kv/lx/?prefix=true&serializable=true", timeout=5))
            out[repr(x)] = None if ls is None or kv is None else (
                len(ls["leases"]), [k["key"] for k in kv["kvs"]])
        return out

    def check(self, lead, timeout=60):
        attached = sum(1 for o in self.history.ops if o["f"] == "attach" and o["type"] == "ok")
        deadline = time.monotonic() + timeout
        left = self._left()
        while time.monotonic() < deadline:
            if all(v == (0, []) for v in left.values()):
                return {"valid": True, "reason": "", "attached": attached}
            time.sleep(0.5)   # polling the cluster's state, with a deadline
            left = self._left()
        return {"valid": False, "reason": "lease: %ds after healing, leases/keys remain: %s"
                % (timeout, left)}
