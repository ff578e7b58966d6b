/* failover: what keeps a leader change from costing clients a failed
 * write. A stopping leader hands leadership over (Raft's TimeoutNow via
 * raft_transfer_leader) before it goes and refuses new proposals at once;
 * a member that sees a new leader proposes again every write it forwarded
 * and has not seen applied (the old leader may have lost it — or not: the
 * second copy is skipped at apply, kv_once.c) and asks its pending read
 * rounds again (what a transferring leader refused with a word is sent
 * again on the next tick: requests.c); POST /maintenance/move-leader moves
 * leadership on demand.
 *
 * Must never: stop a leader's process before its own writes in flight are
 * applied or the hand-off deadline passed, or re-propose a membership
 * change (those are answered by their own rules).
 */
#include "server/failover.h"
#include "server/status.h"

#include "server/requests.h"

#include <stdlib.h>

/* ---- a new leader ---- */

void node_watch_leader(node *n)
{
    raft_id lead = raft_leader(n->r);
    raft_term term = raft_term_get(n->r);
    if (lead == 0 || (lead == n->seen_leader && term == n->seen_term))
        return;
    bool had = n->seen_leader != 0;
    n->seen_leader = lead;
    n->seen_term = term;
    if (!had)
        return; /* the first leader this life: nothing was sent to another */
    size_t again = 0;
    for (pending *p = n->w.all; p; p = p->next) {
        if (!p->is_conf && p->proposed) {
            p->proposed = false;
            again++;
        }
    }
    for (read_waiter *rw = n->w.reads; rw; rw = rw->next)
        if (!rw->confirmed)
            rw->ctx = 0; /* its round went to the old leader */
    if (again)
        log_info("leader is now node %llu (term %llu): proposing %zu writes again",
                 (unsigned long long)lead, (unsigned long long)term, again);
    node_retry_unproposed(n);
}

/* ---- stopping ---- */

void node_stop_turn(node *n, uint64_t now)
{
    if (!atomic_load(&n->stop_asked) || atomic_load(&n->stop))
        return;
    if (!n->handing_off) {
        n->handing_off = true;
        n->handoff_deadline = now + 2 * (uint64_t)n->cfg->election_ms;
        raft_id to = raft_best_successor(n->r);
        if (to == 0) {
            atomic_store(&n->stop, true);
            return;
        }
        log_info("stopping: handing leadership to node %llu first", (unsigned long long)to);
        raft_transfer_leader(n->r, to);
    }
    bool leads = raft_role_get(n->r) == RAFT_LEADER;
    if ((!leads && !n->w.all) || now >= n->handoff_deadline) {
        if (leads)
            log_warn("stopping: leadership did not move within two election timeouts");
        atomic_store(&n->stop, true);
    }
}

/* ---- move-leader ---- */

typedef struct move_waiter {
    struct move_waiter *next;
    raft_id to;
    uint64_t deadline;
    node_done_cb cb;
    void *ud;
} move_waiter;

void node_handle_move(node *n, event *ev)
{
    raft_id to = ev->id;
    if (!raft_is_voter(n->r, to)) {
        event_fail(ev, NODE_ERR_NOT_FOUND);
        return;
    }
    move_waiter *m = calloc(1, sizeof *m);
    if (!m) {
        event_fail(ev, NODE_ERR_INTERNAL);
        return;
    }
    *m = (move_waiter){n->moves, to, now_ms() + 2 * (uint64_t)n->cfg->election_ms, ev->dcb, ev->ud};
    n->moves = m;
    if (raft_leader(n->r) != to)
        raft_transfer_leader(n->r, to); /* a follower forwards it to the leader */
}

void node_move_turn(node *n, uint64_t now)
{
    raft_id lead = raft_leader(n->r);
    if (n->moves)
        node_publish_info(n, now); /* an answer reads /status's leader: this turn's */
    move_waiter **pp = &n->moves;
    while (*pp) {
        move_waiter *m = *pp;
        bool stopping = atomic_load(&n->stop);
        if (lead == m->to || now >= m->deadline || stopping) {
            *pp = m->next;
            m->cb(m->ud, lead == m->to ? NODE_OK : stopping ? NODE_ERR_STOPPING : NODE_ERR_TIMEOUT);
            free(m);
        } else {
            pp = &m->next;
        }
    }
}
