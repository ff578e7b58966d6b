/* node: the loop that owns the Raft core. One thread, one order of work per
 * turn: take every queued event (peer messages, proposals, reads, membership
 * requests), tick if due, then drain the Ready — persist (one transaction,
 * one fsync for all of it: group commit), send, apply, advance — and answer
 * the requests that became answerable. Must never block on a client or a
 * peer: everything outside comes in through the inbox. */
#include "server/envelope.h"
#include "server/node_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Public request entry points (any thread)                            */
/* ------------------------------------------------------------------ */

static void submit(node *n, event *ev)
{
    if (inbox_push(&n->in, ev) < 0) {
        bool closed;
        pthread_mutex_lock(&n->in.mu);
        closed = n->in.closed;
        pthread_mutex_unlock(&n->in.mu);
        event_fail(ev, closed ? NODE_ERR_STOPPING : NODE_ERR_BUSY);
        event_free(ev);
    }
}

void node_propose(node *n, const uint8_t *cmd, size_t len, node_write_cb cb, void *ud)
{
    event *ev = calloc(1, sizeof *ev);
    if (!ev || !(ev->data = xmemdup(cmd, len))) {
        free(ev);
        cb(ud, NODE_ERR_INTERNAL, NULL);
        return;
    }
    ev->kind = EV_PROPOSE;
    ev->len = len;
    ev->wcb = cb;
    ev->ud = ud;
    submit(n, ev);
}

void node_read_barrier(node *n, node_done_cb cb, void *ud)
{
    event *ev = calloc(1, sizeof *ev);
    if (!ev) {
        cb(ud, NODE_ERR_INTERNAL);
        return;
    }
    ev->kind = EV_READ;
    ev->dcb = cb;
    ev->ud = ud;
    submit(n, ev);
}

void node_change_member(node *n, int op, uint64_t id, const char *peer_url,
                        uint64_t *chosen_id, node_done_cb cb, void *ud)
{
    event *ev = calloc(1, sizeof *ev);
    if (!ev || (peer_url && !(ev->url = xstrdup(peer_url)))) {
        free(ev);
        cb(ud, NODE_ERR_INTERNAL);
        return;
    }
    ev->kind = EV_MEMBER;
    ev->op = op;
    ev->id = id;
    ev->chosen = chosen_id;
    ev->dcb = cb;
    ev->ud = ud;
    submit(n, ev);
}

const char *node_status_reason(int status)
{
    switch (status) {
    case NODE_OK: return "ok";
    case NODE_ERR_NO_LEADER: return "no_leader";
    case NODE_ERR_TIMEOUT: return "timeout";
    case NODE_ERR_STOPPING: return "stopping";
    case NODE_ERR_BUSY: return "busy";
    case NODE_ERR_CONF_PENDING: return "membership_change_in_progress";
    case NODE_ERR_INVALID: return "invalid_argument";
    case NODE_ERR_NOT_FOUND: return "member_not_found";
    default: return "internal";
    }
}

void node_get_info(node *n, node_info *out)
{
    pthread_mutex_lock(&n->info_mu);
    *out = n->info;
    pthread_mutex_unlock(&n->info_mu);
    uint64_t last = out->ms_since_apply_or_heartbeat;
    out->ms_since_apply_or_heartbeat = last ? now_ms() - last : UINT64_MAX;
}

kv *node_kv(node *n) { return n->kv; }

watch_hub *node_watch_hub(node *n) { return n->hub; }

void node_request_stop(node *n) { atomic_store(&n->stop, true); }

/* ------------------------------------------------------------------ */
/* Transport callbacks (transport threads): queue for the loop          */
/* ------------------------------------------------------------------ */

static void push_or_drop(node *n, event *ev)
{
    if (inbox_push(&n->in, ev) < 0)
        event_free(ev);
}

static void on_messages(void *ud, raft_msg *msgs, size_t cnt)
{
    node *n = ud;
    event *ev = calloc(1, sizeof *ev);
    if (!ev) {
        transport_free_msgs(msgs, cnt);
        return;
    }
    ev->kind = EV_MSGS;
    ev->msgs = msgs;
    ev->n = cnt;
    push_or_drop(n, ev);
}

static void on_snapshot(void *ud, raft_msg *msg, char *path)
{
    node *n = ud;
    event *ev = calloc(1, sizeof *ev);
    if (!ev) {
        transport_free_msgs(msg, 1);
        remove(path);
        free(path);
        return;
    }
    ev->kind = EV_SNAP_RECV;
    ev->msgs = msg;
    ev->n = 1;
    ev->path = path;
    push_or_drop(n, ev);
}

