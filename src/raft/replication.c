/* replication.c: moving the log from leader to followers — APPEND and its
 * answers, heartbeats, snapshots for followers behind the compaction point,
 * and the commit rule (quorum of voters, current-term entries only).
 *
 * Must never: commit an entry of an earlier term by counting replicas,
 * truncate a committed entry, or trust indexes in a message without
 * checking them against the log.
 */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

raft_progress *raft_pr_get(raft *r, raft_id id)
{
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

int raft_prs_add(raft *r, raft_id id)
{
    if (id == r->id || raft_pr_get(r, id))
        return 0;
    if (r->n_prs >= RAFT_MAX_MEMBERS)
        return RAFT_ERR_TOO_MANY;
    raft_progress *p = &r->prs[r->n_prs++];
    raft_pr_reset(p, id, raft_log_last(&r->log) + 1);
    /* A new member gets one election timeout before it counts as silent. */
    p->recent_active = true;
    return 0;
}

void raft_prs_remove(raft *r, raft_id id)
{
    for (uint32_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].id == id) {
            r->prs[i] = r->prs[r->n_prs - 1];
            r->n_prs--;
            return;
        }
    }
}

void raft_prs_reset(raft *r)
{
    r->n_prs = 0;
    for (uint32_t i = 0; i < r->conf.n_voters; i++)
        raft_prs_add(r, r->conf.voters[i]);
    for (uint32_t i = 0; i < r->conf.n_learners; i++)
        raft_prs_add(r, r->conf.learners[i]);
    for (uint32_t i = 0; i < r->n_prs; i++)
        r->prs[i].recent_active = false;
}

static bool send_snapshot(raft *r, raft_progress *p)
{
    if (r->snap.index == 0)
        return false; /* cannot happen: compaction always records a snapshot */
    raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_SNAP, p->id);
    m.snapshot = r->snap;
    raft_pr_become_snapshot(p, r->snap.index);
    raft_send(r, &m);
    return true;
}

bool raft_send_append(raft *r, raft_progress *p, bool allow_empty)
{
    if (raft_pr_paused(p, r->cfg.max_inflight))
        return false;
    raft_index prev = p->next - 1;
    raft_term prev_term;
    if (raft_log_term(&r->log, prev, &prev_term) != 0) {
        if (prev > raft_log_last(&r->log)) {
            p->next = raft_log_last(&r->log) + 1; /* never probe past our end */
            return false;
        }
        return send_snapshot(r, p);
    }
    size_t n = raft_log_span(&r->log, p->next, r->cfg.max_msg_bytes);
    if (n == 0 && !allow_empty)
        return false;
    raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_APPEND, p->id);
    m.index = prev;
    m.log_term = prev_term;
    m.commit = p->commit_told = r->commit;
    /* The span lies inside the log, whose entries are contiguous. */
    if (raft_msg_set_entries(&m, raft_log_at(&r->log, p->next), (uint32_t)n) != 0)
        return false;
    if (n > 0 || p->state == RAFT_PR_PROBE)
        raft_pr_sent(p, prev + n);
    raft_send(r, &m);
    return n > 0;
}

/* A follower could use commits up to its match; one that cannot take an
 * APPEND now (paused) hears it with the next one. */
static bool commit_untold(const raft *r, const raft_progress *p)
{
    raft_index usable = p->match < r->commit ? p->match : r->commit;
    return usable > p->commit_told && !raft_pr_paused(p, r->cfg.max_inflight);
}

/* defer_commit_notice: a follower whose forwarded proposals are now
 * committed has clients waiting for it to apply them; it is told at once,
 * the others with the next APPEND or raft_send_commit. */
static void tell_proposers(raft *r)
{
    for (uint32_t i = 0; i < r->n_prs; i++) {
        raft_progress *p = &r->prs[i];
        if (!p->proposed_to || p->proposed_to > r->commit)
            continue;
        p->proposed_to = 0;
        if (commit_untold(r, p))
            raft_send_append(r, p, true);
    }
}

void raft_broadcast_append(raft *r)
{
    for (uint32_t i = 0; i < r->n_prs; i++)
        raft_send_append(r, &r->prs[i], true);
}


