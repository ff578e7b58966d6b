/* election.c: roles and elections — randomized timeouts, PreVote, votes,
 * CheckQuorum and the term rules every incoming message goes through.
 *
 * Must never: touch the log beyond reading its last index/term (the new
 * leader's no-op goes through replication.c) or grant a vote that could
 * let two leaders share a term.
 */
#include "raft/raft_int.h"

/* splitmix64: tiny, seedable, and good enough to spread timeouts. */
static uint64_t rng_next(raft *r)
{
    uint64_t z = (r->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void reset_timeout(raft *r)
{
    int et = r->cfg.election_tick;
    r->timeout = et + (int)(rng_next(r) % (uint64_t)et);
}

bool raft_promotable(const raft *r)
{
    return raft_is_voter(r, r->id);
}

uint32_t raft_quorum(const raft *r)
{
    return r->conf.n_voters / 2 + 1;
}

/* Everything a role change forgets: timers, votes, leader-only state. */
static void reset(raft *r, raft_term term)
{
    if (r->leader && r->leader != r->id) {
        r->last_leader = r->leader;
        r->last_leader_term = r->term;
    }
    if (r->term != term) {
        r->term = term;
        r->vote = 0;
    }
    r->leader = 0;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    reset_timeout(r);
    r->n_votes = 0;
    r->transferee = 0;
    r->transfer_elapsed = 0;
    r->n_prs = 0;
    raft_reads_clear(r);
}

void raft_become_follower(raft *r, raft_term term, raft_id leader)
{
    reset(r, term);
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
}

/* The last conf change this node has not applied, or its applied index:
 * a new leader may append a conf change at once when its tail holds none
 * (an absent entry counts as one). Waiting for the no-op instead, as
 * etcd does, refused the removal a transfer had just handed over. */
static raft_index last_unapplied_conf(const raft *r)
{
    for (raft_index i = raft_log_last(&r->log); i > r->applied; i--) {
        const raft_entry *e = raft_log_at(&r->log, i);
        if (!e || e->type == RAFT_ENTRY_CONF)
            return i;
    }
    return r->applied;
}

static void raft_become_leader(raft *r)
{
    reset(r, r->term);
    r->role = RAFT_LEADER;
    r->leader = r->id;
    raft_prs_reset(r);
    /* The no-op commits the leader's term, which also commits whatever
     * earlier-term tail it holds (entries are only committed by counting
     * replicas of current-term entries). */
    raft_entry noop = {.type = RAFT_ENTRY_NORMAL, .crc = raft_entry_sum(r, NULL, 0)};
    raft_leader_append(r, &noop);
    r->pending_conf = last_unapplied_conf(r);
    raft_maybe_commit(r);
    raft_broadcast_append(r);
}

static void record_vote(raft *r, raft_id id, bool granted)
{
    for (uint32_t i = 0; i < r->n_votes; i++)
        if (r->vote_ids[i] == id)
            return;
    if (r->n_votes < RAFT_MAX_MEMBERS) {
        r->vote_ids[r->n_votes] = id;
        r->vote_granted[r->n_votes] = granted;
        r->n_votes++;
    }
}

/* Counts recorded answers of current voters only. */
static void tally(const raft *r, uint32_t *granted, uint32_t *rejected)
{
    *granted = *rejected = 0;
    for (uint32_t i = 0; i < r->n_votes; i++) {
        if (!raft_is_voter(r, r->vote_ids[i]))
            continue;
        if (r->vote_granted[i])
            (*granted)++;
        else
            (*rejected)++;
    }
}

static void start_election(raft *r, bool pre, bool transfer);

/* Records one answer (our own included) and acts on the tally: a quorum
 * granted moves a pre-candidate on to the real election and makes a
 * candidate leader; a quorum refused sends it back to following. True if
 * the campaign ended either way. */
static bool count_vote(raft *r, raft_id from, bool granted, bool transfer)
{
    bool pre = r->role == RAFT_PRE_CANDIDATE;
    record_vote(r, from, granted);
    uint32_t yes, no;
    tally(r, &yes, &no);
    if (yes >= raft_quorum(r)) {
        if (pre)
            start_election(r, false, transfer);
        else
            raft_become_leader(r);
        return true;
    }
    if (no >= raft_quorum(r)) {
        raft_become_follower(r, r->term, 0);
        return true;
    }
    return false;
}

/* Sends a campaign's request for votes to every other voter of our conf. */
static void ask_voters(raft *r, uint8_t type, raft_term term, bool transfer)
{
    for (uint32_t i = 0; i < r->conf.n_voters; i++) {
        raft_id to = r->conf.voters[i];
        if (to == r->id)
            continue;
        raft_msg m;
        raft_msg_init(r, &m, type, to);
        m.term = term;
        m.index = raft_log_last(&r->log);
        m.log_term = raft_log_last_term(&r->log);
        m.flags = transfer ? RAFT_FLAG_TRANSFER : 0;
        raft_send(r, &m);
    }
}

static void start_election(raft *r, bool pre, bool transfer)
{
    if (pre) {
        /* Same term, same vote: a pre-candidate only asks if it could win. */
        reset(r, r->term);
        r->role = RAFT_PRE_CANDIDATE;
    } else {
        reset(r, r->term + 1);
        r->role = RAFT_CANDIDATE;
        r->vote = r->id;
    }
    if (count_vote(r, r->id, true, transfer))
        return;
    ask_voters(r, pre ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE, pre ? r->term + 1 : r->term, transfer);
}

void raft_campaign(raft *r, bool transfer)
{
    if (!raft_promotable(r))
        return;
    start_election(r, r->cfg.pre_vote && !transfer, transfer);
}

/* A learner never campaigns, nor does a node its own conf does not list
 * (joining, or restarted from a snapshot older than its addition). Either,
 * hearing from no leader it lets in, asks the voters it knows with the
 * prevote a campaign starts with, keeping its role and term. A refusal
 * names their leader (raft.c take_leader_hint), whose addition it may have
 * missed; a grant means nothing to it. And if they removed it meanwhile,
 * no leader will send to it again: the server's peer listener answers its
 * prevotes 410 Gone, the only way left for it to learn that it is out. */
void raft_tick_election(raft *r)
{
    r->election_elapsed++;
    if (r->election_elapsed < r->timeout)
        return;
    r->election_elapsed = 0;
    if (raft_promotable(r))
        raft_campaign(r, false);
    else
        ask_voters(r, RAFT_MSG_PREVOTE, r->term + 1, false);
}

/* Did a quorum of voters answer since the last check? Resets the marks. */
static bool quorum_active(raft *r)
{
    uint32_t n = raft_promotable(r) ? 1 : 0;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        raft_progress *p = &r->prs[i];
        if (p->recent_active && raft_is_voter(r, p->id))
            n++;
        p->recent_active = false;
    }
    return n >= raft_quorum(r);
}

void raft_tick_leader(raft *r)
{
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    if (r->transferee && ++r->transfer_elapsed >= r->cfg.election_tick)
        raft_transfer_abort(r);
    if (r->election_elapsed >= r->cfg.election_tick) {
        r->election_elapsed = 0;
        if (r->cfg.check_quorum && !quorum_active(r)) {
            raft_become_follower(r, r->term, 0);
            return;
        }
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_tick) {
        r->heartbeat_elapsed = 0;
        raft_broadcast_heartbeat(r);
    }
}

static void reply(raft *r, const raft_msg *m, uint8_t type, raft_term term, bool reject)
{
    raft_msg resp;
    raft_msg_init(r, &resp, type, m->from);
    resp.term = term;
    resp.reject = reject;
    raft_send(r, &resp);
}

/* Refuses a campaign at our term, naming our leader when our own conf
 * lists it: a campaigner that missed the change adding that leader learns
 * whom to follow (raft.c takes such a hint from members only). */
static void refuse_naming_leader(raft *r, const raft_msg *m)
{
    raft_msg resp;
    uint8_t type = m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP : RAFT_MSG_PREVOTE_RESP;
    raft_msg_init(r, &resp, type, m->from);
    resp.term = r->term;
    resp.reject = true;
    if (r->leader && raft_conf_has(&r->conf, r->leader)) {
        resp.flags = RAFT_FLAG_LEADER_HINT;
        resp.context = r->leader;
    }
    raft_send(r, &resp);
}

static bool leader_lease(const raft *r)
{
    return r->cfg.check_quorum && r->leader != 0 &&
           r->election_elapsed < r->cfg.election_tick;
}

static bool from_leader(uint8_t type)
{
    return type == RAFT_MSG_APPEND || type == RAFT_MSG_HEARTBEAT || type == RAFT_MSG_SNAP;
}

bool raft_step_term(raft *r, const raft_msg *m)
{
    bool campaign = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE;
    if (m->term == 0) /* only requests forwarded to the leader travel without a term */
        return m->type == RAFT_MSG_PROP || m->type == RAFT_MSG_READINDEX ||
               m->type == RAFT_MSG_TRANSFER;
    if (m->term > r->term) {
        /* A node that heard from a live leader refuses campaigns, so a
         * partitioned node rejoining cannot depose it; transfers override. */
        if (campaign && !(m->flags & RAFT_FLAG_TRANSFER) && leader_lease(r)) {
            refuse_naming_leader(r, m);
            return false;
        }
        if (m->type == RAFT_MSG_PREVOTE ||
            (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject))
            return true;
        raft_become_follower(r, m->term, from_leader(m->type) ? m->from : 0);
        return true;
    }
    if (m->term < r->term) {
        /* Tell a stale leader about the newer term, so a node that was cut
         * off with a higher term does not wait forever: prevote and the
         * leader's lease keep it from winning an election, and a learner
         * (or a voter some stranger's campaign lifted, without them) never
         * runs one. As in the Raft paper, every stale append is answered. */
        if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)
            reply(r, m, RAFT_MSG_APPEND_RESP, r->term, false);
        else if (campaign)
            refuse_naming_leader(r, m);
        return false;
    }
    return true;
}

void raft_handle_vote(raft *r, const raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE;
    bool can = r->vote == m->from || (r->vote == 0 && r->leader == 0) ||
               (pre && m->term > r->term);
    /* A node answers even if its own (possibly stale) conf says it is a
     * learner: it may have been promoted in entries it has not applied yet,
     * and refusing would deadlock elections. Learners still never vote in
     * effect, because candidates count only voters of their own conf. */
    if (can && raft_log_up_to_date(&r->log, m->index, m->log_term)) {
        if (!pre) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
        reply(r, m, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP, m->term, false);
    } else {
        refuse_naming_leader(r, m);
    }
}

void raft_handle_vote_resp(raft *r, const raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE_RESP;
    if (r->role != (pre ? RAFT_PRE_CANDIDATE : RAFT_CANDIDATE))
        return;
    if (pre && !m->reject && m->term != r->term + 1)
        return;
    /* A pre-campaign is never a transfer's (transfers skip PreVote), so
     * the election it may lead to is not one either. */
    count_vote(r, m->from, !m->reject, false);
}
