/* fx_node: each node as the real node loop runs it — starting from the
 * emulated disk, draining Readies (persist, send, apply, answer reads,
 * advance), the emulated state machine, snapshots, reads, crash/restart and
 * the client calls.
 *
 * Must never: look inside raft beyond raft.h, touch the network queue other
 * than through fx_net.c, or judge what it sees (fx_check.c does).
 */
#include "fx_int.h"

#include <stdlib.h>
#include <string.h>

static void sm_reset(fx *f, fx_node *n, const fx_slot *data, raft_index count)
{
    n->applied = 0;
    if (count && !fx_grow(f, &n->sm, &n->cap_sm, (size_t)count, sizeof *n->sm))
        return;
    if (count)
        memcpy(n->sm, data, (size_t)count * sizeof *n->sm);
    n->applied = count;
}

static void sm_install(fx *f, fx_node *n, const raft_snapshot_meta *meta)
{
    if (!n->pending_snap || n->pending_snap_n != meta->index) {
        fx_fail(f, "node %llu installs snapshot %llu it never received (last received %llu)",
                (ull)n->id, (ull)meta->index, (ull)n->pending_snap_n);
        return;
    }
    if (meta->index < n->applied) {
        fx_fail(f, "node %llu installs snapshot %llu below its applied index %llu",
                (ull)n->id, (ull)meta->index, (ull)n->applied);
        return;
    }
    for (raft_index i = 1; i <= meta->index && !f->failed; i++)
        fx_check_commit(f, n, i, n->pending_snap[i - 1]);
    sm_reset(f, n, n->pending_snap, meta->index);
    n->n_log = 0; /* the whole stored log goes */
    fx_disk_set_snapshot(f, n, meta, n->pending_snap);
    if (f->trace)
        fprintf(f->trace, "    node %llu installed snapshot %llu (term %llu)\n", (ull)n->id,
                (ull)meta->index, (ull)meta->term);
}

static void sm_apply(fx *f, fx_node *n, const raft_entry *e)
{
    raft_term t;
    if (e->index != n->applied + 1) {
        fx_fail(f, "node %llu applies index %llu after %llu", (ull)n->id, (ull)e->index,
                (ull)n->applied);
        return;
    }
    if (e->index > n->hs.commit) {
        fx_fail(f, "node %llu applies index %llu beyond its persisted commit %llu",
                (ull)n->id, (ull)e->index, (ull)n->hs.commit);
        return;
    }
    if (!fx_disk_term(n, e->index, &t) || t != e->term) {
        fx_fail(f, "node %llu applies index %llu term %llu that its disk does not hold",
                (ull)n->id, (ull)e->index, (ull)e->term);
        return;
    }
    const fx_blob *b = fx_blob_of(f, e);
    if (!b || !fx_grow(f, &n->sm, &n->cap_sm, (size_t)e->index, sizeof *n->sm))
        return;
    fx_slot s = {.term = e->term, .b = b};
    n->sm[n->applied++] = s;
    fx_check_commit(f, n, e->index, s);
}

/* Takes a snapshot when enough entries were applied since the last one. */
static void sm_maybe_snapshot(fx *f, fx_node *n)
{
    int every = f->o.snapshot_every;
    if (every <= 0 || n->applied < n->snap.index + (raft_index)every)
        return;
    raft_index keep = f->o.snapshot_keep > 0 ? (raft_index)f->o.snapshot_keep : 0;
    raft_index to = n->applied > keep ? n->applied - keep : 0;
    raft_index first = raft_first_index(n->r);
    if (first && to < first - 1)
        to = first - 1; /* never ask to compact what is already gone */
    raft_snapshot_meta meta;
    memset(&meta, 0, sizeof meta);
    int rc = raft_snapshot_taken_at(n->r, n->applied, to, &meta);
    if (rc) {
        fx_fail(f, "node %llu: raft_snapshot_taken_at(%llu) = %d (applied %llu, first %llu)",
                (ull)n->id, (ull)to, rc, (ull)n->applied, (ull)first);
        return;
    }
    if (meta.index != n->applied) {
        fx_fail(f, "node %llu snapshot meta index %llu != applied %llu", (ull)n->id,
                (ull)meta.index, (ull)n->applied);
        return;
    }
    raft_term t;
    if (!fx_disk_term(n, meta.index, &t) || t != meta.term)
        fx_fail(f, "node %llu snapshot meta term %llu does not match its log at %llu",
                (ull)n->id, (ull)meta.term, (ull)meta.index);
    fx_disk_set_snapshot(f, n, &meta, n->sm);
    if (f->trace)
        fprintf(f->trace, "    node %llu snapshot at %llu, compacted to %llu\n", (ull)n->id,
                (ull)meta.index, (ull)to);
}

static fx_read *read_find(fx_node *n, uint64_t ctx)
{
    for (size_t i = 0; i < n->n_reads; i++)
        if (n->reads[i].ctx == ctx)
            return &n->reads[i];
    return NULL;
}

