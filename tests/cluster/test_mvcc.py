"""MVCC through the native API on real processes (docs/API.md section 2):
revision and version bookkeeping, ?rev reads (past, compacted, future),
range parameters, binary keys and values, raw reads, serializable reads,
and one revision per write on every node. Owns no helpers (kvclient.py
has them); must never retry a read, so a stale answer fails the test."""

import base64

from harness import check
from kvclient import (call, check_error, check_same_state, compact, delete, field, get,
                      kv_path, meta, one, put, rev_of, revision)


def test_mvcc_put_put_delete_put_bookkeeping(env):
    n1, n2, n3 = env.cluster(3)
    r0 = revision(n1)
    r1 = rev_of(put(n1, "k", "v1"))
    r2 = rev_of(put(n2, "k", "v2"))
    d = delete(n3, "k", prev_kv=True)
    r3 = rev_of(d)
    r4 = rev_of(put(n1, "k", "v4"))
    check([r1, r2, r3, r4] == [r0 + 1, r0 + 2, r0 + 3, r0 + 4],
          "each write is one revision: %r after %d" % ([r1, r2, r3, r4], r0))
    check(d["deleted"] == 1 and meta(d["prev_kvs"][0])[1:] == (r1, r2, 2, 0),
          "delete's prev_kv: %r" % d)
    # After the delete the key starts over: new create_revision, version 1.
    for n in (n1, n2, n3):
        kv = one(get(n, "k"))
        check(meta(kv) == (b"k", r4, r4, 1, 0) and kv["value"] == "v4",
              "latest k on %s: %r" % (n, kv))
    history = {r1: (r1, r1, 1, "v1"), r2: (r1, r2, 2, "v2"), r4: (r4, r4, 1, "v4")}
    for rev, (cr, mr, ver, val) in history.items():
        kv = one(get(n2, "k", rev=rev))
        check((kv["create_revision"], kv["mod_revision"], kv["version"], kv["value"])
              == (cr, mr, ver, val), "k at rev %d: %r" % (rev, kv))
    gone = get(n3, "k", expect=404, rev=r3)
    check_error(gone, "key_not_found")
    check(rev_of(gone) == r4, "a 404 still has the current header: %r" % gone)
    get(n1, "k", expect=404, rev=r0)
    future = get(n1, "k", expect=400, rev=r4 + 1)
    check_error(future, "future_revision", "revision")
    compact(n1, r2)
    old = get(n2, "k", expect=410, rev=r1)
    check_error(old, "compacted")
    check(old.get("compact_revision") == r2, "410 names compact_revision %d: %r" % (r2, old))
    check(one(get(n2, "k", rev=r2))["value"] == "v2", "read at the compact revision itself")


def test_mvcc_range_parameters(env):
    n1, n2, n3 = env.cluster(3)
    for i, k in enumerate(["a", "p/1", "p/2", "p/3", "p/4", "q"]):
        put((n1, n2, n3)[i % 3], k, "val-" + k)
    whole = get(n1, "p/", prefix=True)
    keys = [kv["key"] for kv in whole["kvs"]]
    check(keys == ["p/1", "p/2", "p/3", "p/4"] and whole["count"] == 4 and not whole["more"],
          "prefix p/: %r" % whole)
    cut = get(n2, "p/", prefix=True, limit=2)
    check([kv["key"] for kv in cut["kvs"]] == ["p/1", "p/2"] and cut["count"] == 4
          and cut["more"] is True, "limit 2: %r" % cut)
    exact = get(n2, "p/", prefix=True, limit=4)
    check(len(exact["kvs"]) == 4 and exact["more"] is False, "limit = count: %r" % exact)
    span = get(n3, "p/2", range_end="p/4")
    check([kv["key"] for kv in span["kvs"]] == ["p/2", "p/3"] and span["count"] == 2,
          "range [p/2, p/4): %r" % span)
    everything = call(n3, "GET", "/kv/?range_end=%00")
    check([kv["key"] for kv in everything["kvs"]] == ["a", "p/1", "p/2", "p/3", "p/4", "q"],
          "whole keyspace: %r" % everything)
    ko = get(n1, "p/", prefix=True, keys_only=True)
    check(all("value" not in kv and kv["version"] == 1 for kv in ko["kvs"]) and ko["count"] == 4,
          "keys_only: %r" % ko)
    co = get(n1, "p/", prefix=True, count_only=True)
    check(co["count"] == 4 and co["kvs"] == [], "count_only: %r" % co)
    empty = get(n1, "zzz/", prefix=True)
    check(empty["count"] == 0 and empty["kvs"] == [], "an empty range is 200, not 404: %r" % empty)
    # serializable: the local state, after a barrier on this node the same.
    revision(n3)
    ser = get(n3, "p/", prefix=True, serializable=True)
    check(ser["kvs"] == whole["kvs"], "serializable range: %r" % ser)
    for bad, name in [(dict(limit=-1), "limit"), (dict(limit="x"), "limit"),
                      (dict(rev="abc"), "rev"), (dict(prefix="maybe"), "prefix"),
                      (dict(prefix=True, range_end="z"), "prefix"), (dict(prefx=True), "prefx"),
                      (dict(raw=True, prefix=True), "raw")]:
        check_error(get(n1, "p/", expect=400, **bad), "invalid_argument", name)


