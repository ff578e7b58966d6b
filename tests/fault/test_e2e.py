#!/usr/bin/env python3
"""test_e2e: the harness proves itself against real processes —
  * the firewall leaves nothing behind and sweeps chains of crashed runs;
  * a one-direction cut really cuts one direction, and heals;
  * the register workload with serializable reads, under a partition that
    isolates the leader, is reported INVALID (stale reads), while the same
    probe with linearizable reads stays valid;
  * the watch workload, with a watched node killed and restarted under it,
    is valid, and the same data with one event lost, duplicated or
    reordered in one watcher is INVALID;
  * the append and counter workloads, with the leader killed and restarted
    under them, are valid; an acknowledged append and an acknowledged
    increment then written a second time into the real store, and an
    acknowledgement recorded for an append that never ran, are each
    INVALID through the real reading path.
Prints PASS/FAIL per case and, last, "N passed, N failed".
Must never: leave a node or an iptables rule behind (finally), or sleep in
place of a condition (every wait polls with a deadline).

usage: test_e2e.py [--bin PATH]
"""

import os
import shutil
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402
import checkers  # noqa: E402
import cluster as fcluster  # noqa: E402
import net  # noqa: E402
import workloads  # noqa: E402
from history import History, call  # noqa: E402

wait_for = fcluster.wait_for


class World:
    """A fresh cluster (and firewall, unless firewall=False), torn down on
    leaving the with block; the run dir is kept when a case failed."""

    def __init__(self, n=3, firewall=True):
        why = net.unavailable_reason() if firewall else None
        if why:
            raise fcluster.TestFailure("partitions unavailable here: %s" % why)
        self.dir = tempfile.mkdtemp(prefix="raftkv-fault-e2e-")
        self.c = fcluster.Cluster(self.dir, n)
        self.fw = (net.Firewall(fcluster.addr_of, lambda i: self.c.node(i).peer_port)
                   if firewall else None)

    def __enter__(self):
        try:
            self.c.start()
        except BaseException:   # __exit__ is not called when __enter__ fails
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc):
        if self.fw:
            self.fw.close()
        self.c.stop_all()
        if exc[0] is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("  kept %s" % self.dir)

    def isolate(self, x):
        for y in self.c.nodes:
            if y is not x:
                self.fw.cut_both(x.id, y.id)

    def new_leader(self, old):
        """Waits until the other nodes agree on a leader that is not `old`."""
        others = [y for y in self.c.nodes if y is not old]

        def elected():
            lead = self.c.leader(others)
            return lead if lead is not None and lead is not old else None
        return wait_for(elected, 30, "the others to elect a leader other than %s" % old)


def put_ok(x, key, value):
    def attempt():
        return call(x.port, "PUT", "/kv/" + key, value, timeout=3).status == 200
    wait_for(attempt, 30, "PUT %s=%s on %s" % (key, value, x))


def test_firewall_cleanup():
    why = net.unavailable_reason()
    if why:
        raise fcluster.TestFailure("partitions unavailable here: %s" % why)
    dead = 2 ** 22 + 12345   # above pid_max's default: no such process
    stale = "%s%d" % (net.PREFIX, dead)
    net._ipt("-N", stale)
    net._ipt("-A", stale, "-p", "tcp", "-s", "127.0.0.99", "-j", "DROP")
    fw = net.Firewall(fcluster.addr_of, lambda i: 20000 + i)
    try:
        assert stale in fw.stale, fw.stale
        assert net._ipt("-S", stale)[0] != 0, "the crashed run's chain is still there"
        fw.cut(1, 2)
        fw.cut_both(2, 3)
        assert len(fw.rules()) == 3, fw.rules()
        fw.heal()
        assert fw.rules() == [], fw.rules()
        fw.cut(1, 3)
    finally:
        fw.close()
    assert net._ipt("-S", fw.chain)[0] != 0, "chain left behind"
    assert fw.chain not in net._ipt("-S", "INPUT")[1], "INPUT still jumps to the chain"