static fx_read *read_add(fx *f, fx_node *n, uint64_t ctx)
{
    fx_read *rd = read_find(n, ctx);
    if (rd)
        return rd;
    if (!fx_grow(f, &n->reads, &n->cap_reads, n->n_reads + 1, sizeof *n->reads))
        return NULL;
    rd = &n->reads[n->n_reads++];
    memset(rd, 0, sizeof *rd);
    rd->ctx = ctx;
    return rd;
}

/* Linearizable reads: the read point covers everything applied anywhere
 * before the request was made. */
static void read_confirm(fx *f, fx_node *n, fx_read *rd, const raft_read_state *rs)
{
    if (rs->index < rd->min_index)
        fx_fail(f, "stale read on node %llu: ctx %llu read at %llu (answer to ctx %llu) "
                   "but %llu was applied before the request",
                (ull)n->id, (ull)rd->ctx, (ull)rs->index, (ull)rs->context,
                (ull)rd->min_index);
    if (!rd->done && f->trace)
        fprintf(f->trace, "    node %llu read ctx %llu at %llu\n", (ull)n->id,
                (ull)rd->ctx, (ull)rs->index);
    rd->done = true;
    rd->index = rs->index;
}

/* As the node loop does, a read state confirms every waiting read of this
 * life asked at or below its context (callers number rounds upwards; reads
 * from before a restart were forgotten with the node's memory). */
static void read_answered(fx *f, fx_node *n, const raft_read_state *rs)
{
    for (size_t i = 0; i < n->n_reads; i++) {
        fx_read *rd = &n->reads[i];
        if (rd->ctx == rs->context || (!rd->done && rd->ctx < rs->context))
            read_confirm(f, n, rd, rs);
    }
}

static void node_ready_once(fx *f, fx_node *n, const raft_ready *rd)
{
    n->durable_commit = n->hs.commit;
    if (rd->has_snapshot)
        sm_install(f, n, &rd->snapshot);
    if (rd->has_hard_state)
        fx_disk_save_hs(f, n, &rd->hs);
    fx_disk_append(f, n, rd->entries, rd->n_entries);
    if (rd->n_messages && !rd->messages)
        fx_fail(f, "node %llu Ready has messages and no array", (ull)n->id);
    for (size_t i = 0; i < rd->n_messages && rd->messages && !f->failed; i++)
        fx_net_send(f, n, &rd->messages[i]);
    if (rd->n_committed && !rd->committed)
        fx_fail(f, "node %llu Ready has committed entries and no array", (ull)n->id);
    for (size_t i = 0; i < rd->n_committed && rd->committed && !f->failed; i++)
        sm_apply(f, n, &rd->committed[i]);
    for (size_t i = 0; i < rd->n_reads && rd->reads && !f->failed; i++)
        read_answered(f, n, &rd->reads[i]);
}

/* Drains n's Readies exactly as the node loop will. */
void fx_node_process(fx *f, fx_node *n)
{
    for (int round = 0; n->up && raft_has_ready(n->r); round++) {
        if (round > 100) {
            fx_fail(f, "node %llu keeps producing Readies", (ull)n->id);
            return;
        }
        raft_ready rd;
        memset(&rd, 0, sizeof rd);
        int rc = raft_ready_get(n->r, &rd);
        if (rc) {
            fx_fail(f, "node %llu: raft_ready_get = %d", (ull)n->id, rc);
            return;
        }
        node_ready_once(f, n, &rd);
        rc = raft_advance(n->r, &rd);
        if (rc)
            fx_fail(f, "node %llu: raft_advance = %d", (ull)n->id, rc);
        if (f->failed)
            return;
        sm_maybe_snapshot(f, n);
    }
    fx_observe_leader(f, n);
}