static void on_peer_report(node *n, int kind, raft_id peer, bool ok)
{
    event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return;
    ev->kind = kind;
    ev->peer = peer;
    ev->ok = ok;
    push_or_drop(n, ev);
}

static void on_unreachable(void *ud, raft_id peer) { on_peer_report(ud, EV_UNREACHABLE, peer, false); }
static void on_snapshot_sent(void *ud, raft_id peer, bool ok) { on_peer_report(ud, EV_SNAP_SENT, peer, ok); }
static bool is_removed(void *ud, raft_id id) { return removed_has(ud, id); }

static void on_removed(void *ud)
{
    node *n = ud;
    if (!atomic_exchange(&n->told_removed, true))
        log_warn("a peer says this node was removed from the cluster");
}


/* ------------------------------------------------------------------ */
/* Requests, on the loop                                               */
/* ------------------------------------------------------------------ */

static int raft_to_node_status(int rc)
{
    switch (rc) {
    case RAFT_ERR_NO_LEADER:
    case RAFT_ERR_TRANSFERRING: return NODE_ERR_NO_LEADER;
    case RAFT_ERR_CONF_PENDING: return NODE_ERR_CONF_PENDING;
    case RAFT_ERR_INVALID:
    case RAFT_ERR_TOO_MANY: return NODE_ERR_INVALID;
    default: return NODE_ERR_INTERNAL;
    }
}

/* The voter best placed to take over: the most caught-up other voter. */
static raft_id best_successor(node *n)
{
    const raft_conf *conf = raft_conf_get(n->r);
    raft_id best = 0;
    raft_index best_match = 0;
    for (uint32_t i = 0; i < conf->n_voters; i++) {
        raft_id id = conf->voters[i];
        raft_index m = raft_match_index(n->r, id);
        if (id != n->cfg->id && (best == 0 || m > best_match)) {
            best = id;
            best_match = m;
        }
    }
    return best;
}

/* A leader asked to remove itself first hands leadership over, so the
 * cluster does not sit through an election timeout; the removal is then
 * proposed (forwarded) on a later tick. Returns true while handing over. */
static bool handing_over(node *n, const raft_conf_change *cc)
{
    if (cc->op != RAFT_CONF_REMOVE || cc->id != n->cfg->id || raft_role_get(n->r) != RAFT_LEADER)
        return false;
    raft_id to = best_successor(n);
    if (to == 0)
        return false;
    raft_transfer_leader(n->r, to);
    return true;
}

static int propose_conf(node *n, pending *p)
{
    raft_conf_change cc;
    if (raft_conf_change_decode(p->entry.data, p->entry.len, &cc) < 0)
        return RAFT_ERR_INVALID;
    if (handing_over(n, &cc))
        return RAFT_ERR_TRANSFERRING;
    return raft_propose_conf(n->r, &cc);
}

/* Hands a pending request to Raft. A request that finds no leader stays
 * pending and is retried every tick until its deadline. */
static void try_propose(node *n, pending *p)
{
    int rc;
    if (p->is_conf) {
        rc = propose_conf(n, p);
    } else {
        rc = raft_propose(n->r, p->entry.data, (uint32_t)p->entry.len);
    }
    if (rc == RAFT_OK) {
        p->proposed = true;
        n->proposals_total++;
        return;
    }
    if (rc == RAFT_ERR_NO_LEADER || rc == RAFT_ERR_TRANSFERRING)
        return;
    pending *q = waiters_take(&n->w, p->seq);
    if (q->wcb)
        q->wcb(q->ud, raft_to_node_status(rc), NULL);
    else
        q->dcb(q->ud, raft_to_node_status(rc));
    waiters_free_pending(q);
}

static pending *new_pending(node *n, event *ev)
{
    pending *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    buf_init(&p->entry);
    p->seq = n->next_seq++;
    p->deadline = now_ms() + n->request_timeout_ms;
    p->wcb = ev->wcb;
    p->dcb = ev->dcb;
    p->ud = ev->ud;
    return p;
}

static void handle_propose(node *n, event *ev)
{
    pending *p = new_pending(n, ev);
    if (!p || envelope_wrap(&p->entry, n->cfg->id, p->seq, ev->data, ev->len) < 0) {
        if (p)
            waiters_free_pending(p);
        event_fail(ev, NODE_ERR_INTERNAL);
        return;
    }
    waiters_add(&n->w, p);
    try_propose(n, p);
}

