/* membership.c: single-server membership changes — the conf change wire
 * format, applying a change to a conf, and what the core does when a conf
 * entry is applied (progress added/removed, a removed leader steps down),
 * and when a learner may be promoted.
 *
 * Must never: apply a change when its entry is appended or committed (only
 * when applied, so every node switches at the same log position), allow a
 * second change while one is unapplied, promote a learner that has not
 * caught up, or trust encoded bytes.
 */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

#define CC_HEADER 13 /* u8 op, u64 id, u32 ctx_len */

bool raft_conf_has(const raft_conf *conf, raft_id id)
{
    for (uint32_t i = 0; i < conf->n_voters && i < RAFT_MAX_MEMBERS; i++)
        if (conf->voters[i] == id)
            return true;
    for (uint32_t i = 0; i < conf->n_learners && i < RAFT_MAX_MEMBERS; i++)
        if (conf->learners[i] == id)
            return true;
    return false;
}

bool raft_conf_valid(const raft_conf *c)
{
    if (c->n_voters > RAFT_MAX_MEMBERS || c->n_learners > RAFT_MAX_MEMBERS ||
        c->n_voters + c->n_learners > RAFT_MAX_MEMBERS)
        return false;
    raft_conf seen;
    memset(&seen, 0, sizeof seen);
    for (uint32_t i = 0; i < c->n_voters + c->n_learners; i++) {
        raft_id id = i < c->n_voters ? c->voters[i] : c->learners[i - c->n_voters];
        if (id == 0 || raft_conf_has(&seen, id))
            return false;
        seen.voters[seen.n_voters++] = id;
    }
    return true;
}

/* Removes id from list[0..*n); true if it was there. */
static bool list_remove(raft_id *list, uint32_t *n, raft_id id)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (list[i] == id) {
            memmove(list + i, list + i + 1, (*n - i - 1) * sizeof *list);
            (*n)--;
            return true;
        }
    }
    return false;
}

int raft_conf_apply(raft_conf *conf, const raft_conf_change *cc)
{
    if (!conf || !cc || cc->id == 0 || !raft_conf_valid(conf))
        return RAFT_ERR_INVALID;
    bool full = conf->n_voters + conf->n_learners >= RAFT_MAX_MEMBERS;
    switch (cc->op) {
    case RAFT_CONF_ADD_VOTER:
    case RAFT_CONF_ADD_LEARNER:
        if (raft_conf_has(conf, cc->id))
            return RAFT_ERR_INVALID;
        if (full)
            return RAFT_ERR_TOO_MANY;
        if (cc->op == RAFT_CONF_ADD_VOTER)
            conf->voters[conf->n_voters++] = cc->id;
        else
            conf->learners[conf->n_learners++] = cc->id;
        return 0;
    case RAFT_CONF_REMOVE:
        if (list_remove(conf->voters, &conf->n_voters, cc->id) ||
            list_remove(conf->learners, &conf->n_learners, cc->id))
            return 0;
        return RAFT_ERR_INVALID;
    case RAFT_CONF_PROMOTE:
        if (!list_remove(conf->learners, &conf->n_learners, cc->id))
            return RAFT_ERR_INVALID;
        conf->voters[conf->n_voters++] = cc->id;
        return 0;
    default:
        return RAFT_ERR_INVALID;
    }
}