def test_mvcc_binary_keys_and_values(env):
    n1, n2, n3 = env.cluster(3)
    key = b"\xff\x00bin/\xc3"          # not UTF-8, with a zero byte and a slash
    value = bytes([0xfe, 0x00, 0x80, 0x41])
    doc = put(n2, key, value)
    for n in (n1, n2, n3):
        kv = one(get(n, key))
        check("key" not in kv and "value" not in kv, "non-UTF-8 must be base64: %r" % kv)
        check(field(kv, "key") == key and field(kv, "value") == value,
              "binary round trip on %s: %r" % (n, kv))
        check(kv["key_base64"] == base64.b64encode(key).decode(), "key_base64: %r" % kv)
    text_key = "ключ with spaces/and?query&chars%"
    put(n1, text_key, "значение")
    kv = one(get(n3, text_key))
    check(kv["key"] == text_key and kv["value"] == "значение", "UTF-8 stays a string: %r" % kv)
    rng = get(n1, b"\xff\x00", prefix=True)
    check(rng["count"] == 1 and field(rng["kvs"][0], "key") == key, "binary prefix: %r" % rng)
    r = n3.request("GET", kv_path(key, raw=True))
    check((r.status, r.body) == (200, value), "raw binary read: %r" % r)
    check(r.headers.get("x-raftkv-mod-revision") == str(rev_of(doc)), "raw headers: %r" % r.headers)
    gone = delete(n2, key)
    check(gone["deleted"] == 1, "binary delete: %r" % gone)
    get(n1, key, expect=404)
    check_error(call(n1, "GET", "/kv/bad%zzkey", expect=400), "invalid_path", "path")


def test_mvcc_raw_and_serializable(env):
    n1, n2, n3 = env.cluster(3)
    put(n1, "r", "first")
    rev = rev_of(put(n2, "r", "second"))
    r = n3.request("GET", kv_path("r", raw=True))
    check((r.status, r.body) == (200, b"second"), "raw read: %r" % r)
    h = r.headers
    want = {"x-raftkv-revision": rev, "x-raftkv-mod-revision": rev,
            "x-raftkv-create-revision": rev - 1, "x-raftkv-version": 2, "x-raftkv-lease": 0}
    for name, v in want.items():
        check(h.get(name) == str(v), "%s: %r, want %d" % (name, h.get(name), v))
    check(h.get("content-type") == "application/octet-stream", "raw content-type: %r" % h)
    r = n1.request("GET", kv_path("r", raw=True, rev=rev - 1))
    check((r.status, r.body) == (200, b"first"), "raw read at a past revision: %r" % r)
    r = n1.request("GET", kv_path("nothing", raw=True))
    check(r.status == 404, "raw read of a missing key: %r" % r)
    for n in (n1, n2, n3):
        revision(n)  # barrier, then the local read must show the write
        kv = one(get(n, "r", serializable=True))
        check(kv["value"] == "second" and kv["mod_revision"] == rev, "serializable on %s: %r"
              % (n, kv))


def test_mvcc_every_node_same_revisions(env):
    nodes = env.cluster(3)
    expected = {}
    for i in range(30):
        writer = nodes[i % 3]
        key = "same/%d" % (i % 7)
        if i % 5 == 4:
            delete(writer, key)
            expected.pop(key, None)
        else:
            doc = put(writer, key, "v%d" % i)
            expected[key] = rev_of(doc)
    rev, metas, _ = check_same_state(nodes, "interleaved writes")
    got = {m[0].decode(): m[2] for m in metas}
    check(got == expected, "mod revisions %r, acknowledged %r" % (got, expected))
    statuses = [n.status()["revision"] for n in nodes]
    check(statuses == [rev] * 3, "/status revision on each node: %r (want %d)" % (statuses, rev))
