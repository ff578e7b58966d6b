/* apply: applies committed entries to kv as one batch per Ready and
 * answers their waiters — only after the whole batch is applied in kv's
 * transaction (committed at once, or with the next batches by flush.c:
 * the Raft log holds them either way, and readers wait for the commit),
 * and only after the published info shows it. Normal entries carry a kv
 * command in an envelope; conf entries a membership change whose envelope
 * carries the peer URL. Must never fail a node over an unreadable entry
 * (the same bytes on every replica: a no-op everywhere), never go on past
 * an internal error (fail-stop: the fatal hook, then nothing of the batch
 * is committed or answered as applied), and never answer a waiter before
 * its batch is applied. */
#include "server/apply.h"

#include "server/envelope.h"
#include "server/node_int.h"
#include "server/snapshot.h"
#include "server/status.h"
#include "util/failpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Waiters answered after the batch                                    */
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

/* The batch will be applied again: its waiters go back to wait for it. */
static void done_requeue(done_list *d, waiters *w)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->items[i].has_res)
            kv_result_free(&d->items[i].res);
        waiters_add(w, d->items[i].p);
    }
    free(d->items);
}

/* ------------------------------------------------------------------ */
/* Entries                                                             */
/* ------------------------------------------------------------------ */

static int fail(const node_apply_env *env, int code, const char *what, const raft_entry *e)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%s at index %llu", what, (unsigned long long)e->index);
    env->fatal(env->ud, code, msg);
    return -1;
}

/* 0, or -1 after calling the fatal hook: kv could not apply a command
 * (SQLite, disk). A refusal (failed compare, unknown lease) is a result,
 * the same on every replica; an internal error is not, and skipping it
 * would let this replica diverge, so the node stops and re-applies. */
