"""kvclient: small helpers over the native JSON API (docs/API.md sections 2-4)
for the MVCC, txn and compaction cluster tests.

Owns: URL building (keys and query values percent-encoded, bytes allowed),
JSON request/answer checks, decoding key/key_base64 and value/value_base64,
and the "same state on every node" comparison. Must never retry a request
(every read here is meant to be exact) and never hide a status code: each
helper checks the one it expects and fails naming the request.
"""

import base64
import json
import urllib.parse

from harness import check


def pct(data):
    """Percent-encodes str or bytes for a path segment or query value."""
    if isinstance(data, str):
        data = data.encode()
    return urllib.parse.quote(data, safe="")


def kv_path(key, **params):
    """/kv/{key}?name=value...; True/False become true/false, bytes and
    strings are percent-encoded, None drops the parameter."""
    q = []
    for name, v in params.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        q.append("%s=%s" % (name, pct(v) if isinstance(v, (str, bytes)) else v))
    return "/kv/" + pct(key) + ("?" + "&".join(q) if q else "")


def call(node, method, path, body=None, expect=200):
    """One request; checks the status and returns the parsed JSON (or None
    for an empty body)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    r = node.request(method, path, body)
    check(r.status == expect, "%s %s on %s: expected %d, got %d %r"
          % (method, path[:120], node, expect, r.status, r.body[:300]))
    if not r.body:
        return None
    doc = r.json()
    if r.status != 204:
        check("header" in doc, "%s %s: answer has no header: %r" % (method, path[:120], doc))
    return doc


def put(node, key, value, expect=200, **params):
    return call(node, "PUT", kv_path(key, **params), value, expect)


def get(node, key, expect=200, **params):
    return call(node, "GET", kv_path(key, **params), None, expect)


def delete(node, key, expect=200, **params):
    return call(node, "DELETE", kv_path(key, **params), None, expect)


def txn(node, doc, expect=200):
    return call(node, "POST", "/txn", doc, expect)


def compact(node, rev, expect=200):
    return call(node, "POST", "/compact", {"revision": rev}, expect)


def rev_of(doc):
    return doc["header"]["revision"]


def revision(node):
    """The node's current revision from a linearizable read (a barrier:
    afterwards the node has applied everything acknowledged before)."""
    return rev_of(call(node, "GET", "/kv/?range_end=%00&count_only=true"))


def field(obj, name):
    """obj[name] as bytes, whichever of name / name_base64 is present."""
    if name in obj:
        return obj[name].encode()
    check(name + "_base64" in obj, "no %s or %s_base64 in %r" % (name, name, obj))
    return base64.b64decode(obj[name + "_base64"], validate=True)


def meta(kv):
    """(key, create_revision, mod_revision, version, lease): what must be
    identical on every node."""
    return (field(kv, "key"), kv["create_revision"], kv["mod_revision"],
            kv["version"], kv["lease"])


def one(doc):
    """The single kv of a single-key GET answer."""
    check(doc["count"] == 1 and len(doc["kvs"]) == 1, "expected one kv: %r" % doc)
    return doc["kvs"][0]


def local_state(node):
    """(revision, [meta of every key], {key: value}) read serializably,
    i.e. exactly what this node has applied."""
    doc = call(node, "GET", "/kv/?range_end=%00&serializable=true")
    kvs = doc["kvs"]
    check(doc["count"] == len(kvs) and not doc["more"], "whole range cut: %r" % doc)
    return rev_of(doc), [meta(k) for k in kvs], {field(k, "key"): field(k, "value") for k in kvs}


def check_same_state(nodes, what):
    """After a linearizable barrier on every node, every node's local state
    (revision, each key's create/mod revision, version, lease and value) is
    the same. Returns the common state."""
    for n in nodes:
        revision(n)
    states = [(n, local_state(n)) for n in nodes]
    first_node, first = states[0]
    for n, st in states[1:]:
        check(st[0] == first[0], "%s: revision %d on %s but %d on %s"
              % (what, st[0], n, first[0], first_node))
        diff = [(a, b) for a, b in zip(st[1], first[1]) if a != b][:3]
        check(st[1] == first[1], "%s: key metadata differs between %s and %s (%d vs %d keys): %r"
              % (what, n, first_node, len(st[1]), len(first[1]), diff))
        check(st[2] == first[2], "%s: values differ between %s and %s" % (what, n, first_node))
    return first


def check_error(doc, reason, names=None):
    """A JSON error answer with this reason whose message names `names`."""
    check(doc.get("reason") == reason, "expected reason %r: %r" % (reason, doc))
    check(isinstance(doc.get("error"), str) and doc["error"], "error message missing: %r" % doc)
    if names:
        check(names in doc["error"], "error %r does not name %r" % (doc["error"], names))
