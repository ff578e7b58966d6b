/* raft.c: the core's lifecycle and inputs — raft_new/free, tick, the step
 * dispatcher that routes each message by role, proposals, read-index and
 * transfer requests, and the raft_report_* calls.
 *
 * Must never: do I/O, read a clock or keep global state; every message is
 * validated here before any handler sees it.
 */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

static void apply_defaults(raft_config *c)
{
    if (c->election_tick <= 0)
        c->election_tick = 10;
    if (c->heartbeat_tick <= 0)
        c->heartbeat_tick = 1;
    if (c->heartbeat_tick >= c->election_tick)
        c->heartbeat_tick = c->election_tick > 1 ? c->election_tick / 2 : 1;
    if (c->max_inflight == 0 || c->max_inflight > RAFT_INFLIGHT_CAP)
        c->max_inflight = c->max_inflight ? RAFT_INFLIGHT_CAP : 64;
}

/* Loads the recovered log and state; checks it hangs together. */
static int load_state(raft *r, const raft_init_state *in)
{
    raft_log_init(&r->log, in->snap.index, in->snap.term);
    raft_term prev = in->snap.term;
    if (in->hs.term >= RAFT_MAX_NUMBER || in->snap.index >= RAFT_MAX_NUMBER ||
        in->snap.term >= RAFT_MAX_NUMBER || in->hs.vote >= RAFT_MAX_NUMBER)
        return RAFT_ERR_INVALID;
    for (size_t i = 0; i < in->n_entries; i++) {
        const raft_entry *e = &in->entries[i];
        if (e->term < prev || e->term >= RAFT_MAX_NUMBER || (e->len && !e->data) ||
            raft_log_append(&r->log, e) != 0)
            return RAFT_ERR_INVALID;
        prev = e->term;
    }
    raft_index last = raft_log_last(&r->log);
    r->log.stable = last; /* everything given at init is on disk */
    r->applied = in->applied > in->snap.index ? in->applied : in->snap.index;
    r->commit = in->hs.commit > r->applied ? in->hs.commit : r->applied;
    if (r->commit > last || !raft_conf_valid(&in->conf) ||
        (in->snap.index && !raft_conf_valid(&in->snap.conf)))
        return RAFT_ERR_INVALID;
    r->term = in->hs.term;
    r->vote = in->hs.vote;
    r->conf = in->conf;
    r->conf_index = r->applied; /* not known exactly: the safe upper bound */
    r->snap = in->snap;
    r->prev_hs = in->hs;
    return 0;
}

int raft_new(const raft_config *cfg, const raft_init_state *init, raft **out)
{
    if (!cfg || !out || cfg->id == 0 || (init && init->n_entries && !init->entries))
        return RAFT_ERR_INVALID;
    raft *r = calloc(1, sizeof *r);
    if (!r)
        return RAFT_ERR_NOMEM;
    r->cfg = *cfg;
    apply_defaults(&r->cfg);
    r->id = cfg->id;
    /* Mix the id in so nodes given the same seed still time out apart. */
    r->rng = cfg->seed ^ (cfg->id * 0xD6E8FEB86659FD93ull);
    r->asked_lo = UINT64_MAX; /* the empty span: nothing forwarded yet */
    raft_init_state empty;
    memset(&empty, 0, sizeof empty);
    int rc = load_state(r, init ? init : &empty);
    if (rc != 0) {
        raft_free(r);
        return rc;
    }
    raft_become_follower(r, r->term, 0);
    *out = r;
    return 0;
}

void raft_free(raft *r)
{
    if (!r)
        return;
    raft_log_free(&r->log);
    raft_outbox_drop(r, r->n_out, r->n_reads);
    free(r->out);
    free(r->reads);
    free(r->preads);
    free(r);
}

int raft_tick(raft *r)
{
    if (r->role == RAFT_LEADER)
        raft_tick_leader(r);
    else
        raft_tick_election(r);
    return 0;
}

