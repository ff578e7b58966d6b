/* fx_node: each node as src/server/node.c runs it — starting from the
 * emulated disk (recovery), draining Readies in handle_ready's order
 * (install, early send for a leader's APPEND/HEARTBEAT-only Ready, fsync,
 * send, apply, answer reads, advance), background snapshots (started at
 * the applied index, adopted snapshot_lag steps later with
 * raft_snapshot_taken_at or refused), reads, crash/restart and the client
 * calls. In random mode an early-sent Ready's fsync may outlive the step
 * ("parked"): the node takes no input until it finishes (any input first
 * finishes it, as the node loop reads its inbox only between Readies), and
 * a crash meanwhile loses all of that Ready.
 *
 * Must never: look inside raft beyond raft.h, let anything reach the disk
 * before its Ready's fsync, touch the network queue other than through
 * fx_net.c, or let a snapshot refusal pass without a reason.
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
    if (!fx_conf_at(f, n, data, count, &n->sm_conf))
        fx_fail(f, "node %llu: a conf entry below %llu does not decode", (ull)n->id,
                (ull)count);
}

/* A snapshot's membership must be the one its entries make. */
static void check_snap_conf(fx *f, fx_node *n, const raft_snapshot_meta *meta,
                            const fx_slot *data, const char *what)
{
    raft_conf c;
    if (fx_conf_at(f, n, data, meta->index, &c) && !fx_conf_same(&c, &meta->conf))
        fx_fail(f, "snapshot conf: node %llu %s snapshot %llu recording %u voters and %u "
                   "learners, but the entries up to it make %u voters and %u learners",
                (ull)n->id, what, (ull)meta->index, meta->conf.n_voters,
                meta->conf.n_learners, c.n_voters, c.n_learners);
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
    check_snap_conf(f, n, meta, n->pending_snap, "installs");
    sm_reset(f, n, n->pending_snap, meta->index);
    n->n_log = 0; /* the whole stored log goes */
    fx_disk_set_snapshot(f, n, meta, n->pending_snap);
    n->snap_trigger = meta->index; /* as node.c's install_snapshot */
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
    if (!fx_conf_step(&n->sm_conf, b))
        fx_fail(f, "node %llu applies conf entry %llu that does not decode", (ull)n->id,
                (ull)e->index);
    fx_check_commit(f, n, e->index, s);
}

/* ---- background snapshots, as node.c's maybe_snapshot/adopt_snapshot ---- */

static void job_drop(fx_node *n)
{
    free(n->job_data);
    n->job_data = NULL;
    n->job = false;
}

/* Starts copying the state applied now; it is done snapshot_lag steps
 * later at most (random mode), at the end of this Ready otherwise. */
static void job_start(fx *f, fx_node *n)
{
    n->job_data = fx_slots_dup(f, n->sm, (size_t)n->applied);
    if (!n->job_data)
        return;
    n->job = true;
    n->job_index = n->applied;
    f->stats.snaps_started++;
    uint64_t lag = f->faults && f->o.snapshot_lag > 0
                       ? fx_rng_below(f, (uint64_t)f->o.snapshot_lag + 1)
                       : 0;
    n->job_due = f->step + lag;
    n->snap_trigger = n->applied;
}

/* True if a conf entry applied after `index` changed the membership
 * (an invalid change is a no-op everywhere and changes nothing). */
static bool conf_changed_after(fx *f, const fx_node *n, raft_index index)
{
    raft_conf c;
    raft_conf_change cc;
    if (!fx_conf_at(f, n, n->sm, index, &c))
        return false;
    for (raft_index i = index + 1; i <= n->applied; i++) {
        const fx_blob *b = n->sm[i - 1].b;
        if (b->type == RAFT_ENTRY_CONF && !raft_conf_change_decode(b->data, b->len, &cc) &&
            raft_conf_apply(&c, &cc) == 0)
            return true;
    }
    return false;
}

/* Why the core may refuse a snapshot at `index` (NULL if it may not):
 * membership changed after it, or a newer snapshot meanwhile. */
static const char *refusal_reason(fx *f, const fx_node *n, raft_index index)
{
    if (conf_changed_after(f, n, index))
        return "membership changed after it";
    if (n->snap.index > index)
        return "a newer snapshot was installed";
    return NULL;
}

