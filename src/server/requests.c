/* requests: the node's public request entry points (any thread: they
 * only queue an event) and, on the node loop, how a queued proposal or
 * membership change becomes a Raft proposal with a waiter. Must never
 * answer a request twice nor drop one: every request ends in its
 * callback, from here, from apply, or from expiry. */
#include "server/requests.h"

#include "server/envelope.h"

#include <stdlib.h>

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

/* A request answered by a done callback, naming at most an id. */
static void submit_done(node *n, int kind, uint64_t id, node_done_cb cb, void *ud)
{
    event *ev = calloc(1, sizeof *ev);
    if (!ev) {
        cb(ud, NODE_ERR_INTERNAL);
        return;
    }
    ev->kind = kind;
    ev->id = id;
    ev->dcb = cb;
    ev->ud = ud;
    submit(n, ev);
}

void node_read_barrier(node *n, node_done_cb cb, void *ud)
{
    submit_done(n, EV_READ, 0, cb, ud);
}

void node_move_leader(node *n, uint64_t to, node_done_cb cb, void *ud)
{
    submit_done(n, EV_MOVE, to, cb, ud);
}

void node_change_member(node *n, int op, uint64_t id, const char *peer_url, const buf *stamp,
                        uint64_t *chosen_id, node_done_cb cb, void *ud)
{
    event *ev = calloc(1, sizeof *ev);
    if (!ev || (peer_url && !(ev->url = xstrdup(peer_url))) ||
        (stamp && stamp->len && !(ev->data = xmemdup(stamp->data, stamp->len)))) {
        if (ev)
            event_free(ev);
        cb(ud, NODE_ERR_INTERNAL);
        return;
    }
    ev->len = stamp ? stamp->len : 0;
    ev->kind = EV_MEMBER;
    ev->op = op;
    ev->id = id;
    ev->chosen = chosen_id;
    ev->dcb = cb;
    ev->ud = ud;
    submit(n, ev);
}

/* ------------------------------------------------------------------ */
/* Proposals, on the loop                                              */
/* ------------------------------------------------------------------ */

static int raft_to_node_status(int rc)
{
    switch (rc) {
    case RAFT_ERR_NO_LEADER:
    case RAFT_ERR_TRANSFERRING: return NODE_ERR_NO_LEADER;
    case RAFT_ERR_CONF_PENDING: return NODE_ERR_CONF_PENDING;
    case RAFT_ERR_NOT_READY: return NODE_ERR_NOT_READY;
    case RAFT_ERR_INVALID:
    case RAFT_ERR_TOO_MANY: return NODE_ERR_INVALID;
    default: return NODE_ERR_INTERNAL;
    }
}

static int propose_conf(node *n, pending *p)
{
    raft_conf_change cc;
    if (raft_conf_change_decode(p->entry.data, p->entry.len, &cc) < 0)
        return RAFT_ERR_INVALID;
    /* a leader asked to remove itself hands leadership over first
     * (RAFT_ERR_TRANSFERRING): the removal is proposed again on a later
     * tick, to the new leader, so no one sits through an election */
    cc.tag = p->seq; /* a leader's refusal names it (node_refused) */
    return raft_propose_conf(n->r, &cc);
}

/* The leader did not append what this node forwarded. Refused for a
 * transfer underway, it is proposed again on the next tick (to whoever
 * leads then: the leader, once its transfer ends either way); else, a
 * conf change's client hears the leader's reason. */
void node_refused(node *n, const raft_refusal *rf)
{
    pending *q = waiters_find(&n->w, rf->tag);
    if (!q || !q->proposed || (rf->stale && !q->is_conf))
        return; /* answered already (timed out), about to be sent again, or a
                 * write that the leader change sent again already */
    n->proposals_refused_total++;
    if (rf->code == RAFT_ERR_TRANSFERRING) {
        q->proposed = false;
    } else if (q->is_conf) {
        waiters_fail_pending(waiters_take(&n->w, rf->tag), raft_to_node_status(rf->code));
    }
}

/* Hands a pending request to Raft. A request that finds no leader stays
 * pending and is retried every tick until its deadline. */
static void try_propose(node *n, pending *p)
{
    int rc;
    if (p->is_conf) {
        rc = propose_conf(n, p);
    } else {
        rc = raft_propose_tagged(n->r, p->entry.data, (uint32_t)p->entry.len, p->seq);
    }
    if (rc == RAFT_OK) {
        p->proposed = true;
        n->proposals_total++;
        return;
    }
    if (rc == RAFT_ERR_NO_LEADER || rc == RAFT_ERR_TRANSFERRING)
        return;
    waiters_fail_pending(waiters_take(&n->w, p->seq), raft_to_node_status(rc));
}

pending *node_new_pending(node *n, event *ev)
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

void node_propose_pending(node *n, pending *p)
{
    waiters_add(&n->w, p);
    try_propose(n, p);
}

void node_handle_propose(node *n, event *ev)
{
    pending *p = node_new_pending(n, ev);
    if (!p || envelope_wrap(&p->entry, n->cfg->id, p->seq, ev->data, ev->len) < 0) {
        if (p)
            waiters_free_pending(p);
        event_fail(ev, NODE_ERR_INTERNAL);
        return;
    }
    node_propose_pending(n, p);
}

void node_retry_unproposed(node *n)
{
    pending *p = n->w.all, *next;
    for (; p; p = next) {
        next = p->next;
        if (!p->proposed)
            try_propose(n, p);
    }
}
