"""checkers: verdicts over a finished history — register (per key, through
wgl), set (acknowledged elements on every node) and watch (every watcher
saw exactly the committed event sequence). Each returns a dict with
"valid" (True / False / None = could not tell) and "reason" when not valid.

Must never: pass something it could not check (an unreadable node or an
exhausted search is not valid), or flag an outcome the history allows (info
operations may or may not have happened).
"""

import wgl


def _group(ops, field):
    out = {}
    for op in ops:
        out.setdefault(op[field], []).append(op)
    return out


def _fmt_op(op):
    v = op.get("value")
    extra = " succeeded=%s" % op.get("succeeded") if op["f"] == "cas" and op["type"] == "ok" else ""
    return "  #%d p%s %s %s %r -> %s%s [%s..%s]" % (
        op["id"], op["process"], op["f"], op["key"], v, op["type"], extra,
        op["invoke"], op["complete"])


def check_register(ops, init=None):
    """Linearizability of each key on its own (it composes)."""
    keys = _group([o for o in ops if o["f"] in ("read", "write", "cas")], "key")
    unknown = []
    for key in sorted(keys):
        r = wgl.check(keys[key], init)
        if r["valid"] is False:
            lines = ["key %s is not linearizable; shortest failing window (%d ops):"
                     % (key, len(r["window"]))]
            lines += [_fmt_op(o) for o in r["window"]]
            return {"valid": False, "keys": len(keys),
                    "reason": "register %s: %s cannot be linearized (stale or lost value)"
                              % (key, r["blocker"]["f"] + " #%d" % r["blocker"]["id"]),
                    "detail": "\n".join(lines)}
        if r["valid"] is None:
            unknown.append(key)
    if unknown:
        return {"valid": None, "keys": len(keys),
                "reason": "register search budget exhausted on %s" % ", ".join(unknown)}
    return {"valid": True, "keys": len(keys)}


def check_set(ops, reads):
    """ops: f="add" history ops (value = element). reads: {node: set of
    elements or None if that node could not be read at the end}."""
    adds = [o for o in ops if o["f"] == "add"]
    ok = {o["value"] for o in adds if o["type"] == "ok"}
    maybe = {o["value"] for o in adds if o["type"] == "info"}
    failed = {o["value"] for o in adds if o["type"] == "fail"} - ok - maybe
    res = {"acknowledged": len(ok), "info": len(maybe), "failed": len(failed)}
    problems = []
    for node in sorted(reads, key=str):
        seen = reads[node]
        if seen is None:
            problems.append("%s could not be read" % node)
            continue
        lost = sorted(ok - seen)
        unexpected = sorted(seen - ok - maybe)
        if lost:
            problems.append("%s lost %d acknowledged elements, e.g. %s"
                            % (node, len(lost), lost[:5]))
        if unexpected:
            problems.append("%s has %d elements that failed or were never added, e.g. %s"
                            % (node, len(unexpected), unexpected[:5]))
        res.setdefault("recovered", len(seen & maybe))
    if problems:
        res.update(valid=False, reason="set: " + "; ".join(problems))
    else:
        res["valid"] = True
    return res


def _event_key(ev):
    return (ev["revision"], ev["key"])


def _merge_reference(watchers):
    """The event sequence the watchers jointly saw, by (revision, key);
    or a reason if two of them disagree about one event."""
    ref = {}
    for name, events in watchers.items():
        for ev in events:
            k = _event_key(ev)
            have = ref.setdefault(k, ev)
            if (have["type"], have.get("value")) != (ev["type"], ev.get("value")):
                return None, "watchers disagree on %s at revision %d: %r vs %r (%s)" % (
                    ev["key"], ev["revision"], have, ev, name)
    return [ref[k] for k in sorted(ref)], None


def _order_problem(name, events):
    seen = set()
    last = None
    for ev in events:
        k = _event_key(ev)
        if k in seen:
            return "%s got a duplicated event: %s at revision %d" % (name, ev["key"], ev["revision"])
        if last is not None and k < last:
            return "%s got events out of order: revision %d after %d" % (name, k[0], last[0])
        seen.add(k)
        last = k
    return None


def _in_range(ev, rng):
    return rng is None or rng[0] <= ev["key"] < rng[1]


