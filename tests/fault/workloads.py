"""workloads: the concurrent clients of a fault run and their final reads.

register: a few keys (rotated to fresh ones every ROTATE ops so each key's
  history stays small enough to search), read / write / compare-and-set
  (POST /txn with a VALUE compare) from many clients spread over all nodes;
  every written value is unique.
set: clients add unique elements (one key per element under a prefix); at
  the end every node is read locally.
Every client records invoke + ok/fail/info in the shared History.
Must never: record an outcome the answer does not prove (see history.py),
or run a client without a bound (every request has a timeout and the loop
ends when `stop` is set).
"""

import json
import random
import threading
import time
import urllib.parse

from history import call, read_until

CLIENT_TIMEOUT = 2.5
ROTATE = 120


def _q(key):
    return urllib.parse.quote(key, safe="")


class Workload:
    name = "?"

    def __init__(self, cluster, history, seed, clients):
        self.cluster = cluster
        self.history = history
        self.seed = seed
        self.clients = clients
        self.threads = []
        self.result = None

    def start(self, stop):
        for i in range(self.clients):
            rng = random.Random("%s-%s-%d" % (self.seed, self.name, i))
            t = threading.Thread(target=self._loop, args=(i, rng, stop),
                                 name="%s-%d" % (self.name, i), daemon=True)
            t.start()
            self.threads.append(t)

    def join(self):
        for t in self.threads:
            t.join(CLIENT_TIMEOUT * 4)

    def _loop(self, i, rng, stop):
        process = "%s%d" % (self.name[0], i)
        while not stop.is_set():
            self.one_op(process, self.cluster.client_node(i), rng)
            stop.wait(0.005 + rng.random() * 0.01)   # pacing, not waiting


class Register(Workload):
    name = "register"

    def __init__(self, cluster, history, seed, clients, serializable=False, keys=3):
        super().__init__(cluster, history, seed, clients)
        self.serializable = serializable
        self.lock = threading.Lock()
        self.slots = [{"gen": 0, "ops": 0, "last": None} for _ in range(keys)]

    def _pick_key(self, rng):
        with self.lock:
            slot = self.slots[rng.randrange(len(self.slots))]
            if slot["ops"] >= ROTATE:
                slot.update(gen=slot["gen"] + 1, ops=0, last=None)
            slot["ops"] += 1
            key = "reg/%d.%d" % (self.slots.index(slot), slot["gen"])
            return key, slot

    def one_op(self, process, node, rng):
        key, slot = self._pick_key(rng)
        x = rng.random()
        if x < 0.45:
            self.read(process, node, key, slot)
        elif x < 0.8 or slot["last"] is None:
            self.write(process, node, key, slot, "%s-%d" % (process, rng.getrandbits(40)))
        else:
            self.cas(process, node, key, slot, slot["last"],
                     "%s-%d" % (process, rng.getrandbits(40)))

    def read(self, process, node, key, slot=None):
        op = self.history.invoke(process, "read", key, node=node.id)
        path = "/kv/" + _q(key) + ("?serializable=true" if self.serializable else "")
        a = call(node.port, "GET", path, timeout=CLIENT_TIMEOUT)
        body = a.json() if a.status in (200, 404) else None
        # the revision the node read at: what a stale read is diagnosed by
        rev = (body or {}).get("header", {}).get("revision")
        if a.status == 404 and (body or {}).get("reason", "key_not_found") == "key_not_found":
            return self.history.complete(op, "ok", value=None, revision=rev)
        if body is None or not body.get("kvs"):
            return self.history.complete(op, "info" if a.outcome() != "fail" else "fail",
                                         status=a.status)
        value = body["kvs"][0].get("value")
        if slot is not None:
            slot["last"] = value
        return self.history.complete(op, "ok", value=value, revision=rev)

    def write(self, process, node, key, slot, value):
        op = self.history.invoke(process, "write", key, value, node=node.id)
        a = call(node.port, "PUT", "/kv/" + _q(key), value, timeout=CLIENT_TIMEOUT)
        if a.outcome() == "ok" and slot is not None:
            slot["last"] = value
        return self.history.complete(op, a.outcome(), status=a.status)

    def cas(self, process, node, key, slot, old, new):
        op = self.history.invoke(process, "cas", key, [old, new], node=node.id)
        txn = {"compare": [{"key": key, "target": "VALUE", "result": "EQUAL", "value": old}],
               "success": [{"request_put": {"key": key, "value": new}}], "failure": []}
        a = call(node.port, "POST", "/txn", json.dumps(txn), timeout=CLIENT_TIMEOUT)
        out = a.outcome()
        body = a.json() if out == "ok" else None
        if out == "ok" and (body is None or "succeeded" not in body):
            out = "info"   # an answer we cannot read proves nothing
        if out == "ok":
            if body["succeeded"] and slot is not None:
                slot["last"] = new
            return self.history.complete(op, "ok", succeeded=bool(body["succeeded"]))
        return self.history.complete(op, out, status=a.status)

    def ops(self):
        return [o for o in self.history.ops if o["f"] in ("read", "write", "cas")]


class Set(Workload):
    name = "set"

    def __init__(self, cluster, history, seed, clients):
        super().__init__(cluster, history, seed, clients)
        self.next = 0
        self.lock = threading.Lock()
        self.reads = {}

    def one_op(self, process, node, rng):
        with self.lock:
            elem = self.next
            self.next += 1
        op = self.history.invoke(process, "add", "set", elem, node=node.id)
        a = call(node.port, "PUT", "/kv/set/%08d" % elem, str(elem), timeout=CLIENT_TIMEOUT)
        self.history.complete(op, a.outcome(), status=a.status)

    def final_reads(self):
        """Each node's local view (the cluster has converged)."""
        deadline = time.monotonic() + 30
        for node in self.cluster.nodes:
            a = read_until(node.port, "/kv/set/?prefix=true&serializable=true", deadline)
            body = a.json() if a.status == 200 else None
            if body is None or body.get("more"):
                self.reads[repr(node)] = None
                continue
            self.reads[repr(node)] = {int(kv["value"]) for kv in body.get("kvs", [])}
        return self.reads

    def ops(self):
        return [o for o in self.history.ops if o["f"] == "add"]