static void job_refused(fx *f, fx_node *n, int rc)
{
    const char *why = refusal_reason(f, n, n->job_index);
    if (!why)
        fx_fail(f, "node %llu: raft_snapshot_taken_at(%llu) = %d with no reason to refuse "
                   "(applied %llu, snapshot %llu)",
                (ull)n->id, (ull)n->job_index, rc, (ull)n->applied, (ull)n->snap.index);
    else if (f->trace)
        fprintf(f->trace, "    node %llu snapshot at %llu refused (%d): %s\n", (ull)n->id,
                (ull)n->job_index, rc, why);
    n->snap_trigger = 0; /* try again soon, as node.c does */
    f->stats.snaps_refused++;
}

/* The accepted snapshot must describe the copied state; then it is stored
 * (storage_snapshot_adopt) with the log up to `to` dropped. */
static void job_adopted(fx *f, fx_node *n, const raft_snapshot_meta *meta, raft_index to)
{
    raft_term t;
    const char *why = refusal_reason(f, n, n->job_index);
    if (why)
        fx_fail(f, "snapshot conf: node %llu's core accepted a snapshot at %llu though %s",
                (ull)n->id, (ull)n->job_index, why);
    else if (meta->index != n->job_index)
        fx_fail(f, "node %llu snapshot meta index %llu != copied index %llu", (ull)n->id,
                (ull)meta->index, (ull)n->job_index);
    else if (!fx_disk_term(n, meta->index, &t) || t != meta->term)
        fx_fail(f, "node %llu snapshot meta term %llu does not match its log at %llu",
                (ull)n->id, (ull)meta->term, (ull)meta->index);
    check_snap_conf(f, n, meta, n->job_data, "took");
    if (f->failed)
        return;
    fx_disk_set_snapshot(f, n, meta, n->job_data);
    f->stats.snaps_adopted++;
    if (f->trace)
        fprintf(f->trace, "    node %llu snapshot at %llu (applied %llu), compacted to %llu\n",
                (ull)n->id, (ull)meta->index, (ull)n->applied, (ull)to);
}

static void job_adopt(fx *f, fx_node *n)
{
    raft_index keep = f->o.snapshot_keep > 0 ? (raft_index)f->o.snapshot_keep : 0;
    raft_index to = n->job_index > keep ? n->job_index - keep : 0;
    raft_snapshot_meta meta;
    memset(&meta, 0, sizeof meta);
    int rc = raft_snapshot_taken_at(n->r, n->job_index, to, &meta);
    if (rc)
        job_refused(f, n, rc);
    else
        job_adopted(f, n, &meta, to);
    job_drop(n);
}

/* After each Ready: adopt a finished job, or start one when enough entries
 * were applied since the last. */
static void sm_maybe_snapshot(fx *f, fx_node *n)
{
    int every = f->o.snapshot_every;
    if (n->job) {
        if (f->step >= n->job_due)
            job_adopt(f, n);
        return;
    }
    if (every <= 0 || n->applied < n->snap_trigger + (raft_index)every)
        return;
    job_start(f, n);
    if (n->job && f->step >= n->job_due)
        job_adopt(f, n); /* lag 0: done within this Ready's turn */
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

static void send_all(fx *f, fx_node *n, const raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_messages && !f->failed; i++)
        fx_net_send(f, n, &rd->messages[i]);
}

/* The Ready's second half, after its fsync: the disk now holds it; then
 * (unless they left early) the messages, the applies, the reads, advance
 * and the snapshot job — node.c's handle_ready from storage_append on. */
/* A refusal names a proposal this node forwarded, with a reason a leader
 * gives for its kind: a write is refused only for a transfer underway. */
static void check_refusal(fx *f, fx_node *n, const raft_refusal *rf)
{
    bool write = rf->tag & FX_WRITE_TAG;
    uint64_t k = rf->tag & ~FX_WRITE_TAG;
    if (k == 0 || k > (write ? n->write_tags : n->conf_tags))
        fx_fail(f, "node %llu: a refusal of %s %llu, which it never proposed", (ull)n->id,
                write ? "write" : "conf change", (ull)k);
    else if (write && rf->code != RAFT_ERR_TRANSFERRING)
        fx_fail(f, "node %llu: write %llu refused for %d, not a transfer", (ull)n->id, (ull)k,
                rf->code);
    if (rf->stale)
        f->stats.stale_refusals++;
    if (rf->code == RAFT_ERR_TRANSFERRING)
        f->stats.transfer_refusals++;
    else
        f->stats.refusals++;
}