static void handle_read(node *n, event *ev)
{
    read_waiter *rw = calloc(1, sizeof *rw);
    if (!rw) {
        event_fail(ev, NODE_ERR_INTERNAL);
        return;
    }
    rw->deadline = now_ms() + n->request_timeout_ms;
    rw->cb = ev->dcb;
    rw->ud = ev->ud;
    rw->next = n->w.reads;
    n->w.reads = rw;
    n->reads_total++;
}

/* ------------------------------------------------------------------ */
/* Membership requests                                                 */
/* ------------------------------------------------------------------ */

static uint8_t member_op_to_raft(int op)
{
    switch (op) {
    case KV_MEMBER_ADD: return RAFT_CONF_ADD_VOTER;
    case KV_MEMBER_ADD_LEARNER: return RAFT_CONF_ADD_LEARNER;
    case KV_MEMBER_REMOVE: return RAFT_CONF_REMOVE;
    case KV_MEMBER_PROMOTE: return RAFT_CONF_PROMOTE;
    default: return 0;
    }
}

static raft_id next_free_id(node *n, const raft_conf *conf)
{
    raft_id max = 0;
    for (size_t i = 0; i < n->n_removed; i++) /* node thread: the only writer */
        max = n->removed_ids[i] > max ? n->removed_ids[i] : max;
    for (uint32_t i = 0; i < conf->n_voters; i++)
        max = conf->voters[i] > max ? conf->voters[i] : max;
    for (uint32_t i = 0; i < conf->n_learners; i++)
        max = conf->learners[i] > max ? conf->learners[i] : max;
    return max + 1;
}

/* Refuses what cannot be applied, so the client gets 400/404 at once
 * rather than a change that applies as a no-op. */
static int check_member_change(node *n, uint8_t op, raft_id id)
{
    const raft_conf *conf = raft_conf_get(n->r);
    bool member = raft_conf_has(conf, id);
    switch (op) {
    case RAFT_CONF_ADD_VOTER:
    case RAFT_CONF_ADD_LEARNER:
        /* ids are never reused: the old removal is still in the log */
        return member || removed_has(n, id) ? NODE_ERR_INVALID : NODE_OK;
    case RAFT_CONF_REMOVE: return member ? NODE_OK : NODE_ERR_NOT_FOUND;
    case RAFT_CONF_PROMOTE:
        if (!member)
            return NODE_ERR_NOT_FOUND;
        return raft_is_learner(n->r, id) ? NODE_OK : NODE_ERR_INVALID;
    default: return NODE_ERR_INVALID;
    }
}

static int encode_member_change(node *n, pending *p, uint8_t op, raft_id id, const char *url)
{
    buf ctx;
    buf_init(&ctx);
    const char *u = url ? url : "";
    if (envelope_wrap(&ctx, n->cfg->id, p->seq, u, strlen(u)) < 0)
        return -1;
    raft_conf_change cc = {.op = op, .id = id, .ctx_len = (uint32_t)ctx.len, .ctx = ctx.data};
    size_t sz = raft_conf_change_size(&cc);
    int rc = -1;
    if (buf_reserve(&p->entry, sz) == 0 && raft_conf_change_encode(&cc, p->entry.data, sz) == sz) {
        p->entry.len = sz;
        rc = 0;
    }
    buf_free(&ctx);
    return rc;
}

static void handle_member(node *n, event *ev)
{
    uint8_t op = member_op_to_raft(ev->op);
    raft_id id = ev->id;
    if (id == 0 && (op == RAFT_CONF_ADD_VOTER || op == RAFT_CONF_ADD_LEARNER))
        id = next_free_id(n, raft_conf_get(n->r));
    int st = check_member_change(n, op, id);
    if (st != NODE_OK) {
        event_fail(ev, st);
        return;
    }
    if (ev->chosen)
        *ev->chosen = id;
    pending *p = new_pending(n, ev);
    if (!p || encode_member_change(n, p, op, id, ev->url) < 0) {
        if (p)
            waiters_free_pending(p);
        event_fail(ev, NODE_ERR_INTERNAL);
        return;
    }
    p->is_conf = true;
    waiters_add(&n->w, p);
    try_propose(n, p);
}

/* ------------------------------------------------------------------ */
/* Events                                                               */
/* ------------------------------------------------------------------ */

static void step_all(node *n, raft_msg *msgs, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++) {
        if (msgs[i].to != n->cfg->id)
            continue;
        raft_step(n->r, &msgs[i]);
    }
}