static int apply_normal(const node_apply_env *env, const raft_entry *e, done_list *done)
{
    uint64_t origin, seq;
    const uint8_t *payload;
    size_t plen;
    if (e->len == 0)
        return 0; /* a new leader's no-op */
    if (envelope_open(e->data, e->len, &origin, &seq, &payload, &plen) < 0) {
        /* the same bytes on every replica: a no-op everywhere */
        log_warn("entry %llu: unreadable envelope, skipped", (unsigned long long)e->index);
        return 0;
    }
    /* a member re-proposes what it forwarded when the leader changes: the
     * second copy of a pair already applied is a no-op everywhere (its
     * waiter, if any, was answered by the first) */
    bool seen = false;
    int once = kv_cmd_needs_once(payload, plen)
                   ? kv_apply_once(env->kv, origin, seq, &seen)
                   : KV_OK;
    if (kv_err_internal(once))
        return once == KV_ERR_NO_SPACE_DISK ? NODE_APPLY_NOSPACE
                                            : fail(env, NODE_EXIT_APPLY, "kv: cannot record entry", e);
    if (seen) {
        log_debug("entry %llu: proposal %llu/%llu applied before, skipped",
                  (unsigned long long)e->index, (unsigned long long)origin,
                  (unsigned long long)seq);
        return 0;
    }
    kv_result res;
    memset(&res, 0, sizeof res);
    int rc = kv_apply_cmd(env->kv, payload, plen, &res);
    if (kv_err_internal(rc)) {
        kv_result_free(&res);
        if (rc == KV_ERR_NO_SPACE_DISK)
            return NODE_APPLY_NOSPACE;
        return fail(env, NODE_EXIT_APPLY, "kv: cannot apply entry", e);
    }
    if (env->leases)
        lease_clock_on_apply(env->leases, &res, now_ms());
    if (res.member_id && res.member_url) {
        /* a member's new peer URL: Raft's membership is unchanged (ids),
         * the transport dials the new address from now on */
        raft_conf_change cc = {.op = RAFT_CONF_ADD_VOTER, .id = res.member_id};
        env->conf_applied(env->ud, &cc, res.member_url);
        log_info("membership: node %llu's peer URL is now %s", (unsigned long long)res.member_id,
                 res.member_url);
    }
    pending *p = origin == env->self ? waiters_take(env->w, seq) : NULL;
    if (!p || done_add(done, p, &res) < 0) {
        kv_result_free(&res);
        if (p)
            waiters_fail_pending(p, NODE_ERR_INTERNAL);
    }
    return 0;
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

static int apply_conf(const node_apply_env *env, const raft_entry *e, done_list *done)
{
    raft_conf_change cc;
    uint64_t origin = 0, seq = 0;
    const uint8_t *url = NULL;
    size_t url_len = 0;
    if (raft_conf_change_decode(e->data, e->len, &cc) < 0 ||
        envelope_open(cc.ctx, cc.ctx_len, &origin, &seq, &url, &url_len) < 0) {
        log_warn("entry %llu: unreadable membership change, skipped", (unsigned long long)e->index);
        return 0;
    }
    /* the URL, then after a NUL an Idempotency-Key's stamp (membership.c) */
    const uint8_t *nul = url_len ? memchr(url, 0, url_len) : NULL;
    const uint8_t *stamp = nul ? nul + 1 : NULL;
    size_t stamp_len = nul ? url_len - (size_t)(stamp - url) : 0;
    url_len = nul ? (size_t)(nul - url) : url_len;
    char *u = malloc(url_len + 1);
    if (!u)
        return fail(env, NODE_EXIT_INTERNAL, "out of memory applying a membership change", e);
    memcpy(u, url, url_len);
    u[url_len] = '\0';
    int rc = kv_apply_member(env->kv, member_op_from_raft(cc.op), cc.id, u);
    if (rc == KV_OK && stamp)
        rc = kv_idem_keep_member(env->kv, stamp, stamp_len, cc.id);
    if (kv_err_internal(rc)) {
        free(u);
        if (rc == KV_ERR_NO_SPACE_DISK)
            return NODE_APPLY_NOSPACE;
        return fail(env, NODE_EXIT_APPLY, "kv: cannot apply membership change", e);
    }
    env->conf_applied(env->ud, &cc, u);
    free(u);
    log_info("membership: %s node %llu applied at index %llu",
             cc.op == RAFT_CONF_REMOVE ? "removed" : cc.op == RAFT_CONF_PROMOTE ? "promoted" : "added",
             (unsigned long long)cc.id, (unsigned long long)e->index);
    pending *p = origin == env->self && seq ? waiters_take(env->w, seq) : NULL;
    if (p && done_add(done, p, NULL) < 0)
        waiters_fail_pending(p, NODE_ERR_INTERNAL);
    return 0;
}

/* Runs every entry of the batch; 0, -1 (fatal called) or NODE_APPLY_NOSPACE.
 * An entry whose data no longer matches the checksum it was proposed with
 * was damaged in this node's memory: never applied. */
static int apply_all(const node_apply_env *env, const raft_entry *ents, size_t cnt,
                     done_list *done)
{
    for (size_t i = 0; i < cnt; i++) {
        if (crc32c(0, ents[i].data, ents[i].len) != ents[i].crc)
            return fail(env, NODE_EXIT_INTERNAL, "entry fails its checksum", &ents[i]);
        int rc = ents[i].type == RAFT_ENTRY_CONF ? apply_conf(env, &ents[i], done)
                                                 : apply_normal(env, &ents[i], done);
        if (rc != 0)
            return rc;
    }
    const raft_entry *last = &ents[cnt - 1];
    int rc = env->defer ? kv_apply_end(env->kv, last->index, last->term)
                        : kv_apply_commit(env->kv, last->index, last->term);
    if (rc == KV_ERR_NO_SPACE_DISK)
        return NODE_APPLY_NOSPACE;
    if (rc != KV_OK) {
        env->fatal(env->ud, NODE_EXIT_STORAGE, "kv: cannot commit applied batch");
        return -1;
    }
    return 0;
}

int node_apply_batch(const node_apply_env *env, const raft_entry *ents, size_t cnt)
{
    if (cnt == 0)
        return NODE_APPLY_OK;
    done_list done = {0};
    int rc = kv_apply_begin(env->kv);
    if (rc != KV_OK) {
        if (rc == KV_ERR_NO_SPACE_DISK)
            return NODE_APPLY_NOSPACE;
        env->fatal(env->ud, NODE_EXIT_APPLY, "kv: cannot begin apply");
        return NODE_APPLY_OK;
    }
    rc = apply_all(env, ents, cnt, &done);
    if (rc == 0) {
        env->batch_applied(env->ud, cnt);
        done_fire(&done, true);
        return NODE_APPLY_OK;
    }
    if (kv_apply_rollback(env->kv) < 0) {
        env->fatal(env->ud, NODE_EXIT_STORAGE, "kv: cannot read its state back after a rollback");
        rc = -1;
    }
    if (rc == NODE_APPLY_NOSPACE) {
        done_requeue(&done, env->w);
        return NODE_APPLY_NOSPACE;
    }
    done_fire(&done, false);
    return NODE_APPLY_OK;
}

/* ------------------------------------------------------------------ */
/* The node's binding                                                  */
/* ------------------------------------------------------------------ */

/* The transport and the removed set follow membership as it applies. A
 * member that cannot (out of memory: failpoint conf.apply) stops: going on
 * would leave it never sending to a new member, or giving a removed id out
 * again, while its log says otherwise. */
static void bind_conf_applied(void *ud, const raft_conf_change *cc, const char *url)
{
    node *n = ud;
    bool add = cc->op == RAFT_CONF_ADD_VOTER || cc->op == RAFT_CONF_ADD_LEARNER;
    n->must_flush = true; /* membership changes are committed at once (flush.c) */
    if (failpoint_hit("conf.apply") ||
        (url && cc->id != n->cfg->id && add && transport_set_peer(n->tp, cc->id, url) < 0) ||
        (cc->op == RAFT_CONF_REMOVE && removed_add(n, cc->id) < 0))
        node_fatal(n, NODE_EXIT_APPLY, "cannot follow an applied membership change");
    if (cc->op == RAFT_CONF_REMOVE) {
        if (cc->id == n->cfg->id)
            n->removed = true;
        else
            transport_remove_peer(n->tp, cc->id);
    }
}

static void bind_batch_applied(void *ud, size_t cnt)
{
    node *n = ud;
    n->applied_total += cnt;
    /* the hub reads the new events through a reader, which waits for
     * them to be flushed (kv_visible.c) */
    watch_notify(n->hub, kv_revision(n->kv));
    /* before the answers: a client that saw its write acknowledged must
     * not then read an older revision or applied index in /status */
    node_publish_info(n, now_ms());
}

static void bind_fatal(void *ud, int code, const char *what) { node_fatal(ud, code, what); }

int node_apply_committed(node *n, const raft_entry *ents, size_t cnt)
{
    node_apply_env env = {
        .kv = n->kv, .self = n->cfg->id, .w = &n->w, .leases = &n->leases, .ud = n,
        .conf_applied = bind_conf_applied, .batch_applied = bind_batch_applied,
        .fatal = bind_fatal, .defer = true,
    };
    if (cnt && node_flush_before_apply(n) < 0)
        return NODE_APPLY_NOSPACE; /* lost batches first: the disk is still full */
    n->must_flush = false;
    int rc = node_apply_batch(&env, ents, cnt);
    if (rc == NODE_APPLY_NOSPACE) /* its rollback took the batches before it too */
        node_flush_note_lost(n);
    if (rc == NODE_APPLY_OK && cnt) {
        node_flush_after_apply(n, ents, cnt, n->must_flush);
        node_snapshot_count(n, ents, cnt);
    }
    return rc;
}
