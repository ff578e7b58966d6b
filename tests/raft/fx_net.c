/* fx_net: the simulated network — a queue of messages (copies with
 * interned payloads) that can be dropped, delayed, duplicated, reordered,
 * cut in either direction, partitioned, healed and held, and the transport's
 * reports (snapshot sent or failed, peer unreachable).
 *
 * Must never: deliver to a crashed node, deliver across a cut, or keep a
 * pointer into a Ready.
 */
#include "fx_int.h"

#include <stdlib.h>
#include <string.h>

void fx_qmsg_free(fx_qmsg *qm)
{
    free(qm->ents);
    qm->ents = NULL;
    qm->m.entries = NULL;
    qm->m.n_entries = 0;
    free(qm->snap);
    qm->snap = NULL;
}

/* Copies m into qm: the header, and the entries as headers whose payloads
 * are interned (the bytes live as long as the fixture), so the queue never
 * points into a Ready. */
static bool qmsg_copy(fx *f, fx_qmsg *qm, const raft_msg *m)
{
    qm->m = *m;
    qm->m.entries = NULL;
    qm->ents = NULL;
    if (!m->n_entries)
        return true;
    if (!m->entries) {
        fx_fail(f, "node %llu sent %u entries and no array", (ull)m->from, m->n_entries);
        return false;
    }
    qm->ents = malloc(m->n_entries * sizeof *qm->ents);
    if (!qm->ents) {
        fx_fail(f, "fixture: out of memory");
        return false;
    }
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const fx_blob *b = fx_blob_of(f, &m->entries[i]);
        if (!b) {
            free(qm->ents);
            qm->ents = NULL;
            return false;
        }
        qm->ents[i] = m->entries[i];
        qm->ents[i].data = b->len ? (uint8_t *)b->data : NULL; /* the core copies */
    }
    qm->m.entries = qm->ents;
    return true;
}

static void trace_msg(fx *f, const char *what, const raft_msg *m)
{
    if (!f->trace)
        return;
    fprintf(f->trace, "    %s %llu->%llu %s t=%llu lt=%llu i=%llu c=%llu n=%u%s ctx=%llu\n",
            what, (ull)m->from, (ull)m->to, raft_msg_type_name(m->type), (ull)m->term,
            (ull)m->log_term, (ull)m->index, (ull)m->commit, m->n_entries,
            m->reject ? " REJECT" : "", (ull)m->context);
}

static bool net_push(fx *f, fx_qmsg *qm)
{
    if (!fx_grow(f, &f->q, &f->cap_q, f->n_q + 1, sizeof *f->q)) {
        fx_qmsg_free(qm);
        return false;
    }
    f->q[f->n_q++] = *qm;
    return true;
}

static uint64_t net_delay(fx *f)
{
    return f->faults && f->o.max_delay > 0 ? fx_rng_below(f, (uint64_t)f->o.max_delay + 1) : 0;
}

void fx_net_send(fx *f, fx_node *n, const raft_msg *m)
{
    /* an answer to the byzantine nemesis' stranger (fx_byzantine.c): only
     * an append's rejection, which tells where our log ends */
    if (m->from == n->id && m->to >= FX_BYZANTINE_FIRST_ID && m->to < FX_BYZANTINE_FIRST_ID + 10) {
        if (m->type != RAFT_MSG_APPEND_RESP || !m->reject)
            fx_fail(f, "node %llu answered non-member %llu with a %s", (ull)n->id, (ull)m->to,
                    raft_msg_type_name(m->type));
        return;
    }
    if (m->from != n->id || m->to == 0 || m->to > FX_MAX_NODES || m->to == n->id) {
        fx_fail(f, "node %llu sent a message from %llu to %llu", (ull)n->id, (ull)m->from,
                (ull)m->to);
        return;
    }
    fx_qmsg qm;
    memset(&qm, 0, sizeof qm);
    if (m->type == RAFT_MSG_SNAP) {
        if (m->snapshot.index != n->snap.index || m->snapshot.term != n->snap.term) {
            fx_fail(f, "node %llu sends snapshot %llu/%llu but stores %llu/%llu", (ull)n->id,
                    (ull)m->snapshot.index, (ull)m->snapshot.term, (ull)n->snap.index,
                    (ull)n->snap.term);
            return;
        }
        qm.snap = fx_slots_dup(f, n->snap_sm, (size_t)n->snap.index);
        if (!qm.snap)
            return;
    }
    if (!qmsg_copy(f, &qm, m)) {
        free(qm.snap);
        return;
    }
    qm.at = f->step + net_delay(f);
    net_push(f, &qm);
}