static void ready_finish(fx *f, fx_node *n, raft_ready *rd, bool sent_early)
{
    n->durable_commit = n->hs.commit;
    if (rd->has_hard_state)
        fx_disk_save_hs(f, n, &rd->hs);
    fx_disk_append(f, n, rd->entries, rd->n_entries);
    if (!sent_early)
        send_all(f, n, rd);
    if (rd->n_committed && !rd->committed)
        fx_fail(f, "node %llu Ready has committed entries and no array", (ull)n->id);
    for (size_t i = 0; i < rd->n_committed && rd->committed && !f->failed; i++)
        sm_apply(f, n, &rd->committed[i]);
    for (size_t i = 0; i < rd->n_reads && rd->reads && !f->failed; i++)
        read_answered(f, n, &rd->reads[i]);
    for (size_t i = 0; i < rd->n_refused && !f->failed; i++)
        check_refusal(f, n, &rd->refused[i]);
    int rc = raft_advance(n->r, rd);
    if (rc)
        fx_fail(f, "node %llu: raft_advance = %d", (ull)n->id, rc);
    if (!f->failed)
        sm_maybe_snapshot(f, n);
}

/* One Ready in node.c's order: install a received snapshot, send early if
 * production would, fsync, and so on. In random mode an early-sent Ready's
 * fsync may stay unfinished past this step (parked; false is returned). */
static bool ready_once(fx *f, fx_node *n, raft_ready *rd)
{
    if (rd->n_messages && !rd->messages) {
        fx_fail(f, "node %llu Ready has messages and no array", (ull)n->id);
        return false;
    }
    if (rd->has_snapshot)
        sm_install(f, n, &rd->snapshot);
    bool early = raft_ready_may_send_early(n->r, rd);
    if (early && rd->n_messages) {
        f->stats.sent_early++;
        send_all(f, n, rd);
    }
    if (early && rd->n_messages && (rd->n_entries || rd->has_hard_state) && f->faults &&
        !f->failed && fx_rng_chance(f, f->o.slow_fsync)) {
        n->parked = true;
        n->parked_rd = *rd;
        f->stats.parked++;
        if (f->trace)
            fprintf(f->trace, "    node %llu sent %zu message(s), fsync of %zu entries pending\n",
                    (ull)n->id, rd->n_messages, rd->n_entries);
        return false;
    }
    ready_finish(f, n, rd, early);
    return !f->failed;
}

/* Drains n's Readies exactly as the node loop does (until one parks). */
static void drain(fx *f, fx_node *n)
{
    for (int round = 0; n->up && !n->parked && raft_has_ready(n->r); round++) {
        if (round > 100) {
            fx_fail(f, "node %llu keeps producing Readies", (ull)n->id);
            return;
        }
        raft_ready rd;
        memset(&rd, 0, sizeof rd);
        int rc = raft_ready_get(n->r, &rd); /* allocates nothing */
        if (rc) {
            fx_fail(f, "node %llu: raft_ready_get = %d", (ull)n->id, rc);
            return;
        }
        if (!ready_once(f, n, &rd))
            return;
    }
}

void fx_node_process(fx *f, fx_node *n)
{
    drain(f, n);
    fx_observe_leader(f, n);
}

/* Finishes the parked fsync before the node takes input, and every Ready
 * it produces meanwhile: one of them may park again, and the node loop
 * reads its inbox only between Readies (seed 14114 once stepped a vote
 * into a leader parked a second time, which stepped down mid-fsync). */
void fx_node_unpark(fx *f, fx_node *n)
{
    while (n && n->up && n->parked && !f->failed) {
        n->parked = false;
        if (f->trace)
            fprintf(f->trace, "    node %llu fsync done (%zu entries)\n", (ull)n->id,
                    n->parked_rd.n_entries);
        ready_finish(f, n, &n->parked_rd, true);
        memset(&n->parked_rd, 0, sizeof n->parked_rd);
        fx_node_process(f, n);
    }
}