/* Leader: takes one entry, subject to transfer and pending-conf rules. */
static int leader_accept(raft *r, const raft_entry *e)
{
    uint8_t type = e->type;
    const uint8_t *data = e->data;
    uint32_t len = e->len;
    if (r->transferee)
        return RAFT_ERR_TRANSFERRING;
    if (type == RAFT_ENTRY_CONF) {
        raft_conf_change cc;
        raft_conf trial = r->conf;
        if (!raft_conf_may_append(r))
            return RAFT_ERR_CONF_PENDING;
        if (raft_conf_change_decode(data, len, &cc) != 0)
            return RAFT_ERR_INVALID;
        int rc = raft_conf_apply(&trial, &cc);
        if (rc != 0)
            return rc;
        if (cc.op == RAFT_CONF_PROMOTE && !raft_learner_ready(r, cc.id))
            return RAFT_ERR_NOT_READY;
        /* Its own removal goes to the next leader: one that removed itself
         * would step down with the rest of the cluster perhaps not yet told
         * the removal committed, still counting it as a voter, and it may
         * hold the longest log — the others could then elect no one. The
         * proposer sends it again once the transfer is over. */
        if (cc.op == RAFT_CONF_REMOVE && cc.id == r->id &&
            raft_transfer_start(r, raft_best_successor(r)) == 0)
            return RAFT_ERR_TRANSFERRING;
    }
    int rc = raft_leader_append(r, e);
    if (rc == 0 && type == RAFT_ENTRY_CONF)
        r->pending_conf = raft_log_last(&r->log);
    return rc;
}

static void leader_replicate(raft *r)
{
    raft_maybe_commit(r);
    raft_broadcast_append(r);
}

/* Sends a request-style message (term 0) to the leader we follow. */
static int forward(raft *r, raft_msg *m)
{
    if (r->role != RAFT_FOLLOWER || r->leader == 0) {
        raft_msg_release(m);
        return RAFT_ERR_NO_LEADER;
    }
    m->to = r->leader;
    m->term = 0;
    return raft_send(r, m);
}

int raft_propose_entry(raft *r, uint8_t type, const uint8_t *data, uint32_t len, uint64_t tag)
{
    if (len && !data)
        return RAFT_ERR_INVALID;
    /* The checksum is made here, once: it travels with the entry. */
    raft_entry e = {.type = type, .len = len, .data = (uint8_t *)data,
                    .crc = raft_entry_sum(r, data, len)};
    if (r->role == RAFT_LEADER) {
        int rc = leader_accept(r, &e);
        if (rc == 0)
            leader_replicate(r);
        return rc;
    }
    raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_PROP, r->leader);
    m.context = tag;
    if (raft_msg_set_entries(&m, &e, 1) != 0)
        return RAFT_ERR_NOMEM;
    return forward(r, &m);
}

int raft_propose(raft *r, const uint8_t *data, uint32_t len)
{
    return raft_propose_entry(r, RAFT_ENTRY_NORMAL, data, len, 0);
}

int raft_propose_tagged(raft *r, const uint8_t *data, uint32_t len, uint64_t tag)
{
    return raft_propose_entry(r, RAFT_ENTRY_NORMAL, data, len, tag);
}

int raft_read_index(raft *r, uint64_t context)
{
    if (r->role == RAFT_LEADER)
        return raft_read_request(r, context, r->id);
    raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_READINDEX, r->leader);
    m.context = context;
    int rc = forward(r, &m);
    if (rc == RAFT_OK)
        raft_reads_note_asked(r, context);
    return rc;
}

int raft_transfer_leader(raft *r, raft_id to)
{
    if (to == 0)
        return RAFT_ERR_INVALID;
    if (r->role == RAFT_LEADER)
        return raft_transfer_start(r, to);
    raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_TRANSFER, r->leader);
    m.index = to;
    return forward(r, &m);
}

void raft_report_unreachable(raft *r, raft_id id)
{
    raft_progress *p = r->role == RAFT_LEADER ? raft_pr_get(r, id) : NULL;
    if (p && p->state == RAFT_PR_REPLICATE)
        raft_pr_become_probe(p);
}

void raft_report_snapshot(raft *r, raft_id id, bool ok)
{
    raft_progress *p = r->role == RAFT_LEADER ? raft_pr_get(r, id) : NULL;
    if (!p || p->state != RAFT_PR_SNAPSHOT)
        return;
    if (!ok)
        p->pending_snapshot = 0;
    raft_pr_become_probe(p);
    /* Wait for the follower's answer (or a heartbeat) before probing. */
    p->probe_sent = true;
}

/* The reasons a leader gives for a forwarded proposal it did not append:
 * for a conf change, the ones it would give its own client; for a write,
 * only a transfer underway (the proposer sends it again, to whoever leads
 * next). A lack of memory is none: the proposer's request then times
 * out. */