static void handle_event(node *n, event *ev)
{
    switch (ev->kind) {
    case EV_MSGS: step_all(n, ev->msgs, ev->n); break;
    case EV_SNAP_RECV:
        /* the staged file stays until the Ready installs (or cleanup drops) it */
        free(ev->path);
        ev->path = NULL;
        step_all(n, ev->msgs, 1);
        break;
    case EV_UNREACHABLE: raft_report_unreachable(n->r, ev->peer); break;
    case EV_SNAP_SENT: raft_report_snapshot(n->r, ev->peer, ev->ok); break;
    case EV_PROPOSE: handle_propose(n, ev); break;
    case EV_READ: handle_read(n, ev); break;
    case EV_MEMBER: handle_member(n, ev); break;
    default: break;
    }
}

/* ------------------------------------------------------------------ */
/* Reads: one ReadIndex round for every read that arrived since the last */
/* ------------------------------------------------------------------ */

static void ask_read_index(node *n, uint64_t now)
{
    bool need = false, in_flight = false;
    for (read_waiter *rw = n->w.reads; rw; rw = rw->next) {
        /* a round whose answer was lost is asked again */
        if (!rw->confirmed && rw->ctx && now - rw->asked_ms > 2 * n->cfg->election_ms / 3 + 50)
            rw->ctx = 0;
        need |= !rw->confirmed && rw->ctx == 0;
        in_flight |= !rw->confirmed && rw->ctx != 0;
    }
    /* One round at a time: reads that arrive while a round is out wait
     * for its answer and then share the next one. Starting a round per
     * loop turn instead cost a heartbeat to every peer, and two thread
     * wake-ups on each, for every handful of reads. */
    if (!need || in_flight)
        return;
    uint64_t ctx = ++n->next_read_ctx;
    if (raft_read_index(n->r, ctx) != RAFT_OK)
        return; /* no leader yet: ask again next turn, until the deadline */
    n->read_rounds_total++;
    for (read_waiter *rw = n->w.reads; rw; rw = rw->next) {
        if (!rw->confirmed && rw->ctx == 0) {
            rw->ctx = ctx;
            rw->asked_ms = now;
        }
    }
}

/* A read state for ctx confirms every read asked at or before ctx: they
 * all arrived before the leader fixed that read index. */
static void confirm_reads(node *n, const raft_read_state *rs)
{
    for (read_waiter *rw = n->w.reads; rw; rw = rw->next) {
        if (!rw->confirmed && rw->ctx && rw->ctx <= rs->context) {
            rw->confirmed = true;
            rw->index = rs->index;
        }
    }
}