/* The persisted log as entries for raft_new (free the array only). */
static raft_entry *disk_entries(const fx_node *n)
{
    raft_entry *es = calloc(n->n_log ? n->n_log : 1, sizeof *es);
    for (size_t k = 0; es && k < n->n_log; k++) {
        const fx_blob *b = n->log[k].b;
        es[k] = (raft_entry){.term = n->log[k].term, .index = n->snap.index + 1 + k,
                             .type = b->type, .len = b->len,
                             /* the core copies; it never writes through this */
                             .data = b->len ? (uint8_t *)b->data : NULL};
    }
    return es;
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
        .defer_commit_notice = f->o.defer_commit_notice,
    };
    raft_init_state init;
    memset(&init, 0, sizeof init);
    init.hs = n->hs;
    init.snap = n->snap;
    init.applied = n->snap.index; /* the emulated state machine is volatile */
    init.conf = n->snap.index ? n->snap.conf : n->boot_conf;
    raft_entry *es = disk_entries(n);
    if (!es)
        return RAFT_ERR_NOMEM;
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
    n->snap_trigger = n->snap.index; /* as recovery.c */
    sm_reset(f, n, n->snap_sm, n->snap.index);
    fx_node_process(f, n);
    return 0;
}

void fx_node_stop(fx *f, fx_node *n)
{
    if (!n->up)
        return;
    if (n->parked && f->trace)
        fprintf(f->trace, "    node %llu crashed mid-fsync: %zu entries never reached its "
                          "disk (log ends at %llu)\n",
                (ull)n->id, n->parked_rd.n_entries, (ull)fx_disk_last(n));
    f->stats.lost_in_fsync += n->parked;
    f->stats.snaps_lost += n->job;
    n->parked = false; /* the Ready dies with the core: nothing of it is on disk */
    memset(&n->parked_rd, 0, sizeof n->parked_rd);
    job_drop(n); /* a background copy is lost too (its staged file removed) */
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
    free(n->job_data);
}

void fx_node_tick(fx *f, fx_node *n)
{
    if (!n || !n->up)
        return;
    fx_node_unpark(f, n);
    fx_core_enter(f);
    if (f->o.defer_commit_notice)
        raft_send_commit(n->r); /* the embedding's timer, at the latest */
    raft_tick(n->r);
    fx_core_leave();
    fx_node_process(f, n);
}

int fx_propose(fx *f, raft_id id, const char *data)
{
    fx_node *n = fx_node_get(f, id);
    if (!n || !n->up || !data)
        return RAFT_ERR_INVALID;
    fx_node_unpark(f, n);
    fx_core_enter(f);
    /* tagged as node.c tags them, so a transferring leader's refusals
     * travel too */
    int rc = raft_propose_tagged(n->r, (const uint8_t *)data, (uint32_t)strlen(data),
                                 FX_WRITE_TAG | ++n->write_tags);
    fx_core_leave();
    fx_node_process(f, n);
    return rc;
}

int fx_propose_conf(fx *f, raft_id id, uint8_t op, raft_id target)
{
    fx_node *n = fx_node_get(f, id);
    if (!n || !n->up)
        return RAFT_ERR_INVALID;
    /* tagged as node.c tags them, so a leader's refusals travel too */
    raft_conf_change cc = {.op = op, .id = target, .ctx_len = 0, .ctx = NULL,
                           .tag = ++n->conf_tags};
    fx_node_unpark(f, n);
    fx_core_enter(f);
    int rc = raft_propose_conf(n->r, &cc);
    fx_core_leave();
    fx_node_process(f, n);
    return rc;
}

int fx_read_index(fx *f, raft_id id, uint64_t ctx)
{
    fx_node *n = fx_node_get(f, id);
    if (!n || !n->up)
        return RAFT_ERR_INVALID;
    fx_node_unpark(f, n); /* the node loop takes the request after its fsync */
    fx_read *rd = read_add(f, n, ctx);
    if (!rd)
        return RAFT_ERR_NOMEM;
    /* A shared context must satisfy its latest asker too. */
    if (f->n_committed > rd->min_index)
        rd->min_index = f->n_committed;
    rd->done = false;
    fx_core_enter(f);
    int rc = raft_read_index(n->r, ctx);
    fx_core_leave();
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
