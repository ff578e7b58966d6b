#!/usr/bin/env python3
"""test_checkers: the checkers' proofs — known linearizable and known
non-linearizable register histories (stale read, lost write, bad cas, info
operations both ways), set histories (lost / resurrected elements) and watch
histories (duplicate, gap, reordering, disagreement, wrong final state,
events outside a watcher's range, nodes' stored histories that differ),
append and counter histories (an operation applied twice, an acknowledged
one lost, a refused one applied, a lost update, a phantom, a version off).
Prints PASS/FAIL per case and, last, "N passed, N failed".
Must never: start a process or touch the network (pure input -> verdict).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import appends  # noqa: E402
import cases  # noqa: E402
import checkers  # noqa: E402
import wgl  # noqa: E402
from history import History  # noqa: E402


def H(*spec):
    """Ops from (process, f, value, type, invoke, complete[, succeeded])."""
    ops = []
    for i, s in enumerate(spec):
        op = {"id": i, "process": s[0], "f": s[1], "key": "k", "value": s[2],
              "type": s[3], "invoke": s[4], "complete": s[5]}
        if len(s) > 6:
            op["succeeded"] = s[6]
        ops.append(op)
    return ops


def valid(ops):
    return checkers.check_register(ops)["valid"]


# ---- register ----
def test_sequential_is_linearizable():
    assert valid(H((0, "read", None, "ok", 1, 2), (0, "write", "a", "ok", 3, 4),
                   (1, "read", "a", "ok", 5, 6), (1, "cas", ["a", "b"], "ok", 7, 8, True),
                   (0, "read", "b", "ok", 9, 10))) is True


def test_concurrent_read_may_see_either():
    # The read overlaps the write: old or new value are both fine.
    for seen in ("a", "b"):
        assert valid(H((0, "write", "a", "ok", 1, 2), (0, "write", "b", "ok", 3, 6),
                       (1, "read", seen, "ok", 4, 5))) is True


def test_stale_read_is_caught():
    r = checkers.check_register(H((0, "write", "a", "ok", 1, 2), (0, "write", "b", "ok", 3, 4),
                                  (1, "read", "a", "ok", 5, 6)))
    assert r["valid"] is False, r
    assert "#2" in r["detail"] and "#1" in r["detail"], r["detail"]


def test_lost_write_is_caught():
    # An acknowledged write that a later read does not see.
    assert valid(H((0, "write", "a", "ok", 1, 2), (1, "read", None, "ok", 3, 4))) is False


def test_read_of_never_written_value_is_caught():
    assert valid(H((0, "write", "a", "ok", 1, 2), (1, "read", "zz", "ok", 3, 4))) is False


def test_failed_write_must_not_be_seen():
    assert valid(H((0, "write", "a", "fail", 1, 2), (1, "read", "a", "ok", 3, 4))) is False


def test_info_write_may_or_may_not_happen():
    # Seen later, or never seen: both fine.
    assert valid(H((0, "write", "a", "info", 1, None), (1, "read", "a", "ok", 5, 6))) is True
    assert valid(H((0, "write", "a", "info", 1, None), (1, "read", None, "ok", 5, 6))) is True
    # ...but not before it was invoked.
    assert valid(H((1, "read", "a", "ok", 1, 2), (0, "write", "a", "info", 3, None))) is False


def test_info_write_cannot_flicker():
    # Once a read saw it and a later read saw the older value, it is wrong.
    assert valid(H((0, "write", "a", "ok", 1, 2), (0, "write", "b", "info", 3, None),
                   (1, "read", "b", "ok", 4, 5), (1, "read", "a", "ok", 6, 7))) is False


def test_cas_semantics():
    assert valid(H((0, "write", "a", "ok", 1, 2), (1, "cas", ["a", "b"], "ok", 3, 4, False))) is False
    assert valid(H((0, "write", "a", "ok", 1, 2), (1, "cas", ["x", "b"], "ok", 3, 4, False),
                   (1, "read", "a", "ok", 5, 6))) is True
    assert valid(H((0, "write", "a", "ok", 1, 2), (1, "cas", ["a", "b"], "ok", 3, 4, True),
                   (1, "read", "a", "ok", 5, 6))) is False
    # A cas that timed out is visible only if it could have succeeded.
    assert valid(H((0, "write", "a", "ok", 1, 2), (1, "cas", ["x", "b"], "info", 3, None),
                   (1, "read", "b", "ok", 5, 6))) is False


def test_window_is_short():
    # A long valid prefix, then a stale read: the window holds the two
    # writes and the read, not the prefix.
    spec = []
    t = 0
    for i in range(40):
        spec.append((0, "write", "v%d" % i, "ok", t + 1, t + 2))
        spec.append((1, "read", "v%d" % i, "ok", t + 3, t + 4))
        t += 4
    spec.append((0, "write", "new", "ok", t + 1, t + 2))
    spec.append((1, "read", "v39", "ok", t + 3, t + 4))
    r = checkers.check_register(H(*spec))
    assert r["valid"] is False
    assert r["detail"].count("\n") <= 4, r["detail"]


def test_many_concurrent_ops_finish():
    # 12 processes, 240 overlapping ops, some info: must answer, not hang.
    spec, t = [], 0
    for rnd in range(20):
        for p in range(12):
            f = "write" if p % 3 == 0 else "read"
            typ = "info" if (p == 6 and rnd % 4 == 0) else "ok"
            val = "w%d-%d" % (rnd, p) if f == "write" else "w%d-0" % rnd
            spec.append((p, f, val, typ, t + p, None if typ == "info" else t + 30 + p))
        t += 100
    # Each round: the reads overlap the round's writes, read the first one.
    assert valid(H(*spec)) is True


def test_budget_gives_unknown():
    ops = H(*[(p, "write", "x%d" % p, "info", p, None) for p in range(12)]
            + [(20, "read", "nope", "ok", 100, 101)])
    assert wgl.check(ops, budget=50)["valid"] is None


# ---- set ----
def adds(*spec):
    return [{"id": i, "process": 0, "f": "add", "key": "s", "value": v, "type": t,
             "invoke": i, "complete": i} for i, (v, t) in enumerate(spec)]


def test_set_valid_with_info_either_way():
    ops = adds((1, "ok"), (2, "info"), (3, "info"), (4, "fail"))
    assert checkers.check_set(ops, {"n1": {1, 2}, "n2": {1}})["valid"] is True


def test_set_lost_element():
    r = checkers.check_set(adds((1, "ok"), (2, "ok")), {"n1": {1, 2}, "n2": {1}})
    assert r["valid"] is False and "n2 lost" in r["reason"], r


def test_set_failed_element_present():
    r = checkers.check_set(adds((1, "ok"), (2, "fail")), {"n1": {1, 2}})
    assert r["valid"] is False and "failed or were never" in r["reason"], r


def test_set_operation_still_in_flight_counts_as_info():
    """An add still "invoke" when the run is checked may have happened:
    History.close_pending makes it info, so finding it is no violation
    (without it, the element reads as one nobody added)."""
    h = History()
    done = h.invoke("s0", "add", "set", 1)
    h.complete(done, "ok")
    h.invoke("s1", "add", "set", 2)
    r = checkers.check_set(h.ops, {"n1": {1, 2}})
    assert r["valid"] is False and "never added" in r["reason"], r
    assert h.close_pending() == 1
    assert checkers.check_set(h.ops, {"n1": {1, 2}})["valid"] is True
    assert checkers.check_set(h.ops, {"n1": {1}})["valid"] is True


def test_set_unreadable_node_is_not_valid():
    assert checkers.check_set(adds((1, "ok")), {"n1": {1}, "n2": None})["valid"] is False


# ---- append (non-idempotent) ----

def appended(*items):
    """(key, value, type) -> append operations."""
    return [{"id": i, "f": "append", "key": k, "value": v, "type": t}
            for i, (k, v, t) in enumerate(items)]


def test_appends_valid_with_info_either_way():
    ops = appended(("a/0", "x", "ok"), ("a/0", "y", "info"), ("a/0", "z", "info"),
                   ("a/1", "w", "fail"))
    r = appends.check_appends(ops, {"a/0": ["x", "z"], "a/1": []}, {"a/0": 2, "a/1": 0})
    assert r["valid"] is True and r["acknowledged"] == 1, r


def test_appends_duplicate_is_caught():
    # the injected fault: an acknowledged append applied twice
    ops = appended(("a/0", "x", "ok"), ("a/0", "y", "ok"))
    r = appends.check_appends(ops, {"a/0": ["x", "y", "x"]}, {"a/0": 3})
    assert r["valid"] is False and "applied twice" in r["reason"], r


def test_appends_indeterminate_twice_is_caught():
    ops = appended(("a/0", "x", "info"))
    r = appends.check_appends(ops, {"a/0": ["x", "x"]}, {"a/0": 2})
    assert r["valid"] is False and "applied twice" in r["reason"], r


def test_appends_lost_acknowledged_is_caught():
    # the injected fault: an acknowledged append missing
    ops = appended(("a/0", "x", "ok"), ("a/0", "y", "ok"))
    r = appends.check_appends(ops, {"a/0": ["x"]}, {"a/0": 1})
    assert r["valid"] is False and "lost" in r["reason"], r


def test_appends_failed_present_or_phantom_is_caught():
    ops = appended(("a/0", "x", "fail"))
    r = appends.check_appends(ops, {"a/0": ["x"]}, {"a/0": 1})
    assert r["valid"] is False and "failed" in r["reason"], r
    r = appends.check_appends(appended(("a/0", "x", "ok")), {"a/0": ["x", "q"]}, {"a/0": 2})
    assert r["valid"] is False and "never sent" in r["reason"], r


def test_appends_version_must_match_history():
    ops = appended(("a/0", "x", "ok"))
    r = appends.check_appends(ops, {"a/0": ["x"]}, {"a/0": 2})
    assert r["valid"] is False and "version" in r["reason"], r


def test_appends_unreadable_history_is_not_valid():
    r = appends.check_appends(appended(("a/0", "x", "ok")), {"a/0": None}, {"a/0": None})
    assert r["valid"] is None, r



# ---- counter (non-idempotent increments by read-modify-write txn) ----

def incremented(*items):
    """(key, tag, type[, succeeded]) -> increment operations."""
    return [{"id": i, "f": "incr", "key": it[0], "value": it[1], "type": it[2],
             "succeeded": it[3] if len(it) > 3 else it[2] == "ok"}
            for i, it in enumerate(items)]


def test_counters_valid_with_info_either_way():
    ops = incremented(("c/0", "p", "ok"), ("c/0", "q", "info"), ("c/0", "r", "info"),
                      ("c/0", "s", "ok", False), ("c/1", "t", "fail"))
    r = appends.check_counters(ops, {"c/0": ["1 p", "2 r"], "c/1": []}, {"c/0": 2, "c/1": 0})
    assert r["valid"] is True and r["acknowledged"] == 1 and r["increments"] == 2, r
    assert r["refused"] == 2 and r["indeterminate"] == 2, r


def test_counters_duplicate_is_caught():
    # the injected fault: an acknowledged increment applied twice
    ops = incremented(("c/0", "p", "ok"), ("c/0", "q", "ok"))
    r = appends.check_counters(ops, {"c/0": ["1 p", "2 q", "3 p"]}, {"c/0": 3})
    assert r["valid"] is False and "applied twice" in r["reason"], r


def test_counters_refused_but_applied_is_caught():
    # a duplicate run answering the client: its compare fails, yet the
    # first run's increment is there
    ops = incremented(("c/0", "p", "ok", False))
    r = appends.check_counters(ops, {"c/0": ["1 p"]}, {"c/0": 1})
    assert r["valid"] is False and "refused but" in r["reason"], r
    r = appends.check_counters(incremented(("c/0", "p", "fail")), {"c/0": ["1 p"]}, {"c/0": 1})
    assert r["valid"] is False and "refused but" in r["reason"], r


def test_counters_lost_acknowledged_is_caught():
    # the injected fault: an acknowledged increment missing
    ops = incremented(("c/0", "p", "ok"), ("c/0", "q", "ok"))
    r = appends.check_counters(ops, {"c/0": ["1 p"]}, {"c/0": 1})
    assert r["valid"] is False and "lost" in r["reason"], r


def test_counters_lost_update_is_caught():
    # both read 1 and both were let through: q's increment is lost
    ops = incremented(("c/0", "p", "ok"), ("c/0", "q", "ok"), ("c/0", "s", "ok"))
    r = appends.check_counters(ops, {"c/0": ["1 p", "2 q", "2 s"]}, {"c/0": 3})
    assert r["valid"] is False and "an increment lost" in r["reason"], r
    r = appends.check_counters(ops, {"c/0": ["1 p", "3 q"]}, {"c/0": 2})
    assert r["valid"] is False and "counted twice" in r["reason"], r


def test_counters_phantom_garbage_and_version_are_caught():
    ops = incremented(("c/0", "p", "ok"))
    r = appends.check_counters(ops, {"c/0": ["1 p", "2 z"]}, {"c/0": 2})
    assert r["valid"] is False and "never sent" in r["reason"], r
    r = appends.check_counters(ops, {"c/0": ["CORRUPT-MARKER-1"]}, {"c/0": 1})
    assert r["valid"] is False and "no increment writes" in r["reason"], r
    r = appends.check_counters(ops, {"c/0": ["1 p"]}, {"c/0": 2})
    assert r["valid"] is False and "version" in r["reason"], r


def test_counters_unreadable_history_is_not_valid():
    r = appends.check_counters(incremented(("c/0", "p", "ok")), {"c/0": None}, {"c/0": None})
    assert r["valid"] is None, r

# ---- watch ----
def ev(rev, key, value, typ="PUT"):
    return {"revision": rev, "key": key, "value": value, "type": typ}


WRITES = [{"id": i, "process": 0, "f": "put", "key": k, "value": v, "type": "ok",
           "revision": r, "invoke": i, "complete": i}
          for i, (k, v, r) in enumerate([("a", "1", 5), ("b", "2", 7), ("a", "3", 9)])]
EVENTS = [ev(5, "a", "1"), ev(7, "b", "2"), ev(9, "a", "3")]
FINAL = {"a": ("3", 9), "b": ("2", 7)}


def watch(watchers, final=FINAL, writes=WRITES):
    return checkers.check_watch(writes, watchers, final)


def test_watch_valid():
    assert watch({"w1": EVENTS, "w2": list(EVENTS)})["valid"] is True


def test_watch_duplicate():
    r = watch({"w1": EVENTS[:2] + [EVENTS[1]] + EVENTS[2:]})
    assert r["valid"] is False and "duplicated" in r["reason"], r


def test_watch_gap_in_one_watcher():
    r = watch({"w1": EVENTS, "w2": [EVENTS[0], EVENTS[2]]})
    assert r["valid"] is False and "w2 missed" in r["reason"], r


def test_watch_gap_in_all_watchers():
    r = watch({"w1": [EVENTS[0], EVENTS[2]]}, final={"a": ("3", 9)})
    assert r["valid"] is False and "gap" in r["reason"], r


def test_watch_reordered():
    r = watch({"w1": [EVENTS[1], EVENTS[0], EVENTS[2]]})
    assert r["valid"] is False and "out of order" in r["reason"], r


def test_watch_disagreement():
    r = watch({"w1": EVENTS, "w2": [EVENTS[0], ev(7, "b", "X"), EVENTS[2]]})
    assert r["valid"] is False and "disagree" in r["reason"], r


def test_watch_phantom_event():
    r = watch({"w1": EVENTS + [ev(11, "c", "zz")]}, final=dict(FINAL, c=("zz", 11)))
    assert r["valid"] is False and "matches no write" in r["reason"], r


def test_watch_final_state_mismatch():
    r = watch({"w1": EVENTS}, final={"a": ("1", 5), "b": ("2", 7)})
    assert r["valid"] is False and "final read" in r["reason"], r


def test_watch_delete_events():
    writes = WRITES + [{"id": 9, "process": 0, "f": "delete", "key": "b", "value": None,
                        "type": "ok", "revision": 10, "invoke": 9, "complete": 9}]
    r = watch({"w1": EVENTS + [ev(10, "b", None, "DELETE")]}, final={"a": ("3", 9)},
              writes=writes)
    assert r["valid"] is True, r


INFO_C = {"id": 8, "process": 1, "f": "put", "key": "c", "value": "4", "type": "info",
          "invoke": 8, "complete": 8}


def test_watch_ranges_valid():
    only_a = [e for e in EVENTS if e["key"] == "a"]
    r = checkers.check_watch(WRITES, {"all": EVENTS, "a": only_a}, FINAL,
                             {"a": ("a", "a\x00")}, {"n1": EVENTS, "n2": list(EVENTS)})
    assert r["valid"] is True, r


def test_watch_event_outside_range():
    r = checkers.check_watch(WRITES, {"all": EVENTS, "a": EVENTS}, FINAL, {"a": ("a", "a\x00")})
    assert r["valid"] is False and "outside its range" in r["reason"], r


def test_watch_range_watcher_gap():
    r = checkers.check_watch(WRITES, {"all": EVENTS, "a": [EVENTS[2]]}, FINAL,
                             {"a": ("a", "a\x00")}, {"n1": EVENTS})
    assert r["valid"] is False and "a missed a at revision 5" in r["reason"], r


def test_watch_stored_histories_differ():
    r = checkers.check_watch(WRITES, {"w1": EVENTS}, FINAL, None,
                             {"n1": EVENTS, "n2": EVENTS[:2]})
    assert r["valid"] is False and "stored histories differ" in r["reason"], r


def test_watch_stored_history_unreadable():
    r = checkers.check_watch(WRITES, {"w1": EVENTS}, FINAL, None, {"n1": EVENTS, "n2": None})
    assert r["valid"] is False and "could not be read back" in r["reason"], r


def test_watch_unacknowledged_event_missed_by_every_watcher():
    # an info write that committed: no acknowledgement to miss, but the
    # stored history has it, so every watcher must have seen it
    stored = EVENTS + [ev(11, "c", "4")]
    final = dict(FINAL, c=("4", 11))
    r = checkers.check_watch(WRITES + [INFO_C], {"w1": EVENTS, "w2": EVENTS}, final, None,
                             {"n1": stored, "n2": stored})
    assert r["valid"] is False and "w1 missed 1 events" in r["reason"], r


def test_watch_value_differs_from_stored():
    seen = [EVENTS[0], ev(7, "b", "X"), EVENTS[2]]
    r = checkers.check_watch(WRITES, {"w1": seen}, FINAL, None, {"n1": EVENTS})
    assert r["valid"] is False and "the stored history has" in r["reason"], r


if __name__ == "__main__":
    sys.exit(cases.main(globals()))