static bool refusal_reason(int rc, uint8_t type)
{
    if (rc == RAFT_ERR_TRANSFERRING)
        return true;
    return type == RAFT_ENTRY_CONF && (rc == RAFT_ERR_CONF_PENDING || rc == RAFT_ERR_NOT_READY ||
                                       rc == RAFT_ERR_INVALID || rc == RAFT_ERR_TOO_MANY);
}

/* Is e the conf change in flight itself (a PROP delivered twice)? Its
 * copy is then no reason to refuse it: it is in the log. */
static bool is_pending_conf(const raft *r, const raft_entry *e)
{
    const raft_entry *p = raft_log_at(&r->log, r->pending_conf);
    return p && p->type == RAFT_ENTRY_CONF && p->len == e->len &&
           (e->len == 0 || memcmp(p->data, e->data, e->len) == 0);
}

/* Tells the proposer why its forwarded proposal (tagged by the proposer:
 * PROP's context) was not appended, so that its client hears at once what
 * it would hear from the leader — or, during a transfer, so that it sends
 * the proposal again instead of waiting for its deadline. raftkv's
 * transport delivers a message at most once (a failed batch is dropped,
 * never sent again); a simulated network that duplicates one is told
 * nothing of the copy of the change in flight. */
static void refuse_prop(raft *r, const raft_msg *m, const raft_entry *e, int rc)
{
    if (m->context == 0 || !refusal_reason(rc, e->type) ||
        (rc == RAFT_ERR_CONF_PENDING && is_pending_conf(r, e)))
        return;
    raft_msg resp;
    raft_msg_init(r, &resp, RAFT_MSG_READINDEX_RESP, m->from);
    resp.flags = RAFT_FLAG_REFUSED;
    resp.reject = true;
    resp.context = m->context;
    resp.reject_hint = (raft_index)-rc;
    raft_send(r, &resp);
}

/* Forwarded proposals: each entry follows the leader's own rules; entries
 * that break them (a second conf change, a transfer underway) are dropped,
 * with a word to their proposer (refuse_prop). */
static void leader_step_prop(raft *r, const raft_msg *m)
{
    bool any = false;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        /* a proposal damaged on its way is dropped: its sender retries */
        if (r->cfg.checksum && r->cfg.checksum(e->data, e->len) != e->crc)
            continue;
        int rc = leader_accept(r, e);
        if (rc == 0)
            any = true;
        else
            refuse_prop(r, m, e, rc);
    }
    raft_progress *p = raft_pr_get(r, m->from);
    if (any && p) /* it waits to apply them: it is told their commit at once */
        p->proposed_to = raft_log_last(&r->log);
    if (any)
        leader_replicate(r);
}

static void step_leader(raft *r, const raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND_RESP: raft_handle_append_resp(r, m); break;
    case RAFT_MSG_HEARTBEAT_RESP: raft_handle_heartbeat_resp(r, m); break;
    case RAFT_MSG_PROP: leader_step_prop(r, m); break;
    case RAFT_MSG_READINDEX:
        if (raft_pr_get(r, m->from))
            raft_read_request(r, m->context, m->from);
        break;
    case RAFT_MSG_TRANSFER: raft_transfer_start(r, m->index); break;
    default: break; /* includes APPEND at our own term: impossible, ignore */
    }
}

/* A refusal counts only from the leader we forward to, with a code a
 * leader sends; when RAFT_MAX_REFUSALS wait already, the proposer's
 * request times out instead. */
static void take_refusal(raft *r, const raft_msg *m, raft_id leader, bool stale)
{
    /* reject_hint is the error negated; anything else is no reason */
    int code = m->reject_hint <= 64 ? -(int)m->reject_hint : 0;
    if (!m->reject || leader == 0 || m->from != leader || m->context == 0 ||
        !refusal_reason(code, RAFT_ENTRY_CONF) ||
        r->n_refused >= RAFT_MAX_REFUSALS)
        return;
    r->refused[r->n_refused++] = (raft_refusal){.tag = m->context, .code = code, .stale = stale};
}

/* A refusal from the leader of an earlier term: dropped as stale by the
 * term check, like any message, but still true (that leader did not
 * append the proposal), and for a conf change the only word its proposer
 * gets: conf changes are not proposed again on a leader change. Seen when
 * this node was the target of that leader's transfer and forwarded the
 * change just before it campaigned. */
