"""wgl: linearizability of one read/write/compare-and-set register, by the
Wing-Gong search with Lowe's memoization (a set of (linearized ops, state)
already explored) — the algorithm of Knossos and Porcupine.

Input ops are history dicts (see history.py) for ONE key: f is "read"
(value = what was read, None = absent), "write" (value = what was written)
or "cas" (value = [expected, new], `succeeded` on ok ops). fail ops did not
happen and are dropped; info reads are dropped (they change nothing); info
writes/cas may happen at any point after their invocation or never, so
their return is placed at infinity and the search succeeds as soon as every
ok op is linearized.

On failure it reports the shortest window of the history that is already
non-linearizable on its own (starting from an unknown value), ending at the
op the search could not get past.
Must never: report a violation that is not one (every shortcut
over-approximates what the register may do), or run without a bound (the
search has a step budget and then answers "unknown").
"""

INF = float("inf")
ANY = ("<any value>",)   # the unknown state at the start of a window
BUDGET = 3_000_000


class _Entry:
    __slots__ = ("op", "bit", "is_ok", "call", "match", "prev", "next")

    def __init__(self, op, bit, is_ok, call):
        self.op, self.bit, self.is_ok, self.call = op, bit, is_ok, call
        self.match = self.prev = self.next = None


def step(state, op):
    """(allowed, next state) for op applied to the register in `state`."""
    f, v = op["f"], op.get("value")
    if f == "read":
        return (True, v) if state is ANY else (state == v, state)
    if f == "write":
        return True, v
    if f == "cas":
        old, new = v
        if op["type"] == "ok" and not op.get("succeeded"):
            return (state is ANY or state != old), state
        if state is ANY or state == old:
            return True, new
        return False, state
    raise ValueError("unknown register op %r" % f)


def prepare(ops):
    """The ops that constrain the register, each with its return time."""
    out = []
    for op in ops:
        if op["type"] == "ok":
            out.append((op, op["invoke"], op["complete"]))
        elif op["type"] == "info" and op["f"] != "read":
            out.append((op, op["invoke"], INF))
    return out


def _build(prepared):
    head = _Entry(None, 0, False, False)
    events = []
    for i, (op, call, ret) in enumerate(prepared):
        c = _Entry(op, 1 << i, op["type"] == "ok", True)
        r = _Entry(op, 1 << i, op["type"] == "ok", False)
        c.match, r.match = r, c
        events.append((call, 0, i, c))
        events.append((ret, 1, i, r))
    events.sort(key=lambda e: e[:3])
    prev = head
    for _, _, _, e in events:
        prev.next, e.prev = e, prev
        prev = e
    return head


def _lift(e):
    e.prev.next = e.next
    e.next.prev = e.prev
    m = e.match
    m.prev.next = m.next
    if m.next is not None:
        m.next.prev = m.prev


def _unlift(e):
    m = e.match
    m.prev.next = m
    if m.next is not None:
        m.next.prev = m
    e.prev.next = e
    e.next.prev = e


def search(prepared, init=None, budget=BUDGET):
    """Returns ("ok"|"violation"|"unknown", the op blocking the deepest
    attempt or None)."""
    head = _build(prepared)
    remaining = sum(1 for op, _, _ in prepared if op["type"] == "ok")
    state, linearized, stack, cache = init, 0, [], set()
    entry, deepest, blocker, steps = head.next, -1, None, 0
    while remaining:
        steps += 1
        if steps > budget:
            return "unknown", blocker
        if entry.call:
            allowed, nxt = step(state, entry.op)
            if allowed:
                key = (linearized | entry.bit, nxt)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state, linearized = nxt, linearized | entry.bit
                    remaining -= entry.is_ok
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if len(stack) > deepest:
                deepest, blocker = len(stack), entry.op
            if not stack:
                return "violation", blocker
            entry, state = stack.pop()
            linearized &= ~entry.bit
            remaining += entry.is_ok
            _unlift(entry)
            entry = entry.next
    return "ok", None


def _window(prepared, t0, t1):
    """The ops a window [t0, t1] must contain to be checkable alone: every
    ok op overlapping it and every info op invoked by its end, widened
    until no ok op straddles an edge. Ops left out before it all precede
    everything in it; ops left out after it follow every ok op in it."""
    while True:
        inside = [p for p in prepared
                  if p[1] <= t1 and (p[2] >= t0 if p[0]["type"] == "ok" else True)]
        oks = [p for p in inside if p[0]["type"] == "ok"]
        n0 = min([t0] + [p[1] for p in oks])
        n1 = max([t1] + [p[2] for p in oks])
        if (n0, n1) == (t0, t1):
            return inside, t0, t1
        t0, t1 = n0, n1


def shortest_window(prepared, blocker, init=None, budget=BUDGET // 10):
    """Grows a window backwards from the blocking op until it alone is not
    linearizable; returns its ops sorted by invocation."""
    b = next(p for p in prepared if p[0] is blocker)
    t0, t1 = b[1], b[2] if b[2] != INF else b[1]
    ends = sorted({p[2] for p in prepared if p[0]["type"] == "ok"}, reverse=True)
    while True:
        inside, t0, t1 = _window(prepared, t0, t1)
        earliest = not any(p[0]["type"] == "ok" and p[2] < t0 for p in prepared)
        verdict, _ = search(inside, init if earliest else ANY, budget)
        if verdict != "ok" or earliest:
            return sorted((p[0] for p in inside), key=lambda o: o["invoke"])
        t0 = next(e for e in ends if e < t0)


def check(ops, init=None, budget=BUDGET):
    """{"valid": True|False|None, "window": [ops] on failure, "blocker": op}"""
    prepared = prepare(ops)
    verdict, blocker = search(prepared, init, budget)
    if verdict == "ok":
        return {"valid": True}
    if verdict == "unknown":
        return {"valid": None, "blocker": blocker}
    return {"valid": False, "blocker": blocker,
            "window": shortest_window(prepared, blocker, init)}