size_t raft_conf_change_size(const raft_conf_change *cc)
{
    return CC_HEADER + (size_t)cc->ctx_len;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

size_t raft_conf_change_encode(const raft_conf_change *cc, uint8_t *out, size_t cap)
{
    size_t need = raft_conf_change_size(cc);
    if (!out || cap < need || (cc->ctx_len && !cc->ctx))
        return 0;
    out[0] = cc->op;
    put_le(out + 1, cc->id, 8);
    put_le(out + 9, cc->ctx_len, 4);
    if (cc->ctx_len)
        memcpy(out + CC_HEADER, cc->ctx, cc->ctx_len);
    return need;
}

int raft_conf_change_decode(const uint8_t *data, size_t len, raft_conf_change *cc)
{
    if (!data || !cc || len < CC_HEADER)
        return RAFT_ERR_INVALID;
    uint8_t op = data[0];
    raft_id id = get_le(data + 1, 8);
    uint32_t ctx_len = (uint32_t)get_le(data + 9, 4);
    if (op < RAFT_CONF_ADD_VOTER || op > RAFT_CONF_PROMOTE || id == 0 ||
        (uint64_t)ctx_len != (uint64_t)(len - CC_HEADER))
        return RAFT_ERR_INVALID;
    cc->op = op;
    cc->id = id;
    cc->ctx_len = ctx_len;
    cc->ctx = ctx_len ? data + CC_HEADER : NULL;
    return 0;
}

bool raft_conf_entry_names(const raft_entry *e, raft_id id)
{
    raft_conf_change cc;
    return e && e->type == RAFT_ENTRY_CONF &&
           raft_conf_change_decode(e->data, e->len, &cc) == 0 && cc.id == id;
}

bool raft_is_member(const raft *r, raft_id id)
{
    if (raft_conf_has(&r->conf, id))
        return true;
    /* At most one change is unapplied at a time, but followers may hold a
     * few appended ones; this scan runs only for ids outside the conf. */
    raft_index last = raft_log_last(&r->log);
    for (raft_index i = r->applied + 1; i <= last; i++)
        if (raft_conf_entry_names(raft_log_at(&r->log, i), id))
            return true;
    return false;
}

bool raft_conf_may_append(const raft *r)
{
    return r->pending_conf <= r->applied;
}

/* May the leader promote learner id now? Only once the learner's log
 * reaches conf_index (the change that made the leader's conf; after a
 * restart the applied index, an upper bound), so the new voter knows
 * every member whose campaign it must answer (an empty log would refuse
 * them all as strangers), and 90 % of the committed log, etcd's rule, so
 * it does not start as a voter that cannot acknowledge for a long while.
 * Match is what the learner reported durable. The caller has already
 * checked that id is a learner. */
bool raft_learner_ready(raft *r, raft_id id)
{
    const raft_progress *p = raft_pr_get(r, id);
    return p && p->match >= r->conf_index && p->match >= r->commit - r->commit / 10;
}

/* The leader's bookkeeping once a change took effect. */
static void leader_on_change(raft *r, const raft_conf_change *cc)
{
    if (cc->op == RAFT_CONF_REMOVE) {
        if (cc->id == r->id) {
            raft_become_follower(r, r->term, 0);
            return;
        }
        raft_prs_remove(r, cc->id);
        if (r->transferee == cc->id)
            raft_transfer_abort(r);
    } else {
        raft_prs_add(r, cc->id); /* a promoted learner keeps its progress */
    }
    /* The quorum changed: entries may be committed now, and a new member
     * needs its first probe. */
    if (raft_maybe_commit(r))
        raft_broadcast_append(r);
    raft_progress *p = raft_pr_get(r, cc->id);
    if (p)
        raft_send_append(r, p, true);
}

void raft_apply_conf_entry(raft *r, const raft_entry *e)
{
    raft_conf_change cc;
    if (raft_conf_change_decode(e->data, e->len, &cc) != 0)
        return;
    if (raft_conf_apply(&r->conf, &cc) != 0)
        return; /* invalid changes are no-ops on every node alike */
    if (raft_conf_has(&r->conf, r->vouched))
        r->vouched = 0; /* the conf lists it now, and a removal will count */
    r->conf_index = e->index; /* snapshots before it would carry a stale conf */
    if (r->role == RAFT_LEADER)
        leader_on_change(r, &cc);
}

int raft_propose_conf(raft *r, const raft_conf_change *cc)
{
    if (!r || !cc || cc->op < RAFT_CONF_ADD_VOTER || cc->op > RAFT_CONF_PROMOTE ||
        cc->id == 0 || (cc->ctx_len && !cc->ctx))
        return RAFT_ERR_INVALID;
    size_t n = raft_conf_change_size(cc);
    if (n > UINT32_MAX)
        return RAFT_ERR_INVALID;
    uint8_t *buf = malloc(n);
    if (!buf)
        return RAFT_ERR_NOMEM;
    raft_conf_change_encode(cc, buf, n);
    int rc = raft_propose_entry(r, RAFT_ENTRY_CONF, buf, (uint32_t)n, cc->tag);
    free(buf);
    return rc;
}
