/* transfer.c: leadership transfer — the leader stops taking proposals,
 * brings the target's log up to date, then, once the target says it holds
 * all of it, tells it to campaign at once (TIMEOUT_NOW); the transfer is
 * abandoned after an election timeout, and its target then comes last
 * when a successor is chosen until it answers again (query.c
 * raft_best_successor). A leader asked to remove itself transfers to that
 * successor first (raft.c leader_accept).
 *
 * Must never: hand leadership to a non-voter or to a follower whose log is
 * behind (it could not win, and the cluster would stall meanwhile).
 */
#include "raft/raft_int.h"

static void send_timeout_now(raft *r, raft_id to)
{
    raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_TIMEOUT_NOW, to);
    raft_send(r, &m);
}

/* The target is told to campaign once it answers an append showing it
 * holds the whole log (raft_transfer_on_progress), never in the Ready
 * that starts the transfer: whatever else that Ready sends it (a refusal
 * of its own proposal, refuse_prop) is then stepped while it still
 * follows. One round trip more than telling a caught-up target at once. */
int raft_transfer_start(raft *r, raft_id to)
{
    if (to == r->id)
        return 0; /* already leader: nothing to do */
    raft_progress *p = raft_pr_get(r, to);
    if (!p || !raft_is_voter(r, to))
        return RAFT_ERR_INVALID;
    if (r->transferee == to)
        return 0;
    r->transferee = to;
    r->transfer_elapsed = 0;
    raft_send_append(r, p, true);
    return 0;
}

void raft_transfer_on_progress(raft *r, raft_progress *p)
{
    if (r->transferee == p->id && p->match == raft_log_last(&r->log))
        send_timeout_now(r, p->id);
}

void raft_transfer_abort(raft *r)
{
    raft_progress *p = r->transferee ? raft_pr_get(r, r->transferee) : NULL;
    if (p)
        p->lapsed = true;
    r->transferee = 0;
    r->transfer_elapsed = 0;
}

void raft_handle_timeout_now(raft *r, const raft_msg *m)
{
    if (r->role == RAFT_FOLLOWER && raft_promotable(r))
        raft_campaign(r, true);
}
