/* progress.c: the leader's view of one follower — match/next, the
 * probe/replicate/snapshot state machine and the in-flight window that
 * bounds how much unacknowledged data is on the wire.
 *
 * Must never: send messages or read the log; replication.c decides what to
 * send from the state kept here.
 */
#include "raft/raft_int.h"

#include <string.h>

void raft_pr_reset(raft_progress *p, raft_id id, raft_index next)
{
    memset(p, 0, sizeof *p);
    p->id = id;
    p->next = next;
    p->state = RAFT_PR_PROBE;
}

static void clear_inflight(raft_progress *p)
{
    p->infl_start = 0;
    p->infl_count = 0;
}

void raft_pr_become_probe(raft_progress *p)
{
    /* After a snapshot the follower holds at least the snapshot. */
    raft_index from = p->match + 1;
    if (p->state == RAFT_PR_SNAPSHOT && p->pending_snapshot + 1 > from)
        from = p->pending_snapshot + 1;
    p->state = RAFT_PR_PROBE;
    p->next = from;
    p->probe_sent = false;
    p->pending_snapshot = 0;
    clear_inflight(p);
}

void raft_pr_become_replicate(raft_progress *p)
{
    p->state = RAFT_PR_REPLICATE;
    p->next = p->match + 1;
    p->probe_sent = false;
    p->pending_snapshot = 0;
    clear_inflight(p);
}

void raft_pr_become_snapshot(raft_progress *p, raft_index snap_index)
{
    p->state = RAFT_PR_SNAPSHOT;
    p->pending_snapshot = snap_index;
    p->probe_sent = false;
    clear_inflight(p);
}

bool raft_pr_update(raft_progress *p, raft_index n)
{
    bool moved = false;
    if (p->match < n) {
        p->match = n;
        moved = true;
        p->probe_sent = false;
    }
    if (p->next < n + 1)
        p->next = n + 1;
    return moved;
}

/* A rejection of the APPEND whose previous index was `rejected`; hint is
 * the leader-side guess of where the logs last agree. False = stale. */
bool raft_pr_decr(raft_progress *p, raft_index rejected, raft_index hint)
{
    if (p->state == RAFT_PR_REPLICATE) {
        if (rejected <= p->match)
            return false;
        p->next = p->match + 1;
        return true;
    }
    if (p->next == 0 || p->next - 1 != rejected)
        return false;
    raft_index n = rejected < hint + 1 ? rejected : hint + 1;
    if (n < p->match + 1)
        n = p->match + 1;
    p->next = n;
    p->probe_sent = false;
    return true;
}

bool raft_pr_paused(const raft_progress *p, uint32_t max_inflight)
{
    switch (p->state) {
    case RAFT_PR_PROBE:
        return p->probe_sent;
    case RAFT_PR_REPLICATE:
        return p->infl_count >= max_inflight;
    default:
        return true;
    }
}

void raft_pr_sent(raft_progress *p, raft_index last)
{
    if (p->state == RAFT_PR_REPLICATE) {
        p->next = last + 1;
        if (p->infl_count < RAFT_INFLIGHT_CAP) {
            uint32_t slot = (p->infl_start + p->infl_count) % RAFT_INFLIGHT_CAP;
            p->infl[slot] = last;
            p->infl_count++;
        }
    } else if (p->state == RAFT_PR_PROBE) {
        p->probe_sent = true;
    }
}

void raft_pr_free_to(raft_progress *p, raft_index idx)
{
    while (p->infl_count > 0 && p->infl[p->infl_start] <= idx) {
        p->infl_start = (p->infl_start + 1) % RAFT_INFLIGHT_CAP;
        p->infl_count--;
    }
}

void raft_pr_free_first(raft_progress *p)
{
    if (p->infl_count > 0) {
        p->infl_start = (p->infl_start + 1) % RAFT_INFLIGHT_CAP;
        p->infl_count--;
    }
}