def test_one_way_cut_and_heal():
    with World() as w:
        old = w.c.leader(timeout=30)
        put_ok(old, "oneway", "before")
        for y in w.c.nodes:          # the leader can no longer send
            if y is not old:
                w.fw.cut(old.id, y.id)
        new = w.new_leader(old)
        assert new is not old
        put_ok(new, "oneway", "during")
        # The other direction still works: the old leader hears the new one.
        wait_for(lambda: (old.status() or {}).get("leader") == new.id, 30,
                 "the old leader to learn of %s through the uncut direction" % new)
        w.fw.heal()
        w.c.converge(60)
        a = call(old.port, "GET", "/kv/oneway?serializable=true", timeout=5)
        assert a.status == 200 and a.json()["kvs"][0]["value"] == "during", a


def test_membership_replace_under_load():
    """The membership nemesis' path: remove n3 under load, add n4 (ids are
    never reused) with a fresh data dir and --join; n4 catches up and
    stays, and the register history stays linearizable."""
    with World(firewall=False) as w:
        c = w.c
        load = workloads.Register(c, History(), 3, 4)
        stop = threading.Event()
        try:
            load.start(stop)
            via = c.node(1)
            c.remove(c.node(3), via)
            put_ok(via, "replace", "while-away")
            y = c.add_new(via)
            assert y.id == 4 and [x.id for x in c.nodes] == [1, 2, 4], c.nodes
            c.wait_healthy(30, [y])
            stop.wait(1.0)   # some load on the new member too
        finally:
            stop.set()
        load.join()
        c.converge(60)
        assert y.alive(), "%s shut itself down" % y
        a = call(y.port, "GET", "/kv/replace?serializable=true", timeout=5)
        assert a.status == 200 and a.json()["kvs"][0]["value"] == "while-away", a
        r = checkers.check_register(load.ops())
        assert r["valid"] is True, r


def _write_until_ok(reg, x, key, value):
    """Retries (each attempt is recorded) until the write is acknowledged."""
    wait_for(lambda: reg.write("probe", x, key, None, value)["type"] == "ok", 30,
             "PUT %s=%s on %s" % (key, value, x))


def test_serializable_reads_under_isolated_leader_are_invalid():
    with World() as w:
        hist = History()
        old = w.c.leader(timeout=30)
        # Two probe keys: serializable reads (must be caught) and
        # linearizable reads (the control: must stay valid).
        probes = {"proof/stale": workloads.Register(w.c, hist, 0, 0, serializable=True),
                  "proof/lin": workloads.Register(w.c, hist, 0, 0, serializable=False)}
        for key, reg in probes.items():
            _write_until_ok(reg, old, key, "v0")
        load = workloads.Register(w.c, hist, 7, 6, serializable=True)
        stop = threading.Event()
        load.start(stop)
        try:
            w.isolate(old)
            new = w.new_leader(old)
            for key, reg in probes.items():
                _write_until_ok(reg, new, key, "v1")
                reg.read("probe", old, key)   # after v1 was acknowledged
            stop.wait(2.0)   # the load keeps reading the isolated leader a little longer
        finally:
            stop.set()
            load.join()
            w.fw.heal()
        w.c.converge(60)
        stale_ops = [o for o in hist.ops if o["key"] == "proof/stale"]
        lin_ops = [o for o in hist.ops if o["key"] == "proof/lin"]
        r = checkers.check_register(stale_ops)
        assert r["valid"] is False, "the stale probe was not caught: %r" % r
        r = checkers.check_register(lin_ops)
        assert r["valid"] is True, "linearizable reads were flagged: %r" % r
        # The whole history (load + probes), as a run would check it.
        r = checkers.check_register(load.ops())
        assert r["valid"] is False, "the serializable run was not caught: %r" % r
        print("  caught: " + r["reason"])
        alone = checkers.check_register([o for o in load.ops() if o["process"] != "probe"])
        print("  the load alone (no probe): %s" % ("INVALID" if alone["valid"] is False
                                                    else "not caught this time"))


