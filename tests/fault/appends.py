"""appends: the workloads of non-idempotent operations, and their checkers.

append: clients append unique values to a few list keys (a/0, a/1, a/2)
through their members — a plain `PUT /kv/a/N` or a `POST /txn` whose
success branch puts it, half each. A key's history is its list, and its
version a counter: every application of an append adds one event and one
version, so an append applied twice (a re-proposed write run again) shows
as a value twice in the history, and one acknowledged but lost shows as a
value missing.
counter: clients increment counters (c/0, c/1, c/2) by read-modify-write:
read the counter "N tag" and its mod_revision, then a `POST /txn` that,
if the mod_revision is still the one read, puts "N+1 newtag" (else reads
it back). The counter's history must count 1, 2, 3, ... with no gap or
repeat, each tag once; so an acknowledged increment lost (or overwritten
by one built on a stale base) breaks the count, and an increment that ran
although its client was told it did not (the answer of a second run of
the same proposal, whose compare then fails) is an applied refusal.
No client retries in either; the server's own re-proposal across leader
changes is what this checks.

check_appends and check_counters (pure, proven in test_checkers.py; the
live reading path in test_e2e.py) fail on: an acknowledged operation
missing from the history, any value or tag in it twice, a failed or
refused one present, one nobody sent, a version that is not the
history's length; check_counters also on a count out of step.
Indeterminate operations (info) may be there once or not at all.
Must never: count an operation whose answer does not prove it
(history.py), or read a history from a member that has not converged.
"""

import json
import threading
import time
import urllib.parse

from history import call, read_until
from workloads import CLIENT_TIMEOUT, Workload

KEYS = 3


def key_history(node, key, deadline):
    """(values in revision order, version) of key on node, or (None, None)."""
    a = read_until(node.port, "/kv/" + key, deadline, ok=(200, 404))
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
        w = read_until(node.port, "/watch/%s?%s" % (key, q), deadline)
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


class _KeyHistories(Workload):
    """What both workloads share: KEYS keys under `prefix`, operations
    named `f`, and a check of each key's history read back from `lead`."""
    prefix = f = None

    def ops(self):
        return [o for o in self.history.ops if o["f"] == self.f]

    def check(self, lead):
        deadline = time.monotonic() + 60
        histories, versions = {}, {}
        for i in range(KEYS):
            key = "%s/%d" % (self.prefix, i)
            histories[key], versions[key] = key_history(lead, key, deadline)
        return self.checker(self.ops(), histories, versions)


class Appends(_KeyHistories):
    name, prefix, f = "append", "a", "append"
    checker = staticmethod(check_appends)

    def one_op(self, process, node, rng):
        key = "%s/%d" % (self.prefix, rng.randrange(KEYS))
        value = "%s-%d" % (process, rng.getrandbits(48))
        via_txn = rng.random() < 0.5
        op = self.history.invoke(process, "append", key, value, node=node.id, txn=via_txn)
        if via_txn:
            body = json.dumps({"success": [{"request_put": {"key": key, "value": value}}]})
            a = call(node.port, "POST", "/txn", body, timeout=CLIENT_TIMEOUT)
        else:
            a = call(node.port, "PUT", "/kv/" + key, value, timeout=CLIENT_TIMEOUT)
        self.history.complete(op, a.outcome(), status=a.status)



def _parse_count(value):
    """"N tag" -> (N, tag), or None."""
    parts = (value or "").split(" ")
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1]


def check_counters(ops, histories, versions):
    """ops: the increment operations (value: the tag; ok ones carry
    succeeded); histories: {key: ["N tag" in revision order]} (None:
    unreadable); versions: {key: the key's final version}."""
    by_key = {}
    for op in ops:
        by_key.setdefault(op["key"], []).append(op)
    counts = {"acknowledged": 0, "refused": 0, "indeterminate": 0, "increments": 0}
    for key, kops in sorted(by_key.items()):
        hist = histories.get(key)
        if hist is None:
            return {"valid": None, "reason": "counter: the history of %s could not be read" % key}
        kind = {}
        for op in kops:
            if op["type"] == "ok" and op.get("succeeded"):
                k = "acknowledged"
            elif op["type"] in ("ok", "fail"):
                k = "refused"
            else:
                k = "indeterminate"
            kind[op["value"]] = k
            counts[k] += 1
        seen = {}
        for pos, value in enumerate(hist, 1):
            parsed = _parse_count(value)
            if parsed is None:
                return {"valid": False, "reason": "counter: %s holds %r, which no increment writes"
                        % (key, value)}
            n, tag = parsed
            if tag in seen:
                return {"valid": False, "reason": "counter: %s holds the increment %s twice, "
                        "at %d and %d (applied twice)" % (key, tag, seen[tag], pos)}
            seen[tag] = pos
            if n != pos:
                return {"valid": False, "reason": "counter: write %d of %s counts %d (%s): "
                        "an increment %s" % (pos, key, n, tag,
                                             "lost" if n < pos else "counted twice")}
            if tag not in kind:
                return {"valid": False, "reason": "counter: %s in %s was never sent" % (tag, key)}
            if kind[tag] == "refused":
                return {"valid": False, "reason": "counter: %s was refused but is write %d of %s "
                        "(applied, answered by another run)" % (tag, pos, key)}
        lost = sorted(t for t, k in kind.items() if k == "acknowledged" and t not in seen)
        if lost:
            return {"valid": False, "reason": "counter: %d acknowledged increments of %s lost, "
                    "e.g. %s" % (len(lost), key, lost[0])}
        if versions.get(key) != len(hist):
            return {"valid": False, "reason": "counter: %s is at version %s after %d increments"
                    % (key, versions.get(key), len(hist))}
        counts["increments"] += len(hist)
    return dict(valid=True, reason="", **counts)


class Counter(_KeyHistories):
    name, prefix, f = "counter", "c", "incr"
    checker = staticmethod(check_counters)

    def one_op(self, process, node, rng):
        key = "%s/%d" % (self.prefix, rng.randrange(KEYS))
        a = call(node.port, "GET", "/kv/" + key, timeout=CLIENT_TIMEOUT)
        body = a.json() if a.status in (200, 404) else None
        if body is None or (a.status == 404 and body.get("reason") != "key_not_found"):
            return   # no base to count from: nothing is sent
        kvs = body.get("kvs") or []
        base = _parse_count(kvs[0].get("value")) if kvs else (0, "")
        if base is None:
            return   # the checker reports what this key holds
        mod = kvs[0]["mod_revision"] if kvs else 0
        tag = "%s-%d" % (process, rng.getrandbits(48))
        op = self.history.invoke(process, "incr", key, tag, node=node.id, count=base[0] + 1)
        txn = {"compare": [{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": mod}],
               "success": [{"request_put": {"key": key, "value": "%d %s" % (base[0] + 1, tag)}}],
               "failure": [{"request_range": {"key": key}}]}
        a = call(node.port, "POST", "/txn", json.dumps(txn), timeout=CLIENT_TIMEOUT)
        out = a.outcome()
        body = a.json() if out == "ok" else None
        if out == "ok" and (body is None or "succeeded" not in body):
            out = "info"   # an answer we cannot read proves nothing
        if out != "ok":
            return self.history.complete(op, out, status=a.status)
        fields = {"succeeded": bool(body["succeeded"])}
        if not body["succeeded"]:   # what the counter held instead: for the record
            try:
                fields["now"] = body["responses"][0]["response_range"]["kvs"][0]["value"]
            except (KeyError, IndexError, TypeError):
                pass
        self.history.complete(op, "ok", **fields)