static void report_snapshot(fx *f, raft_id from, raft_id to, bool ok)
{
    fx_node *src = fx_node_get(f, from);
    if (!src || !src->up)
        return;
    fx_node_unpark(f, src); /* the node loop reads its inbox between Readies */
    raft_report_snapshot(src->r, to, ok);
    fx_node_process(f, src);
}

static void report_unreachable(fx *f, raft_id from, raft_id to)
{
    fx_node *src = fx_node_get(f, from);
    if (!src || !src->up)
        return;
    fx_node_unpark(f, src);
    raft_report_unreachable(src->r, to);
    fx_node_process(f, src);
}

static void net_duplicate(fx *f, const fx_qmsg *qm)
{
    fx_qmsg dup;
    memset(&dup, 0, sizeof dup);
    if (qm->snap && !(dup.snap = fx_slots_dup(f, qm->snap, (size_t)qm->m.snapshot.index)))
        return;
    if (!qmsg_copy(f, &dup, &qm->m)) {
        free(dup.snap);
        return;
    }
    dup.at = f->step + 1 + net_delay(f);
    net_push(f, &dup);
}

/* Delivers (or loses) one message; takes ownership of qm. */
static void net_deliver(fx *f, fx_qmsg *qm)
{
    raft_id from = qm->m.from, to = qm->m.to;
    fx_node *dst = fx_node_get(f, to);
    bool is_cut = f->cut[from][to];
    bool lost = !dst || !dst->up || is_cut ||
                (f->faults && !f->calm && fx_rng_chance(f, f->o.drop));
    if (lost) {
        trace_msg(f, "drop", &qm->m);
        bool snap = qm->m.type == RAFT_MSG_SNAP;
        fx_qmsg_free(qm);
        if (snap)
            report_snapshot(f, from, to, false);
        else if (is_cut && f->faults && fx_rng_below(f, 4) == 0)
            report_unreachable(f, from, to);
        return;
    }
    if (f->faults && fx_rng_chance(f, f->o.duplicate))
        net_duplicate(f, qm);
    trace_msg(f, "deliver", &qm->m);
    fx_node_unpark(f, dst); /* a parked node steps it after its fsync */
    bool snap = qm->m.type == RAFT_MSG_SNAP;
    if (snap) {
        free(dst->pending_snap);
        dst->pending_snap = qm->snap;
        dst->pending_snap_n = qm->m.snapshot.index;
        qm->snap = NULL;
    }
    fx_core_enter(f);
    int rc = raft_step(dst->r, &qm->m);
    fx_core_leave();
    if (rc == RAFT_ERR_LOG_LOST) /* nothing here rolls a disk back */
        fx_fail(f, "node %llu reported a lost log (a heartbeat's commit beyond it)", (ull)to);
    if (rc && f->trace)
        fprintf(f->trace, "    step on %llu returned %d\n", (ull)to, rc);
    fx_qmsg_free(qm);
    fx_node_process(f, dst);
    if (snap)
        report_snapshot(f, from, to, rc == 0);
}

/* Moves the messages due now (all of them when `all`) out of the queue and
 * delivers them in queue order; returns how many. */
