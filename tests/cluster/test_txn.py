"""Transactions and conditional writes on real processes (docs/API.md
section 3): every compare target with every result, multi-op txns as one
revision, the failure branch, bad bodies refused with a 400 naming the
field and nothing written, and if_mod_revision puts/deletes (412 with the
current kv). Must never accept a 400 that wrote something: every refusal
is followed by a revision and key check."""

import json

from harness import check
from kvclient import (call, check_error, delete, field, get, one, put, rev_of, revision, txn)


def _outcome(node, compare):
    """Runs a read-only txn with one compare; returns succeeded, after
    checking that the branch that ran is the one reported."""
    doc = txn(node, {"compare": [compare],
                     "success": [{"request_range": {"key": "c", "count_only": True}}],
                     "failure": [{"request_range": {"key": "no-such-key"}}]})
    count = doc["responses"][0]["response_range"]["count"]
    check(count == (1 if doc["succeeded"] else 0),
          "the branch that ran does not match succeeded=%s: %r" % (doc["succeeded"], doc))
    return doc["succeeded"]


def _expected(result, actual, probe):
    return {"EQUAL": actual == probe, "NOT_EQUAL": actual != probe,
            "GREATER": actual > probe, "LESS": actual < probe}[result]


def test_txn_compare_every_target_and_result(env):
    n1, n2, n3 = env.cluster(3)
    created = rev_of(put(n1, "c", "m"))
    modified = rev_of(put(n2, "c", "m"))
    # target -> (JSON field, actual value on key c, probes below/at/above)
    table = {"VALUE": ("value", "m", ["l", "m", "n", "mm", ""]),
             "VERSION": ("version", 2, [1, 2, 3]),
             "CREATE": ("create_revision", created, [created - 1, created, created + 1]),
             "MOD": ("mod_revision", modified, [modified - 1, modified, modified + 1]),
             "LEASE": ("lease", 0, [0, 1])}
    nodes = (n1, n2, n3)
    i = 0
    for target, (name, actual, probes) in table.items():
        for result in ("EQUAL", "NOT_EQUAL", "GREATER", "LESS"):
            for probe in probes:
                cmp_ = {"key": "c", "target": target, "result": result, name: probe}
                got = _outcome(nodes[i % 3], cmp_)
                i += 1
                check(got == _expected(result, actual, probe),
                      "%s %s %r (actual %r): succeeded=%s" % (target, result, probe, actual, got))
    check(revision(n3) == modified, "read-only txns must not write a revision")
    # A missing key: numbers are 0 (the "create if absent" idiom), and a
    # VALUE compare is false whatever the result.
    absent = [({"target": "CREATE", "result": "EQUAL", "create_revision": 0}, True),
              ({"target": "VERSION", "result": "EQUAL", "version": 0}, True),
              ({"target": "MOD", "result": "LESS", "mod_revision": 1}, True),
              ({"target": "VALUE", "result": "EQUAL", "value": ""}, False),
              ({"target": "VALUE", "result": "NOT_EQUAL", "value": "x"}, False)]
    for cmp_, want in absent:
        cmp_["key"] = "absent"
        check(_outcome(n1, cmp_) == want, "compare on a missing key %r must be %s" % (cmp_, want))
    # Several compares: all must hold.
    both = txn(n2, {"compare": [{"key": "c", "target": "VERSION", "result": "EQUAL", "version": 2},
                                {"key": "c", "target": "VALUE", "result": "EQUAL", "value": "x"}]})
    check(both["succeeded"] is False and both["responses"] == [], "AND of compares: %r" % both)