bool raft_commit_untold(const raft *r)
{
    if (r->role != RAFT_LEADER)
        return false;
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (commit_untold(r, &r->prs[i]))
            return true;
    return false;
}

void raft_send_commit(raft *r)
{
    if (r->role != RAFT_LEADER)
        return;
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (commit_untold(r, &r->prs[i]))
            raft_send_append(r, &r->prs[i], true);
}

void raft_send_heartbeat(raft *r, raft_progress *p)
{
    raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_HEARTBEAT, p->id);
    /* Only what the follower provably shares with us may be committed. */
    m.commit = p->commit_told = p->match < r->commit ? p->match : r->commit;
    m.context = r->read_seq;
    raft_send(r, &m);
}

void raft_broadcast_heartbeat(raft *r)
{
    for (uint32_t i = 0; i < r->n_prs; i++)
        raft_send_heartbeat(r, &r->prs[i]);
}

bool raft_committed_in_term(const raft *r)
{
    raft_term t;
    return raft_log_term(&r->log, r->commit, &t) == 0 && t == r->term;
}

static void raft_commit_to(raft *r, raft_index c)
{
    raft_index last = raft_log_last(&r->log);
    if (c > last)
        c = last;
    if (c > r->commit)
        r->commit = c;
}

static int cmp_desc(const void *a, const void *b)
{
    raft_index x = *(const raft_index *)a, y = *(const raft_index *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

bool raft_maybe_commit(raft *r)
{
    raft_index idx[RAFT_MAX_MEMBERS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->conf.n_voters && n < RAFT_MAX_MEMBERS; i++) {
        raft_id id = r->conf.voters[i];
        raft_progress *p = raft_pr_get(r, id);
        idx[n++] = id == r->id ? raft_log_last(&r->log) : p ? p->match : 0;
    }
    if (n == 0)
        return false;
    qsort(idx, n, sizeof idx[0], cmp_desc);
    raft_index mci = idx[raft_quorum(r) - 1];
    raft_term t;
    /* Figure 8: only an entry of our own term is committed by counting. */
    if (mci <= r->commit || raft_log_term(&r->log, mci, &t) != 0 || t != r->term)
        return false;
    r->commit = mci;
    raft_reads_on_commit(r);
    return true;
}

uint32_t raft_entry_sum(const raft *r, const uint8_t *data, uint32_t len)
{
    return r->cfg.checksum ? r->cfg.checksum(data, len) : 0;
}

int raft_leader_append(raft *r, const raft_entry *proto)
{
    raft_entry e = *proto;
    e.term = r->term;
    e.index = raft_log_last(&r->log) + 1;
    return raft_log_append(&r->log, &e);
}

static void respond_append(raft *r, const raft_msg *m, raft_index index)
{
    raft_msg resp;
    raft_msg_init(r, &resp, RAFT_MSG_APPEND_RESP, m->from);
    resp.index = index;
    raft_send(r, &resp);
}

/* Appends what is new in m after its prev entry; false if refused. */
static bool append_new(raft *r, const raft_msg *m)
{
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        if (raft_log_match(&r->log, e->index, e->term))
            continue;
        if (e->index <= r->commit)
            return false; /* a leader contradicting committed state: forged */
        raft_log_truncate(&r->log, e->index);
        for (uint32_t j = i; j < m->n_entries; j++)
            if (raft_log_append(&r->log, &m->entries[j]) != 0)
                return false;
        return true;
    }
    return true;
}

void raft_handle_append(raft *r, const raft_msg *m)
{
    if (m->index < r->commit) {
        respond_append(r, m, r->commit);
        return;
    }
    if (!raft_log_match(&r->log, m->index, m->log_term)) {
        raft_index hint = raft_log_conflict_hint(&r->log, m->index, m->log_term);
        raft_msg resp;
        raft_msg_init(r, &resp, RAFT_MSG_APPEND_RESP, m->from);
        resp.reject = true;
        resp.index = m->index;
        resp.reject_hint = hint;
        raft_log_term(&r->log, hint, &resp.log_term);
        raft_send(r, &resp);
        return;
    }
    if (!append_new(r, m))
        return; /* dropped: the leader retries */
    raft_index last_new = m->index + m->n_entries;
    raft_commit_to(r, m->commit < last_new ? m->commit : last_new);
    respond_append(r, m, last_new);
}

static void handle_reject(raft *r, raft_progress *p, const raft_msg *m)
{
    raft_index hint = m->reject_hint;
    /* The follower told us the term at its hint: skip our whole run of
     * later-term entries at once instead of one index per round trip. */
    if (m->log_term > 0)
        hint = raft_log_conflict_hint(&r->log, hint, m->log_term);
    if (!raft_pr_decr(p, m->index, hint))
        return;
    if (p->state == RAFT_PR_REPLICATE)
        raft_pr_become_probe(p);
    raft_send_append(r, p, true);
}

void raft_handle_append_resp(raft *r, const raft_msg *m)
{
    raft_progress *p = raft_pr_get(r, m->from);
    if (!p)
        return;
    p->recent_active = true;
    p->lapsed = false;
    if (m->reject) {
        handle_reject(r, p, m);
        return;
    }
    if (m->index > raft_log_last(&r->log))
        return;
    bool was_paused = raft_pr_paused(p, r->cfg.max_inflight);
    if (!raft_pr_update(p, m->index)) {
        /* an answer to the probe a transfer sent a caught-up target */
        raft_transfer_on_progress(r, p);
        return;
    }
    if (p->state == RAFT_PR_PROBE)
        raft_pr_become_replicate(p);
    else if (p->state == RAFT_PR_SNAPSHOT && p->match >= p->pending_snapshot)
        raft_pr_become_replicate(p);
    else if (p->state == RAFT_PR_REPLICATE)
        raft_pr_free_to(p, m->index);
    if (raft_maybe_commit(r)) {
        if (r->cfg.defer_commit_notice)
            tell_proposers(r);
        else
            raft_broadcast_append(r);
    } else if (was_paused) {
        raft_send_append(r, p, true);
    }
    while (raft_send_append(r, p, false)) {
    }
    raft_transfer_on_progress(r, p);
}

void raft_handle_heartbeat(raft *r, const raft_msg *m)
{
    /* The leader sends at most what we acknowledged as durable: a commit
     * beyond our last index means our disk lost entries (rolled back,
     * truncated). Going on could lose committed writes: stop. */
    if (m->commit > raft_log_last(&r->log)) {
        r->log_lost = true;
        r->lost_at = m->commit;
        return;
    }
    raft_commit_to(r, m->commit);
    raft_msg resp;
    raft_msg_init(r, &resp, RAFT_MSG_HEARTBEAT_RESP, m->from);
    resp.context = m->context;
    raft_send(r, &resp);
}

void raft_handle_heartbeat_resp(raft *r, const raft_msg *m)
{
    raft_progress *p = raft_pr_get(r, m->from);
    if (!p)
        return;
    p->recent_active = true;
    p->lapsed = false;
    if (p->state == RAFT_PR_PROBE)
        p->probe_sent = false;
    else if (p->state == RAFT_PR_REPLICATE && p->infl_count >= r->cfg.max_inflight)
        raft_pr_free_first(p);
    if (p->match < raft_log_last(&r->log))
        raft_send_append(r, p, true);
    if (m->context > p->read_ack && raft_is_voter(r, p->id)) {
        p->read_ack = m->context;
        p->read_ack_at = ++r->read_ack_clock;
    }
    raft_reads_check(r);
}

void raft_handle_snap(raft *r, const raft_msg *m)
{
    const raft_snapshot_meta *s = &m->snapshot;
    if (s->index == 0 || !raft_conf_valid(&s->conf))
        return;
    if (s->index <= r->commit) {
        respond_append(r, m, r->commit);
        return;
    }
    if (raft_log_match(&r->log, s->index, s->term)) {
        /* We hold that entry already: the snapshot only tells us it is
         * committed. */
        raft_commit_to(r, s->index);
        respond_append(r, m, s->index);
        return;
    }
    raft_log_reset(&r->log, s->index, s->term);
    r->commit = s->index;
    r->snap = *s;
    r->snap_pending = true;
    r->conf = s->conf;
    if (raft_conf_has(&r->conf, r->vouched))
        r->vouched = 0;
    r->conf_index = s->index;
    respond_append(r, m, s->index);
}