int fx_node_start(fx *f, fx_node *n)
{
    raft_config cfg = {
        .id = n->id,
        .election_tick = f->o.election_tick,
        .heartbeat_tick = f->o.heartbeat_tick,
        .pre_vote = f->o.pre_vote,
        .check_quorum = f->o.check_quorum,
        .max_inflight = f->o.max_inflight,
        /* small, so catch-ups take several APPENDs; on a third of the seeds
         * one entry per APPEND, so an old-term entry can reach a majority
         * alone (the Figure 8 hazard of the Raft paper) */
        .max_msg_bytes = f->o.seed % 3 == 0 ? 1 : 256,
        .seed = f->o.seed * 1000003ULL + n->id * 7919ULL + n->incarnation,
    };
    raft_init_state init;
    memset(&init, 0, sizeof init);
    init.hs = n->hs;
    init.snap = n->snap;
    init.applied = n->snap.index; /* the emulated state machine is volatile */
    init.conf = n->snap.index ? n->snap.conf : n->boot_conf;
    raft_entry *es = calloc(n->n_log ? n->n_log : 1, sizeof *es);
    if (!es)
        return RAFT_ERR_NOMEM;
    for (size_t k = 0; k < n->n_log; k++) {
        const fx_blob *b = n->log[k].b;
        es[k] = (raft_entry){.term = n->log[k].term, .index = n->snap.index + 1 + k,
                             .type = b->type, .len = b->len,
                             /* the core copies; it never writes through this */
                             .data = b->len ? (uint8_t *)b->data : NULL};
    }
    init.n_entries = n->n_log;
    init.entries = es;
    int rc = raft_new(&cfg, &init, &n->r);
    free(es);
    if (rc) {
        n->r = NULL;
        fx_fail(f, "node %llu: raft_new = %d", (ull)n->id, rc);
        return rc;
    }
    n->incarnation++;
    n->up = true;
    n->n_reads = 0;
    /* Rounds are numbered from the fixture's clock, as the node loop numbers
     * them from the real-time clock (one round per step at most, so a life's
     * numbers stay below the next life's). Starting each life at 0 instead,
     * the node loop's numbering before issue 4's fix, makes seeds such as
     * 141 and 492 fail with a stale read: an answer to a round of the previous
     * life confirms a read of this one. */
    n->next_ctx = f->step << 20;
    n->leader_checked = 0;
    sm_reset(f, n, n->snap_sm, n->snap.index);
    fx_node_process(f, n);
    return 0;
}

void fx_node_stop(fx *f, fx_node *n)
{
    if (!n->up)
        return;
    raft_free(n->r);
    n->r = NULL;
    n->up = false;
    n->applied = 0;
    n->n_reads = 0;
    free(n->pending_snap);
    n->pending_snap = NULL;
    n->pending_snap_n = 0;
    fx_net_drop_to(f, n->id);
}

void fx_node_free(fx_node *n)
{
    if (n->r)
        raft_free(n->r);
    free(n->snap_sm);
    free(n->log);
    free(n->sm);
    free(n->pending_snap);
    free(n->reads);
}

void fx_node_tick(fx *f, fx_node *n)
{
    if (!n || !n->up)
        return;
    raft_tick(n->r);
    fx_node_process(f, n);
}

int fx_propose(fx *f, raft_id id, const char *data)
{
    fx_node *n = fx_node_get(f, id);
    if (!n || !n->up || !data)
        return RAFT_ERR_INVALID;
    int rc = raft_propose(n->r, (const uint8_t *)data, (uint32_t)strlen(data));
    fx_node_process(f, n);
    return rc;
}

int fx_propose_conf(fx *f, raft_id id, uint8_t op, raft_id target)
{
    fx_node *n = fx_node_get(f, id);
    if (!n || !n->up)
        return RAFT_ERR_INVALID;
    raft_conf_change cc = {.op = op, .id = target, .ctx_len = 0, .ctx = NULL};
    int rc = raft_propose_conf(n->r, &cc);
    fx_node_process(f, n);
    return rc;
}

int fx_read_index(fx *f, raft_id id, uint64_t ctx)
{
    fx_node *n = fx_node_get(f, id);
    if (!n || !n->up)
        return RAFT_ERR_INVALID;
    fx_read *rd = read_add(f, n, ctx);
    if (!rd)
        return RAFT_ERR_NOMEM;
    /* A shared context must satisfy its latest asker too. */
    if (f->n_committed > rd->min_index)
        rd->min_index = f->n_committed;
    rd->done = false;
    int rc = raft_read_index(n->r, ctx);
    fx_node_process(f, n);
    return rc;
}

bool fx_read_done(fx *f, raft_id id, uint64_t ctx, raft_index *index)
{
    fx_node *n = fx_node_get(f, id);
    fx_read *rd = n && n->up ? read_find(n, ctx) : NULL;
    if (!rd || !rd->done)
        return false;
    if (index)
        *index = rd->index;
    return true;
}

raft_index fx_applied(fx *f, raft_id id)
{
    fx_node *n = fx_node_get(f, id);
    return n && n->up ? n->applied : 0;
}

const char *fx_applied_data(fx *f, raft_id id, raft_index index)
{
    fx_node *n = fx_node_get(f, id);
    if (!n || !n->up || index == 0 || index > n->applied)
        return NULL;
    const fx_blob *b = n->sm[index - 1].b;
    return b->type == RAFT_ENTRY_CONF ? "" : (const char *)b->data;
}

void fx_crash(fx *f, raft_id id)
{
    fx_node *n = fx_node_get(f, id);
    if (n)
        fx_node_stop(f, n);
}

void fx_restart(fx *f, raft_id id)
{
    fx_node *n = fx_node_get(f, id);
    if (n && !n->up)
        fx_node_start(f, n);
}

int fx_add_node(fx *f, raft_id id)
{
    if (id == 0 || id > FX_MAX_NODES || f->nodes[id].exists)
        return RAFT_ERR_INVALID;
    fx_node *n = &f->nodes[id];
    memset(n, 0, sizeof *n);
    n->id = id;
    n->exists = true; /* init all zero, conf empty: it learns from the leader */
    return fx_node_start(f, n);
}