def _first_divergence(name, events, expected):
    """Where a watcher's events first differ from the committed sequence
    of its range: a reason naming the missed or the extra event."""
    got = list(map(_event_key, events))
    want = list(map(_event_key, expected))
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            if g > w:
                return "%s missed %s at revision %d (gap; it saw revision %d next)" % (
                    name, w[1], w[0], g[0])
            return "%s got %s at revision %d, which is not in the committed history" % (
                name, g[1], g[0])
    if len(got) < len(want):
        w = want[len(got)]
        return "%s missed %d events (gap), first: %s at revision %d" % (
            name, len(want) - len(got), w[1], w[0])
    if len(got) > len(want):
        g = got[len(want)]
        return "%s got %s at revision %d, which is not in the committed history" % (
            name, g[1], g[0])
    return None


def _stored_reference(stored):
    """Every node's stored history must be the same sequence; returns it,
    or (None, reason)."""
    names = sorted(stored, key=str)
    for n in names:
        if stored[n] is None:
            return None, "%s's stored history could not be read back" % n
    base = names[0]
    for n in names[1:]:
        why = _first_divergence(n, stored[n], stored[base])
        if why or any((a["type"], a.get("value")) != (b["type"], b.get("value"))
                      for a, b in zip(stored[n], stored[base])):
            return None, "stored histories differ between %s and %s: %s" % (
                base, n, why or "same revisions, different events")
    return stored[base], None


def check_watch(ops, watchers, final, ranges=None, stored=None):
    """ops: the watch writers' history (f "put"/"delete", ok ones carry the
    `revision` they committed at). watchers: {name: [event dicts
    {revision, type, key, value}]}, each covering the whole run.
    ranges: {name: (lo, hi)} the key range [lo, hi) each watcher follows
    (missing: the whole prefix). stored: {node: [events] or None}, each
    node's stored history read back after the run: they must agree, and
    then they are the committed sequence every watcher is held to
    (without it, the watchers' merged events are). final: {key: (value,
    mod_revision)} from a linearizable read at the end."""
    ranges = ranges or {}
    res = {"watchers": len(watchers), "events": 0}

    def bad(reason):
        res.update(valid=False, reason="watch: " + reason)
        return res
    for name, events in sorted(watchers.items()):
        p = _order_problem(name, events)
        if p:
            return bad(p)
        outside = [ev for ev in events if not _in_range(ev, ranges.get(name))]
        if outside:
            return bad("%s got %s at revision %d, outside its range %r"
                       % (name, outside[0]["key"], outside[0]["revision"], ranges[name]))
    ref, why = _merge_reference(watchers)
    if why:
        return bad(why)
    if stored:
        merged = ref
        ref, why = _stored_reference(stored)
        if why:
            return bad(why)
        ref_set = {_event_key(ev): ev for ev in ref}
        for ev in merged:
            have = ref_set.get(_event_key(ev))
            if have is not None and (have["type"], have.get("value")) != (ev["type"],
                                                                          ev.get("value")):
                return bad("a watcher saw %s at revision %d as %r, the stored history has %r"
                           % (ev["key"], ev["revision"], ev, have))
    res["events"] = len(ref)
    writes = [o for o in ops if o["f"] in ("put", "delete")]
    acked = {o["revision"]: o for o in writes if o["type"] == "ok" and "revision" in o}
    possible = {(o["key"], "PUT" if o["f"] == "put" else "DELETE",
                 o["value"] if o["f"] == "put" else None)
                for o in writes if o["type"] in ("ok", "info")}
    ref_revs = {ev["revision"]: ev for ev in ref}
    for rev, op in sorted(acked.items()):
        ev = ref_revs.get(rev)
        if ev is None or ev["key"] != op["key"]:
            return bad("no watcher saw the acknowledged %s of %s at revision %d (gap)"
                       % (op["f"], op["key"], rev))
    for ev in ref:
        if (ev["key"], ev["type"], ev.get("value")) not in possible:
            return bad("event %s %s=%r at revision %d matches no write that may have happened"
                       % (ev["type"], ev["key"], ev.get("value"), ev["revision"]))
    for name, events in sorted(watchers.items()):
        why = _first_divergence(name, events,
                                [ev for ev in ref if _in_range(ev, ranges.get(name))])
        if why:
            return bad(why)
    state = {}
    for ev in ref:
        if ev["type"] == "PUT":
            state[ev["key"]] = (ev.get("value"), ev["revision"])
        else:
            state.pop(ev["key"], None)
    if state != final:
        diff = sorted(set(state.items()) ^ set(final.items()))[:3]
        return bad("the state the events imply differs from the final read: %s" % diff)
    res["valid"] = True
    return res