static void take_stale_refusal(raft *r, const raft_msg *m)
{
    if (m->type == RAFT_MSG_READINDEX_RESP && (m->flags & RAFT_FLAG_REFUSED) &&
        m->term != 0 && m->term < r->term && m->term == r->last_leader_term)
        take_refusal(r, m, r->last_leader, true);
}

static void step_follower(raft *r, const raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAP:
        r->election_elapsed = 0;
        r->leader = m->from;
        if (m->type == RAFT_MSG_APPEND)
            raft_handle_append(r, m);
        else if (m->type == RAFT_MSG_HEARTBEAT)
            raft_handle_heartbeat(r, m);
        else
            raft_handle_snap(r, m);
        break;
    case RAFT_MSG_READINDEX_RESP:
        if (m->flags & RAFT_FLAG_REFUSED)
            take_refusal(r, m, r->leader, false);
        else
            raft_handle_readindex_resp(r, m);
        break;
    case RAFT_MSG_TIMEOUT_NOW: raft_handle_timeout_now(r, m); break;
    default: break; /* requests sent to a non-leader are dropped */
    }
}

static void step_candidate(raft *r, const raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAP:
        /* Someone won this term: follow it. */
        raft_become_follower(r, m->term, m->from);
        step_follower(r, m);
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP: raft_handle_vote_resp(r, m); break;
    default: break;
    }
}

/* Only members speak to us: voters and learners of the membership we
 * applied or of a change we hold unapplied. A node that does not find
 * itself in the membership it applied is still catching up as it joins (a
 * removed node stops): it follows whoever leads it, its peers being
 * authenticated by the transport, not here. A member that missed the
 * change adding the current leader lets that leader in once another member
 * names it (take_leader_hint); taking the change from the append that
 * carries it would let anyone claim membership by sending its own
 * addition. */
static bool sender_allowed(const raft *r, const raft_msg *m)
{
    if (raft_is_member(r, m->from))
        return true;
    if (!raft_conf_has(&r->conf, r->id) || (r->vouched && m->from == r->vouched))
        return m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
               m->type == RAFT_MSG_SNAP;
    return false;
}

/* A member that refuses our campaign may name its leader (election.c).
 * If our conf does not list it, we missed the change adding it, and its
 * appends, heartbeats and snapshots are let in (sender_allowed) until a
 * conf we apply lists it: else a member whose known peers have moved on would
 * refuse the cluster for good. Only a member's word counts, and a member
 * names only a leader its own conf lists, so no stranger names itself. */
static void take_leader_hint(raft *r, const raft_msg *m)
{
    bool refusal = (m->type == RAFT_MSG_VOTE_RESP || m->type == RAFT_MSG_PREVOTE_RESP) &&
                   m->reject && (m->flags & RAFT_FLAG_LEADER_HINT);
    if (refusal && raft_is_member(r, m->from) && m->context != 0 && m->context != r->id &&
        !raft_is_member(r, m->context))
        r->vouched = m->context;
}

static void refuse_stranger(raft *r, const raft_msg *m)
{
    if (m->type != RAFT_MSG_APPEND || m->term < r->term)
        return;
    raft_msg resp;
    raft_msg_init(r, &resp, RAFT_MSG_APPEND_RESP, m->from);
    resp.term = m->term;
    resp.reject = true;
    resp.index = m->index;
    resp.reject_hint = raft_log_last(&r->log) < m->index ? raft_log_last(&r->log) : m->index;
    raft_log_term(&r->log, resp.reject_hint, &resp.log_term);
    raft_send(r, &resp);
}

int raft_step(raft *r, const raft_msg *m)
{
    if (!r || !raft_msg_valid(m) || m->from == r->id || (m->to && m->to != r->id))
        return RAFT_ERR_INVALID;
    if (r->log_lost)
        return RAFT_ERR_LOG_LOST;
    if (!sender_allowed(r, m)) {
        refuse_stranger(r, m);
        return RAFT_ERR_INVALID;
    }
    take_leader_hint(r, m);
    take_stale_refusal(r, m);
    if (!raft_step_term(r, m))
        return 0;
    if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
        raft_handle_vote(r, m);
        return 0;
    }
    switch (r->role) {
    case RAFT_LEADER: step_leader(r, m); break;
    case RAFT_FOLLOWER: step_follower(r, m); break;
    default: step_candidate(r, m); break;
    }
    return r->log_lost ? RAFT_ERR_LOG_LOST : 0;
}
