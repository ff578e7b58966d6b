/* transfer.c: leadership transfer — the leader stops taking proposals,
 * brings the target's log up to date, then tells it to campaign at once
 * (TIMEOUT_NOW); the transfer is abandoned after an election timeout. A
 * leader asked to remove itself transfers to its most caught-up voter
 * first (raft.c leader_accept).
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

/* at_once: a target already caught up is told to campaign in this
 * Ready; else only after it answers an append, so that whatever else this
 * Ready sends it (a refusal of its proposal) is stepped before it leaves
 * the follower role. */
static int transfer_start(raft *r, raft_id to, bool at_once)
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
    if (at_once && p->match == raft_log_last(&r->log))
        send_timeout_now(r, to);
    else
        raft_send_append(r, p, true);
    return 0;
}

int raft_transfer_start(raft *r, raft_id to) { return transfer_start(r, to, true); }

bool raft_transfer_to_best(raft *r)
{
    raft_progress *best = NULL;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        raft_progress *p = &r->prs[i];
        if (raft_is_voter(r, p->id) && (!best || p->match > best->match))
            best = p;
    }
    return best && transfer_start(r, best->id, false) == 0;
}

void raft_transfer_on_progress(raft *r, raft_progress *p)
{
    if (r->transferee == p->id && p->match == raft_log_last(&r->log))
        send_timeout_now(r, p->id);
}

void raft_transfer_abort(raft *r)
{
    r->transferee = 0;
    r->transfer_elapsed = 0;
}

void raft_handle_timeout_now(raft *r, const raft_msg *m)
{
    if (r->role == RAFT_FOLLOWER && raft_promotable(r))
        raft_campaign(r, true);
}