def test_txn_multi_op_is_one_revision(env):
    n1, n2, n3 = env.cluster(3)
    put(n1, "t/old", "o")
    put(n1, "t/a", "a0")
    r0 = revision(n2)
    doc = txn(n2, {"compare": [{"key": "t/a", "target": "VALUE", "result": "EQUAL", "value": "a0"}],
                   "success": [{"request_put": {"key": "t/a", "value": "a1", "prev_kv": True}},
                               {"request_put": {"key": "t/b", "value": "b1"}},
                               {"request_delete_range": {"key": "t/old", "prev_kv": True}},
                               {"request_range": {"key": "t/", "prefix": True}}],
                   "failure": [{"request_put": {"key": "t/failed", "value": "x"}}]})
    rev = rev_of(doc)
    check(doc["succeeded"] is True and rev == r0 + 1, "a 4-op txn is one revision: %r" % doc)
    resp = doc["responses"]
    check(resp[0]["response_put"]["prev_kv"]["value"] == "a0", "prev_kv in txn put: %r" % resp)
    check(resp[2]["response_delete_range"]["deleted"] == 1, "delete in txn: %r" % resp)
    seen = {kv["key"]: (kv["value"], kv["mod_revision"]) for kv in
            resp[3]["response_range"]["kvs"]}
    check(seen == {"t/a": ("a1", rev), "t/b": ("b1", rev)},
          "the txn's range sees its own writes: %r" % seen)
    for n in (n1, n2, n3):
        kvs = get(n, "t/", prefix=True)["kvs"]
        check({kv["key"]: kv["mod_revision"] for kv in kvs} == {"t/a": rev, "t/b": rev},
              "after the txn on %s: %r" % (n, kvs))
    # The failure branch runs, also as exactly one revision.
    doc = txn(n3, {"compare": [{"key": "t/a", "target": "MOD", "result": "LESS",
                                "mod_revision": rev}],
                   "success": [{"request_put": {"key": "t/wrong", "value": "x"}}],
                   "failure": [{"request_put": {"key": "t/f1", "value": "1"}},
                               {"request_put": {"key": "t/f2", "value": "2"}}]})
    check(doc["succeeded"] is False and rev_of(doc) == rev + 1
          and [list(x) for x in doc["responses"]] == [["response_put"], ["response_put"]],
          "failure branch: %r" % doc)
    get(n1, "t/wrong", expect=404)
    for k in ("t/f1", "t/f2"):
        check(one(get(n1, k))["mod_revision"] == rev + 1, "%s written by the failure branch" % k)


# (body, reason, what the message must name)
BAD_TXNS = [
    ('{"compare":[', "invalid_json", "body"),
    ('[{"compare":[]}]', "invalid_json", "body"),
    ({"compare": [{"key": "k", "target": "FOO", "result": "EQUAL"}]},
     "invalid_argument", "compare[0].target"),
    ({"compare": [{"key": "k", "target": "VERSION", "result": "BIGGER", "version": 1}]},
     "invalid_argument", "compare[0].result"),
    ({"compare": [{"key": "k", "target": "VERSION", "result": "EQUAL", "version": "1"}]},
     "invalid_argument", "compare[0].version"),
    ({"compare": [{"key": "k", "target": "MOD", "result": "EQUAL", "mod_revision": 1.5}]},
     "invalid_argument", "compare[0].mod_revision"),
    ({"compare": [{"key": "k", "target": "VALUE", "result": "EQUAL", "value": 5}]},
     "invalid_argument", "compare[0].value"),
    ({"compare": [{"target": "VERSION", "result": "EQUAL", "version": 1}]},
     "invalid_argument", "compare[0].key"),
    ({"compare": [{"key": 7, "target": "VERSION", "result": "EQUAL", "version": 1}]},
     "invalid_argument", "compare[0].key"),
    ({"compare": [{"key": "k", "key_base64": "aw==", "target": "LEASE", "result": "EQUAL"}]},
     "invalid_argument", "compare[0].key"),
    ({"compare": "all"}, "invalid_argument", "compare"),
    ({"sucess": []}, "invalid_argument", "sucess"),
    ({"success": {"request_put": {"key": "bad/x", "value": "v"}}}, "invalid_argument", "success"),
    ({"success": [{"request_get": {"key": "bad/x"}}]}, "invalid_argument", "request_get"),
    ({"success": [{"request_put": {"key": "bad/x", "value": 1}}]},
     "invalid_argument", "success[0].request_put.value"),
    ({"success": [{"request_put": {"key": "bad/x", "value": "v", "lease": "x"}}]},
     "invalid_argument", "success[0].request_put.lease"),
    ({"success": [{"request_put": {"key_base64": "!!", "value": "v"}}]},
     "invalid_argument", "success[0].request_put.key_base64"),
    ({"success": [{"request_put": {"key": "bad/x", "value": "v"}},
                  {"request_range": {"key": "bad/", "prefix": "yes"}}]},
     "invalid_argument", "success[1].request_range.prefix"),
    ({"success": [{"request_put": {"key": "bad/x", "value": "v"}}],
      "failure": [{"request_delete_range": {"key": "bad/", "prefix": True, "range_end": "z"}}]},
     "invalid_argument", "failure[0].request_delete_range.prefix"),
    ({"success": [{"request_put": {"key": "bad/%d" % i, "value": "v"}} for i in range(129)]},
     "invalid_argument", "success"),
]


