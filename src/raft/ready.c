/* ready.c: the core's output — building a Ready (what to persist, send,
 * install and apply), taking it back in raft_advance (which is where
 * committed conf entries take effect), and log compaction after the
 * application snapshotted.
 *
 * Must never: hand out an entry for applying before it was handed out for
 * persisting, or dereference the caller's copy of a Ready in raft_advance
 * (what was handed out is remembered in r->rd).
 */
#include "raft/raft_int.h"

#include <string.h>

static bool hs_changed(const raft *r)
{
    return r->term != r->prev_hs.term || r->vote != r->prev_hs.vote ||
           r->commit != r->prev_hs.commit;
}

/* First index to hand out for applying: after the snapshot to install. */
static raft_index apply_from(const raft *r)
{
    return (r->snap_pending ? r->snap.index : r->applied) + 1;
}

bool raft_has_ready(const raft *r)
{
    return r->n_out || r->n_reads || r->n_refused || hs_changed(r) || r->snap_pending ||
           r->log.stable < raft_log_last(&r->log) || r->commit >= apply_from(r);
}

static size_t committed_count(const raft *r, raft_index from)
{
    if (r->commit < from)
        return 0;
    size_t n = raft_log_span(&r->log, from, RAFT_READY_APPLY_BYTES);
    if ((uint64_t)n > r->commit - from + 1)
        n = (size_t)(r->commit - from + 1);
    return n;
}

int raft_ready_get(raft *r, raft_ready *rd)
{
    if (!r || !rd)
        return RAFT_ERR_INVALID;
    memset(rd, 0, sizeof *rd);
    raft_handed *h = &r->rd;
    memset(h, 0, sizeof *h);
    h->active = true;
    h->hs = (raft_hard_state){r->term, r->vote, r->commit};
    rd->has_hard_state = hs_changed(r);
    rd->hs = h->hs;

    raft_log *l = &r->log;
    h->stable_to = l->stable;
    if (l->stable < raft_log_last(l)) {
        rd->entries = &l->ents[l->stable - l->offset];
        rd->n_entries = (size_t)(raft_log_last(l) - l->stable);
        h->stable_to = raft_log_last(l);
        h->stable_term = raft_log_last_term(l);
    }
    rd->has_snapshot = h->snap = r->snap_pending;
    rd->snapshot = r->snap;

    rd->messages = r->out;
    rd->n_messages = h->n_out = r->n_out;
    rd->reads = r->reads;
    rd->n_reads = h->n_reads = r->n_reads;
    rd->refused = r->refused;
    rd->n_refused = h->n_refused = r->n_refused;

    raft_index from = apply_from(r);
    rd->n_committed = committed_count(r, from);
    rd->committed = rd->n_committed ? raft_log_at(l, from) : NULL;
    h->applied_to = from - 1 + rd->n_committed;
    return 0;
}

/* Conf entries take effect as they are applied, in log order. */
static void apply_to(raft *r, raft_index to)
{
    while (r->applied < to) {
        const raft_entry *e = raft_log_at(&r->log, r->applied + 1);
        r->applied++;
        if (e && e->type == RAFT_ENTRY_CONF)
            raft_apply_conf_entry(r, e);
    }
}

/* Safe for a leader's appends and heartbeats: its term was made durable
 * before it could win, and the follower acknowledgements that could commit
 * these entries are stepped after this Ready's fsync. So the followers'
 * fsyncs overlap the leader's own. */
bool raft_ready_may_send_early(const raft *r, const raft_ready *rd)
{
    if (!r || r->role != RAFT_LEADER)
        return false;
    for (size_t i = 0; i < rd->n_messages; i++)
        if (rd->messages[i].type != RAFT_MSG_APPEND && rd->messages[i].type != RAFT_MSG_HEARTBEAT)
            return false;
    return true;
}

/* The Ready handed out last, taken back once: false if none is out. */
static bool take_handed(raft *r, raft_handed *h)
{
    *h = r->rd;
    r->rd.active = false;
    return h->active;
}

int raft_advance_held(raft *r, bool applied)
{
    raft_handed h;
    if (!r)
        return RAFT_ERR_INVALID;
    if (!take_handed(r, &h))
        return 0;
    raft_outbox_drop(r, h.n_out, h.n_reads);
    raft_refusals_drop(r, h.n_refused);
    if (applied && !h.snap) /* a snapshot to install comes before any apply */
        apply_to(r, h.applied_to);
    return 0;
}

int raft_advance(raft *r, const raft_ready *rd)
{
    raft_handed h;
    if (!r)
        return RAFT_ERR_INVALID;
    if (!take_handed(r, &h))
        return 0;
    if (h.snap) {
        r->snap_pending = false;
        if (r->applied < r->snap.index)
            r->applied = r->snap.index;
    }
    if (h.stable_to > r->log.stable && raft_log_match(&r->log, h.stable_to, h.stable_term))
        r->log.stable = h.stable_to;
    r->prev_hs = h.hs;
    apply_to(r, h.applied_to);
    raft_outbox_drop(r, h.n_out, h.n_reads);
    raft_refusals_drop(r, h.n_refused);
    return 0;
}

int raft_snapshot_taken_at(raft *r, raft_index index, raft_index compact_to,
                           raft_snapshot_meta *meta)
{
    /* The snapshot's membership is today's: only true if it has not
     * changed since index. */
    if (!r || index > r->applied || index < r->conf_index || index < r->snap.index ||
        compact_to > index || r->snap_pending)
        return RAFT_ERR_INVALID;
    raft_term t;
    if (raft_log_term(&r->log, index, &t) != 0)
        return RAFT_ERR_COMPACTED; /* defensive: log offset <= snap.index <= index */
    r->snap.index = index;
    r->snap.term = t;
    r->snap.conf = r->conf;
    if (meta)
        *meta = r->snap;
    /* Never drop what was not handed out for persisting yet. */
    if (compact_to > r->log.stable)
        compact_to = r->log.stable;
    raft_log_compact(&r->log, compact_to);
    return 0;
}
