"""appends: a workload of non-idempotent operations, and its checker.

Clients append unique values to a few list keys (a/0, a/1, a/2) through
random members — a plain `PUT /kv/a/N` or a `POST /txn` whose success
branch puts it, half each. A key's history is its list, and its version a
counter: every application of an append adds one event and one version,
so an append applied twice (a re-proposed write run again) shows as a value
twice in the history, and one acknowledged but lost shows as a value
missing. No client retries; the server's own re-proposal across leader
changes is what this checks.

check_appends (pure, proven in test_checkers.py) fails on: an acknowledged
append missing from the history, any value in it twice, a failed append
present, a value nobody sent, a version that is not the history's length.
Indeterminate appends (info) may be there once or not at all.
Must never: count an append whose answer does not prove it (history.py),
or read the history from a member that has not converged.
"""

import json
import threading
import time
import urllib.parse

from history import call
from workloads import CLIENT_TIMEOUT, Workload

KEYS = 3


def check_appends(ops, histories, versions):
    """ops: the append operations; histories: {key: [values in revision
    order]} (None: unreadable); versions: {key: the key's final version}."""
    by_key = {}
    for op in ops:
        by_key.setdefault(op["key"], []).append(op)
    counts = {"ok": 0, "info": 0, "fail": 0}
    for key, kops in sorted(by_key.items()):
        hist = histories.get(key)
        if hist is None:
            return {"valid": None, "reason": "append: the history of %s could not be read" % key}
        seen = {}
        for v in hist:
            seen[v] = seen.get(v, 0) + 1
        twice = sorted(v for v, c in seen.items() if c > 1)
        if twice:
            return {"valid": False, "reason": "append: %s holds %s %d times (applied twice)"
                    % (key, twice[0], seen[twice[0]])}
        typ = {op["value"]: op["type"] for op in kops}
        for op in kops:
            counts[op["type"]] = counts.get(op["type"], 0) + 1
        lost = sorted(v for v, t in typ.items() if t == "ok" and v not in seen)
        if lost:
            return {"valid": False, "reason": "append: %d acknowledged appends to %s lost, e.g. %s"
                    % (len(lost), key, lost[0])}
        failed = sorted(v for v, t in typ.items() if t == "fail" and v in seen)
        if failed:
            return {"valid": False, "reason": "append: %s failed but is in %s" % (failed[0], key)}
        phantom = sorted(v for v in seen if v not in typ)
        if phantom:
            return {"valid": False, "reason": "append: %s in %s was never sent" % (phantom[0], key)}
        if versions.get(key) != len(hist):
            return {"valid": False, "reason": "append: %s is at version %s with %d values"
                    % (key, versions.get(key), len(hist))}
    return {"valid": True, "reason": "", "acknowledged": counts["ok"],
            "indeterminate": counts["info"], "failed": counts["fail"]}


class Appends(Workload):
    name = "append"

    def __init__(self, cluster, history, seed, clients):
        super().__init__(cluster, history, seed, clients)
        self.start_rev = None

    def one_op(self, process, node, rng):
        key = "a/%d" % rng.randrange(KEYS)
        value = "%s-%d" % (process, rng.getrandbits(48))
        via_txn = rng.random() < 0.5
        op = self.history.invoke(process, "append", key, value, node=node.id, txn=via_txn)
        if via_txn:
            body = json.dumps({"success": [{"request_put": {"key": key, "value": value}}]})
            a = call(node.port, "POST", "/txn", body, timeout=CLIENT_TIMEOUT)
        else:
            a = call(node.port, "PUT", "/kv/" + key, value, timeout=CLIENT_TIMEOUT)
        self.history.complete(op, a.outcome(), status=a.status)

    def ops(self):
        return [o for o in self.history.ops if o["f"] == "append"]

    def _history(self, node, key, deadline):
        """(values in revision order, version) of key on node, or (None, None)."""
        a = call(node.port, "GET", "/kv/" + key, timeout=10)
        body = a.json() if a.status in (200, 404) else None
        if body is None:
            return None, None
        kvs = body.get("kvs") or []
        version = kvs[0]["version"] if kvs else 0
        end = kvs[0]["mod_revision"] if kvs else 0
        values, cursor = [], 1
        while cursor <= end:
            if time.monotonic() > deadline:
                return None, None
            q = urllib.parse.urlencode({"start_revision": cursor, "timeout": 1})
            w = call(node.port, "GET", "/watch/%s?%s" % (key, q), timeout=10)
            wb = w.json() if w.status == 200 else None
            if wb is None:
                return None, None
            for ev in wb.get("events", []):
                kv = ev.get("kv", {})
                if ev.get("type") == "PUT" and kv.get("mod_revision", 0) <= end:
                    values.append(kv.get("value"))
            nxt = wb.get("next_revision")
            if not isinstance(nxt, int) or nxt <= cursor:
                return None, None
            cursor = nxt
        return values, version

    def check(self, lead):
        deadline = time.monotonic() + 60
        histories, versions = {}, {}
        for i in range(KEYS):
            key = "a/%d" % i
            histories[key], versions[key] = self._history(lead, key, deadline)
        return check_appends(self.ops(), histories, versions)