def test_txn_bad_input_writes_nothing(env):
    n1, n2, n3 = env.cluster(3)
    put(n1, "k", "v")
    before = revision(n1)
    for i, (body, reason, names) in enumerate(BAD_TXNS):
        node = (n1, n2, n3)[i % 3]
        raw = body if isinstance(body, str) else json.dumps(body)
        doc = call(node, "POST", "/txn", raw, expect=400)
        check_error(doc, reason, names)
    # A key written twice in one branch is refused before it is proposed.
    dup = txn(n2, {"success": [{"request_put": {"key": "bad/d", "value": "1"}},
                               {"request_put": {"key": "bad/d", "value": "2"}}]}, expect=400)
    check_error(dup, "invalid_argument", "success")
    covered = txn(n3, {"failure": [{"request_delete_range": {"key": "bad/", "prefix": True}},
                                   {"request_put": {"key": "bad/p", "value": "1"}}]}, expect=400)
    check_error(covered, "invalid_argument", "failure")
    r = n3.request("POST", "/txn?dry_run=true", "{}")
    check(r.status == 400 and "dry_run" in r.json()["error"], "unknown query parameter: %r" % r)
    for n in (n1, n2, n3):
        check(revision(n) == before, "a refused txn changed the revision on %s" % n)
        check(get(n, "bad/", prefix=True, count_only=True)["count"] == 0,
              "a refused txn wrote a key on %s" % n)
    check(n1.status()["revision"] == before, "/status revision after refusals")


def test_conditional_put_and_delete(env):
    n1, n2, n3 = env.cluster(3)
    r1 = rev_of(put(n1, "cond", "v1", if_mod_revision=0))
    failed = put(n2, "cond", "again", expect=412, if_mod_revision=0)
    check_error(failed, "precondition_failed", "if_mod_revision")
    check(field(failed["kv"], "value") == b"v1" and failed["kv"]["mod_revision"] == r1
          and rev_of(failed) == r1, "412 shows the current kv and revision: %r" % failed)
    doc = put(n3, "cond", "v2", if_mod_revision=r1, prev_kv=True)
    r2 = rev_of(doc)
    check(r2 == r1 + 1 and doc["prev_kv"]["value"] == "v1", "guarded put with prev_kv: %r" % doc)
    stale = put(n1, "cond", "lost", expect=412, if_mod_revision=r1)
    check(stale["kv"]["mod_revision"] == r2 and stale["kv"]["value"] == "v2", "stale: %r" % stale)
    stale = delete(n2, "cond", expect=412, if_mod_revision=r1)
    check(stale["kv"]["value"] == "v2" and rev_of(stale) == r2, "stale delete: %r" % stale)
    doc = delete(n3, "cond", if_mod_revision=r2, prev_kv=True)
    check(doc["deleted"] == 1 and doc["prev_kvs"][0]["value"] == "v2" and rev_of(doc) == r2 + 1,
          "guarded delete: %r" % doc)
    gone = put(n1, "cond", "x", expect=412, if_mod_revision=r2)
    check("kv" not in gone, "412 on a missing key has no kv: %r" % gone)
    check(rev_of(put(n2, "cond", "v3", if_mod_revision=0)) == r2 + 2,
          "if_mod_revision=0 creates a deleted key again")
    for params, name in [(dict(if_mod_revision=-1), "if_mod_revision"),
                         (dict(if_mod_revision="x"), "if_mod_revision"),
                         (dict(prev_kv="perhaps"), "prev_kv")]:
        check_error(put(n1, "cond", "bad", expect=400, **params), "invalid_argument", name)
    check_error(delete(n1, "cond", expect=400, prefix=True, if_mod_revision=1),
                "invalid_argument", "if_mod_revision")
    for n in (n1, n2, n3):
        kv = one(get(n, "cond"))
        check((kv["value"], kv["version"], kv["create_revision"]) == ("v3", 1, r2 + 2),
              "final cond on %s: %r" % (n, kv))