int fx_net_deliver_due(fx *f, bool all)
{
    size_t n = 0, keep = 0;
    fx_qmsg *batch = malloc((f->n_q ? f->n_q : 1) * sizeof *batch);
    if (!batch) {
        fx_fail(f, "fixture: out of memory");
        return 0;
    }
    for (size_t i = 0; i < f->n_q; i++) {
        const raft_msg *m = &f->q[i].m;
        if ((all || f->q[i].at <= f->step) && !f->held[m->from][m->to])
            batch[n++] = f->q[i];
        else
            f->q[keep++] = f->q[i];
    }
    f->n_q = keep;
    for (size_t i = 0; i < n; i++)
        net_deliver(f, &batch[i]);
    free(batch);
    return (int)n;
}

/* Loses every queued message to `id`. A lost snapshot is reported to its
 * sender, as the real transport reports a failed stream. Held messages
 * (fx_hold) are still in the sender's queue and reach the next life. */
void fx_net_drop_to(fx *f, raft_id id)
{
    raft_id snap_from[FX_MAX_NODES + 1] = {0};
    size_t keep = 0;
    for (size_t i = 0; i < f->n_q; i++) {
        fx_qmsg *qm = &f->q[i];
        if (qm->m.to != id || f->held[qm->m.from][id]) {
            f->q[keep++] = *qm;
            continue;
        }
        if (qm->m.type == RAFT_MSG_SNAP && qm->m.from <= FX_MAX_NODES)
            snap_from[qm->m.from] = 1;
        fx_qmsg_free(qm);
    }
    f->n_q = keep;
    for (raft_id from = 1; from <= FX_MAX_NODES; from++)
        if (snap_from[from])
            report_snapshot(f, from, id, false);
}

int fx_deliver(fx *f, int max_rounds)
{
    int total = 0;
    for (int round = 0; round < max_rounds && f->n_q; round++) {
        f->step++;
        int n = fx_net_deliver_due(f, true);
        if (n == 0)
            break; /* what is left is held */
        total += n;
    }
    return total;
}

void fx_cut(fx *f, raft_id from, raft_id to)
{
    if (from && to && from <= FX_MAX_NODES && to <= FX_MAX_NODES)
        f->cut[from][to] = true;
}

void fx_isolate(fx *f, raft_id id)
{
    for (raft_id o = 1; o <= FX_MAX_NODES; o++) {
        if (o == id)
            continue;
        fx_cut(f, id, o);
        fx_cut(f, o, id);
    }
}

void fx_partition(fx *f, const raft_id *a, size_t n_a)
{
    bool in_a[FX_MAX_NODES + 1] = {false};
    for (size_t i = 0; i < n_a; i++)
        if (a[i] && a[i] <= FX_MAX_NODES)
            in_a[a[i]] = true;
    for (raft_id x = 1; x <= FX_MAX_NODES; x++)
        for (raft_id y = 1; y <= FX_MAX_NODES; y++)
            if (in_a[x] != in_a[y])
                f->cut[x][y] = true;
}

void fx_heal(fx *f)
{
    memset(f->cut, 0, sizeof f->cut);
}

void fx_hold(fx *f, raft_id from, raft_id to)
{
    if (from && to && from <= FX_MAX_NODES && to <= FX_MAX_NODES)
        f->held[from][to] = true;
}

size_t fx_release(fx *f, raft_id from, raft_id to)
{
    if (!from || !to || from > FX_MAX_NODES || to > FX_MAX_NODES)
        return 0;
    f->held[from][to] = false;
    size_t n = 0;
    for (size_t i = 0; i < f->n_q; i++)
        n += f->q[i].m.from == from && f->q[i].m.to == to;
    return n;
}

bool fx_deliver_held(fx *f, raft_id from, raft_id to)
{
    for (size_t i = 0; i < f->n_q; i++) {
        if (f->q[i].m.from != from || f->q[i].m.to != to)
            continue;
        fx_qmsg qm = f->q[i];
        memmove(f->q + i, f->q + i + 1, (f->n_q - i - 1) * sizeof *f->q);
        f->n_q--;
        f->step++;
        net_deliver(f, &qm);
        return true;
    }
    return false;
}