def _grows(hist, n, what):
    start = len(hist.ops)
    wait_for(lambda: len(hist.ops) >= start + n, 30, what)


def _corrupted(inputs, name, edit):
    ops, seen, final, ranges, stored = inputs
    seen = dict(seen)
    seen[name] = edit(list(seen[name]))
    return checkers.check_watch(ops, seen, final, ranges, stored)


def test_watch_live_check_is_real():
    import watch
    with World(firewall=False) as world:
        c = world.c
        hist = History()
        load = watch.Watch(c, hist, 5, 3)
        stop = threading.Event()
        try:
            load.start(stop)
            _grows(hist, 100, "100 watch writes")
            x = c.node(2)    # its stream and long-poll watchers must reconnect
            x.kill9()
            _grows(hist, 100, "100 watch writes while %s is down" % x)
            c.restart(x)
            c.wait_healthy(30, [x])
            _grows(hist, 100, "100 watch writes after %s restarted" % x)
        finally:
            stop.set()
        load.join()
        r = load.check(c.converge(60))
        assert r["valid"] is True, r
        w = max(load.watchers, key=lambda w: len(w.events))
        assert len(w.events) >= 3, w.events
        mid = len(w.events) // 2
        lost = _corrupted(load.inputs, w.name, lambda e: e[:mid] + e[mid + 1:])
        assert lost["valid"] is False and "missed" in lost["reason"], lost
        dup = _corrupted(load.inputs, w.name, lambda e: e[:mid + 1] + e[mid:])
        assert dup["valid"] is False and "duplicated" in dup["reason"], dup
        swap = _corrupted(load.inputs, w.name,
                          lambda e: e[:mid] + [e[mid + 1], e[mid]] + e[mid + 2:])
        assert swap["valid"] is False and "out of order" in swap["reason"], swap



def test_non_idempotent_live_check_is_real():
    import appends
    with World(firewall=False) as world:
        c = world.c
        hist = History()
        app, cnt = appends.Appends(c, hist, 5, 3), appends.Counter(c, hist, 5, 3)
        stop = threading.Event()
        try:
            app.start(stop)
            cnt.start(stop)
            _grows(hist, 200, "200 appends and increments")
            x = c.leader(timeout=30)   # its followers' forwarded writes are re-proposed
            x.kill9()
            _grows(hist, 200, "200 appends and increments while %s is down" % x)
            c.restart(x)
            c.wait_healthy(30, [x])
            _grows(hist, 100, "100 appends and increments after %s restarted" % x)
        finally:
            stop.set()
        app.join()
        cnt.join()
        lead = c.converge(60)
        for load in (app, cnt):
            r = load.check(lead)
            assert r["valid"] is True, r
            assert r["acknowledged"] >= 20, r
        # lost: an acknowledgement for an append the store never got
        done = next(o for o in reversed(app.ops()) if o["type"] == "ok")
        ghost = dict(done, id=len(hist.ops), value=done["value"] + "-never-sent")
        hist.ops.append(ghost)
        r = app.check(lead)
        hist.ops.remove(ghost)
        assert r["valid"] is False and "lost" in r["reason"], r
        # duplicates: an acknowledged append, and an acknowledged increment
        # on top of the counter's count, written again into the store
        put_ok(lead, done["key"], done["value"])
        r = app.check(lead)
        assert r["valid"] is False and "applied twice" in r["reason"], r
        inc = next(o for o in reversed(cnt.ops()) if o["type"] == "ok" and o["succeeded"])
        a = call(lead.port, "GET", "/kv/" + inc["key"], timeout=5)
        now = int(a.json()["kvs"][0]["value"].split(" ")[0])
        put_ok(lead, inc["key"], "%d %s" % (now + 1, inc["value"]))
        r = cnt.check(lead)
        assert r["valid"] is False and "applied twice" in r["reason"], r
        print("  caught: " + r["reason"])

if __name__ == "__main__":
    sys.exit(cases.main(globals()))