static void answer_reads(node *n)
{
    raft_index applied = raft_applied_index(n->r);
    read_waiter **pp = &n->w.reads;
    while (*pp) {
        read_waiter *rw = *pp;
        if (rw->confirmed && rw->index <= applied) {
            *pp = rw->next;
            rw->cb(rw->ud, NODE_OK);
            free(rw);
        } else {
            pp = &rw->next;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Apply                                                               */
/* ------------------------------------------------------------------ */

typedef struct done_item {
    pending *p;
    kv_result res;
    bool has_res;
} done_item;

typedef struct {
    done_item *items;
    size_t n, cap;
} done_list;

static int done_add(done_list *d, pending *p, kv_result *res)
{
    if (xgrow(&d->items, &d->cap, d->n, sizeof *d->items) < 0)
        return -1;
    done_item *it = &d->items[d->n++];
    it->p = p;
    it->has_res = res != NULL;
    if (res)
        it->res = *res;
    return 0;
}

/* Answers one waiter of the batch: with its result if the batch reached
 * kv.db, else "stopping" (the node stops; the entries are committed and
 * are applied when it restarts, so the outcome is unknown, not failed). */
static void answer_done(done_item *it, bool applied)
{
    pending *p = it->p;
    if (applied && !p->wcb) {
        p->dcb(p->ud, NODE_OK);
        waiters_free_pending(p);
        return;
    }
    kv_result *r = applied && it->has_res ? malloc(sizeof *r) : NULL;
    if (r) {
        *r = it->res;
        p->wcb(p->ud, NODE_OK, r);
        waiters_free_pending(p);
        return;
    }
    if (it->has_res)
        kv_result_free(&it->res);
    waiters_fail_pending(p, applied ? NODE_ERR_INTERNAL : NODE_ERR_STOPPING);
}

static void done_fire(done_list *d, bool applied)
{
    for (size_t i = 0; i < d->n; i++)
        answer_done(&d->items[i], applied);
    free(d->items);
}

static void apply_normal(node *n, const raft_entry *e, done_list *done)
{
    uint64_t origin, seq;
    const uint8_t *payload;
    size_t plen;
    if (e->len == 0)
        return; /* a new leader's no-op */
    if (envelope_open(e->data, e->len, &origin, &seq, &payload, &plen) < 0) {
        log_warn("entry %llu: unreadable envelope, skipped", (unsigned long long)e->index);
        return;
    }
    kv_result res;
    memset(&res, 0, sizeof res);
    if (kv_apply_cmd(n->kv, payload, plen, &res) == KV_ERR_INTERNAL) {
        log_error("entry %llu: kv apply failed", (unsigned long long)e->index);
        kv_result_free(&res);
        return;
    }
    lease_clock_on_apply(&n->leases, &res, now_ms());
    pending *p = origin == n->cfg->id ? waiters_take(&n->w, seq) : NULL;
    if (!p || done_add(done, p, &res) < 0) {
        kv_result_free(&res);
        if (p)
            waiters_free_pending(p);
    }
}

static int member_op_from_raft(uint8_t op)
{
    switch (op) {
    case RAFT_CONF_ADD_VOTER: return KV_MEMBER_ADD;
    case RAFT_CONF_ADD_LEARNER: return KV_MEMBER_ADD_LEARNER;
    case RAFT_CONF_REMOVE: return KV_MEMBER_REMOVE;
    default: return KV_MEMBER_PROMOTE;
    }
}

static void apply_conf(node *n, const raft_entry *e, done_list *done)
{
    raft_conf_change cc;
    uint64_t origin = 0, seq = 0;
    const uint8_t *url = NULL;
    size_t url_len = 0;
    if (raft_conf_change_decode(e->data, e->len, &cc) < 0 ||
        envelope_open(cc.ctx, cc.ctx_len, &origin, &seq, &url, &url_len) < 0) {
        log_warn("entry %llu: unreadable membership change, skipped", (unsigned long long)e->index);
        return;
    }
    char *u = malloc(url_len + 1);
    if (u) {
        memcpy(u, url, url_len);
        u[url_len] = '\0';
        kv_apply_member(n->kv, member_op_from_raft(cc.op), cc.id, u);
        if (cc.id != n->cfg->id && (cc.op == RAFT_CONF_ADD_VOTER || cc.op == RAFT_CONF_ADD_LEARNER))
            transport_set_peer(n->tp, cc.id, u);
        free(u);
    }
    if (cc.op == RAFT_CONF_REMOVE) {
        removed_add(n, cc.id);
        if (cc.id == n->cfg->id)
            n->removed = true;
        else
            transport_remove_peer(n->tp, cc.id);
    }
    log_info("membership: %s node %llu applied at index %llu",
             cc.op == RAFT_CONF_REMOVE ? "removed" : cc.op == RAFT_CONF_PROMOTE ? "promoted" : "added",
             (unsigned long long)cc.id, (unsigned long long)e->index);
    pending *p = origin == n->cfg->id && seq ? waiters_take(&n->w, seq) : NULL;
    if (p && done_add(done, p, NULL) < 0)
        waiters_free_pending(p);
}

static void fatal(node *n, const char *what)
{
    log_error("%s: stopping to protect the data", what);
    atomic_store(&n->stop, true);
}

static void publish_info(node *n, uint64_t now);

static void apply_committed(node *n, const raft_entry *ents, size_t cnt)
{
    if (cnt == 0)
        return;
    done_list done = {0};
    if (kv_apply_begin(n->kv) != KV_OK) {
        fatal(n, "kv: cannot begin apply");
        return;
    }
    for (size_t i = 0; i < cnt; i++) {
        if (ents[i].type == RAFT_ENTRY_CONF)
            apply_conf(n, &ents[i], &done);
        else
            apply_normal(n, &ents[i], &done);
    }
    const raft_entry *last = &ents[cnt - 1];
    bool applied = kv_apply_commit(n->kv, last->index, last->term) == KV_OK;
    if (applied) {
        n->applied_total += cnt;
        watch_notify(n->hub, kv_revision(n->kv));
        /* before the answers: a client that saw its write acknowledged must
         * not then read an older revision or applied index in /status */
        publish_info(n, now_ms());
    } else {
        fatal(n, "kv: cannot commit applied batch");
        kv_apply_rollback(n->kv);
    }
    done_fire(&done, applied);
}

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */
/* ------------------------------------------------------------------ */

static void install_snapshot(node *n, const raft_snapshot_meta *meta)
{
    char err[256] = "";
    char *staged = storage_recv_path(n->st, meta->index, meta->term);
    char *path = storage_snapshot_path(n->st, meta->index);
    if (!staged || !path || storage_install_snapshot(n->st, meta, staged, &n->snap) < 0) {
        fatal(n, "installing snapshot");
    } else if (kv_restore(n->kv, path, err, sizeof err) < 0) {
        log_error("snapshot restore: %s", err);
        fatal(n, "installing snapshot");
    } else {
        n->last_snapshot_index = meta->index;
        node_sync_peers(n);
        removed_load(n);
        if (lease_clock_reload(&n->leases, n->kv, now_ms()) < 0)
            fatal(n, "reloading leases after a snapshot");
        watch_notify(n->hub, kv_revision(n->kv));
        watch_wake_all(n->hub); /* history jumped: every watcher re-reads */
        log_info("installed snapshot at index %llu term %llu",
                 (unsigned long long)meta->index, (unsigned long long)meta->term);
    }
    free(staged);
    free(path);
}

/* Records a finished background snapshot with Raft and storage. Raft
 * refuses it if membership changed or a leader's snapshot was installed
 * since the copy began; the next round takes a new one. */
static void adopt_snapshot(node *n, const char *staged, const kv_snapfile *f)
{
    uint64_t index = f->index;
    uint64_t every = n->cfg->snapshot_count;
    uint64_t keep = every < 5000 ? every : 5000; /* catch-up tail for slow followers */
    raft_index compact_to = index > keep ? index - keep : 0;
    raft_snapshot_meta meta;
    int rc = raft_snapshot_taken_at(n->r, index, compact_to, &meta);
    if (rc != RAFT_OK) {
        log_debug("snapshot at index %llu dropped (%d): the state moved on under it",
                  (unsigned long long)index, rc);
        unlink(staged);
        n->last_snapshot_index = 0; /* try again soon */
    } else if (storage_snapshot_adopt(n->st, &meta, staged, f->size, f->crc, compact_to,
                                      &n->snap) < 0) {
        log_error("snapshot at %llu failed: %s", (unsigned long long)index, storage_errmsg(n->st));
    } else {
        log_info("snapshot at index %llu, log compacted to %llu", (unsigned long long)index,
                 (unsigned long long)compact_to);
    }
}

/* Snapshots are copied in the background (kv_snapjob) so that applying
 * never stops for them; a turn only starts one and adopts a finished one. */
static void maybe_snapshot(node *n)
{
    if (n->snapjob) {
        kv_snapfile f;
        int rc = kv_snapjob_poll(n->snapjob, &f);
        if (rc == 1)
            return;
        kv_snapjob_free(n->snapjob);
        n->snapjob = NULL;
        char *staged = storage_staging_path(n->st);
        if (rc == KV_OK && staged)
            adopt_snapshot(n, staged, &f);
        else
            log_error("snapshot failed; trying again after %llu entries",
                      (unsigned long long)n->cfg->snapshot_count);
        free(staged);
        return;
    }
    raft_index applied = raft_applied_index(n->r);
    if (applied < n->last_snapshot_index + n->cfg->snapshot_count)
        return;
    char *staged = storage_staging_path(n->st);
    n->snapjob = staged ? kv_snapjob_start(n->kv, staged) : NULL;
    if (!n->snapjob)
        log_error("cannot start a snapshot at %llu", (unsigned long long)applied);
    /* even on failure, wait another round before trying again */
    n->last_snapshot_index = applied;
    free(staged);
}

/* ------------------------------------------------------------------ */
/* Ready                                                               */
/* ------------------------------------------------------------------ */

/* Sends a Ready's messages; a snapshot message goes with the snapshot
 * file. Returns the peer whose snapshot could not be sent (0 if none), to
 * be reported to Raft after raft_advance — never between Ready and advance. */
static raft_id send_messages(node *n, const raft_msg *msgs, size_t cnt)
{
    size_t start = 0;
    raft_id failed = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (msgs[i].type != RAFT_MSG_SNAP)
            continue;
        transport_send(n->tp, msgs + start, i - start);
        start = i + 1;
        char *path = storage_snapshot_path(n->st, n->snap.meta.index);
        if (path && n->snap.meta.index == msgs[i].snapshot.index)
            transport_send_snapshot(n->tp, &msgs[i], path, n->snap.size, n->snap.crc);
        else
            failed = msgs[i].to;
        free(path);
    }
    transport_send(n->tp, msgs + start, cnt - start);
    return failed;
}

/* A leader's appends and heartbeats promise nothing about its own disk, so
 * they may leave before its fsync and the followers' fsyncs overlap the
 * leader's (Raft thesis 10.2.1). Safe here because a leader's term was made
 * durable before it could win, and the follower acknowledgements that could
 * commit these entries are stepped on a later turn, after this fsync. Any
 * other message (vote, response, snapshot) waits for the disk as before. */
static bool may_send_before_persist(node *n, const raft_ready *rd)
{
    if (raft_role_get(n->r) != RAFT_LEADER)
        return false;
    for (size_t i = 0; i < rd->n_messages; i++)
        if (rd->messages[i].type != RAFT_MSG_APPEND && rd->messages[i].type != RAFT_MSG_HEARTBEAT)
            return false;
    return true;
}

static void handle_ready(node *n)
{
    raft_ready rd;
    if (raft_ready_get(n->r, &rd) != RAFT_OK) {
        fatal(n, "raft: cannot build Ready");
        return;
    }
    if (rd.has_snapshot)
        install_snapshot(n, &rd.snapshot);
    bool sent_early = may_send_before_persist(n, &rd);
    if (sent_early)
        send_messages(n, rd.messages, rd.n_messages);
    if ((rd.has_hard_state || rd.n_entries) &&
        storage_append(n->st, rd.has_hard_state ? &rd.hs : NULL, rd.entries, rd.n_entries) < 0) {
        log_error("storage: %s", storage_errmsg(n->st));
        fatal(n, "cannot persist the raft log");
        return;
    }
    if (atomic_load(&n->stop))
        return; /* never acknowledge what may not be durable */
    raft_id snap_failed = sent_early ? 0 : send_messages(n, rd.messages, rd.n_messages);
    apply_committed(n, rd.committed, rd.n_committed);
    for (size_t i = 0; i < rd.n_reads; i++)
        confirm_reads(n, &rd.reads[i]);
    raft_advance(n->r, &rd);
    if (snap_failed)
        raft_report_snapshot(n->r, snap_failed, false);
    answer_reads(n);
    maybe_snapshot(n);
}

/* ------------------------------------------------------------------ */
/* Loop                                                                */
/* ------------------------------------------------------------------ */

static void retry_unproposed(node *n)
{
    pending *p = n->w.all, *next;
    for (; p; p = next) {
        next = p->next;
        if (!p->proposed)
            try_propose(n, p);
    }
}

static void publish_info(node *n, uint64_t now)
{
    node_info *i = &n->info;
    if (raft_leader(n->r))
        n->last_leader_ms = now;
    pthread_mutex_lock(&n->info_mu);
    i->member_id = n->cfg->id;
    i->cluster_id = n->cluster_id;
    i->leader = raft_leader(n->r);
    i->raft_term = raft_term_get(n->r);
    i->raft_index = raft_last_index(n->r);
    i->commit_index = raft_commit_index(n->r);
    i->applied_index = raft_applied_index(n->r);
    i->revision = kv_revision(n->kv);
    i->compact_revision = kv_compact_revision(n->kv);
    i->is_learner = raft_is_learner(n->r, n->cfg->id);
    i->role = raft_role_get(n->r);
    i->ms_since_apply_or_heartbeat = n->last_leader_ms;
    i->proposals_total = n->proposals_total;
    i->applied_total = n->applied_total;
    i->read_rounds_total = n->read_rounds_total;
    i->reads_total = n->reads_total;
    pthread_mutex_unlock(&n->info_mu);
}

static void update_db_size(node *n)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/kv.db", n->cfg->data_dir);
    if (stat(path, &st) == 0) {
        pthread_mutex_lock(&n->info_mu);
        n->info.db_size = (uint64_t)st.st_size;
        pthread_mutex_unlock(&n->info_mu);
    }
}

static void on_tick(node *n, uint64_t now)
{
    raft_tick(n->r);
    n->next_tick_ms += n->cfg->heartbeat_ms;
    if (n->next_tick_ms < now) /* the loop fell behind: do not tick in a burst */
        n->next_tick_ms = now + n->cfg->heartbeat_ms;
    waiters_expire(&n->w, now, false, raft_leader(n->r) ? NODE_ERR_TIMEOUT : NODE_ERR_NO_LEADER);
    retry_unproposed(n);
    node_lease_tick(n, now);
    update_db_size(n);
    if (now >= n->next_trim_ms) { /* a few ms at most, every 10 s */
        n->next_trim_ms = now + 10000;
        size_t freed = mem_release_free(32u << 20);
        if (freed)
            log_debug("gave back up to %zu MB of free heap", freed >> 20);
    }
}

static void run_turn(node *n)
{
    event *evs = inbox_take_all(&n->in, n->next_tick_ms);
    uint64_t now = now_ms();
    while (evs) {
        event *next = evs->next;
        handle_event(n, evs);
        event_free(evs);
        evs = next;
    }
    if (now >= n->next_tick_ms)
        on_tick(n, now);
    ask_read_index(n, now);
    while (raft_has_ready(n->r) && !atomic_load(&n->stop))
        handle_ready(n);
    publish_info(n, now);
}

static void shut_down_requests(node *n)
{
    event *evs = inbox_close(&n->in);
    while (evs) {
        event *next = evs->next;
        event_fail(evs, NODE_ERR_STOPPING);
        event_free(evs);
        evs = next;
    }
    waiters_expire(&n->w, 0, true, NODE_ERR_STOPPING);
}

int node_run(node *n)
{
    n->next_tick_ms = now_ms() + n->cfg->heartbeat_ms;
    while (!atomic_load(&n->stop) && !n->removed && !atomic_load(&n->told_removed))
        run_turn(n);
    if (n->removed || atomic_load(&n->told_removed))
        log_info("this node was removed from the cluster; shutting down");
    shut_down_requests(n);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */
/* ------------------------------------------------------------------ */

/* Points the transport at every member's peer URL as kv knows them; on a
 * node that has not applied any membership yet, at --cluster. */
void node_sync_peers(node *n)
{
    kv_conn *c = kv_reader_acquire(n->kv);
    kv_member *m = NULL;
    size_t nm = 0;
    if (c && kv_members(c, &m, &nm) == KV_OK && nm > 0) {
        for (size_t i = 0; i < nm; i++) {
            if (m[i].id != n->cfg->id)
                transport_set_peer(n->tp, m[i].id, m[i].peer_url);
        }
    } else {
        for (size_t i = 0; i < n->cfg->n_peers; i++) {
            if (i + 1 != n->cfg->id)
                transport_set_peer(n->tp, i + 1, n->cfg->peers[i]);
        }
    }
    kv_members_free(m, nm);
    if (c)
        kv_reader_release(n->kv, c);
}

static int start_transport(node *n)
{
    char err[256] = "";
    transport_config tc = {
        .cluster_id = n->cluster_id,
        .self = n->cfg->id,
        .listen_host = n->cfg->listen_host,
        .listen_port = n->cfg->listen_port,
        .data_dir = n->cfg->data_dir,
        .queue_cap = 4096,
        .max_snapshot_bytes = 64ull << 30,
        .cb = {.ud = n, .on_messages = on_messages, .on_snapshot = on_snapshot,
               .on_unreachable = on_unreachable, .on_snapshot_sent = on_snapshot_sent,
               .is_removed = is_removed, .on_removed = on_removed},
    };
    n->tp = transport_start(&tc, err, sizeof err);
    if (!n->tp) {
        log_error("peer listener %s:%u: %s", n->cfg->listen_host, n->cfg->listen_port, err);
        return -1;
    }
    node_sync_peers(n);
    return 0;
}

int node_create(const config *cfg, node **out)
{
    node *n = calloc(1, sizeof *n);
    if (!n)
        return -1;
    n->cfg = cfg;
    /* sequence numbers must never repeat across restarts: entries proposed
     * before a crash may still be applied after it. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    n->next_seq = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    /* the same for read-index rounds: a late answer to a round asked by this
     * node's previous life must never confirm a read asked in this one (a
     * read state confirms every round at or below its context) */
    n->next_read_ctx = n->next_seq;
    n->request_timeout_ms = cfg->election_ms * 5 > 5000 ? cfg->election_ms * 5 : 5000;
    atomic_init(&n->stop, false);
    pthread_mutex_init(&n->info_mu, NULL);
    pthread_mutex_init(&n->removed_mu, NULL);
    atomic_init(&n->told_removed, false);
    log_set_node(cfg->id);
    *out = n;
    if (lease_clock_init(&n->leases) < 0 || inbox_init(&n->in) < 0 || node_recover(n) < 0 ||
        lease_clock_reload(&n->leases, n->kv, now_ms()) < 0 ||
        !(n->hub = watch_hub_create(n->kv)) || start_transport(n) < 0)
        return -1;
    publish_info(n, now_ms());
    update_db_size(n);
    return 0;
}

void node_destroy(node *n)
{
    if (!n)
        return;
    if (n->tp)
        transport_stop(n->tp);
    shut_down_requests(n);
    if (n->r)
        raft_free(n->r);
    kv_snapjob_free(n->snapjob); /* before kv: it copies kv.db */
    watch_hub_destroy(n->hub); /* before kv: its thread reads history */
    if (n->kv)
        kv_close(n->kv);
    if (n->st)
        storage_close(n->st);
    inbox_destroy(&n->in);
    lease_clock_destroy(&n->leases);
    removed_free(n);
    pthread_mutex_destroy(&n->removed_mu);
    pthread_mutex_destroy(&n->info_mu);
    free(n);
}
