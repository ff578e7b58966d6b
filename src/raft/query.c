/* query.c: read-only accessors of the core's state for the node loop,
 * the API's /status and the tests.
 *
 * Must never: change state — every function here takes a const raft.
 */
#include "raft/raft_int.h"

raft_id raft_self(const raft *r) { return r->id; }
enum raft_role raft_role_get(const raft *r) { return r->role; }
raft_id raft_leader(const raft *r) { return r->leader; }
raft_term raft_term_get(const raft *r) { return r->term; }
raft_index raft_commit_index(const raft *r) { return r->commit; }
raft_index raft_applied_index(const raft *r) { return r->applied; }
raft_index raft_last_index(const raft *r) { return raft_log_last(&r->log); }
raft_index raft_first_index(const raft *r) { return r->log.offset + 1; }

raft_index raft_tail_start(const raft *r, raft_index index, raft_index keep, uint64_t max_bytes)
{
    const raft_log *l = &r->log;
    if (index > raft_log_last(l))
        index = raft_log_last(l);
    if (index <= l->offset)
        return index;
    raft_index to = index;
    uint64_t bytes = 0;
    while (to > l->offset && index - to < keep) {
        uint64_t sz = (uint64_t)l->ents[to - l->offset - 1].len + 32;
        if (bytes + sz > max_bytes)
            break;
        bytes += sz;
        to--;
    }
    return to;
}
const raft_conf *raft_conf_get(const raft *r) { return &r->conf; }

bool raft_is_voter(const raft *r, raft_id id)
{
    for (uint32_t i = 0; i < r->conf.n_voters; i++)
        if (r->conf.voters[i] == id)
            return true;
    return false;
}

bool raft_is_learner(const raft *r, raft_id id)
{
    for (uint32_t i = 0; i < r->conf.n_learners; i++)
        if (r->conf.learners[i] == id)
            return true;
    return false;
}

raft_index raft_match_index(const raft *r, raft_id id)
{
    if (r->role != RAFT_LEADER)
        return 0;
    if (id == r->id)
        return raft_log_last(&r->log);
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return r->prs[i].match;
    return 0;
}

/* A voter that let a transfer lapse and has not answered since is likely
 * down or cut off: asking it again, each time the same request is
 * retried, would keep the leader refusing proposals until the request's
 * deadline. */
static bool better_successor(const raft_progress *p, const raft_progress *than)
{
    if (p->lapsed != than->lapsed)
        return than->lapsed;
    return p->match > than->match;
}

raft_id raft_best_successor(const raft *r)
{
    const raft_progress *best = NULL;
    for (uint32_t i = 0; r->role == RAFT_LEADER && i < r->n_prs; i++) {
        const raft_progress *p = &r->prs[i];
        if (raft_is_voter(r, p->id) && (!best || better_successor(p, best)))
            best = p;
    }
    return best ? best->id : 0;
}

raft_index raft_lost_index(const raft *r)
{
    return r->log_lost ? r->lost_at : 0;
}
