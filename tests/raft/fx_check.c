/* fx_check: the invariant checker — election safety, log matching,
 * leader completeness, state-machine safety, and after each step that
 * nothing a node acted on lives only in its memory. Also the test-only
 * hooks that feed it fabricated observations.
 *
 * Must never: trust what the core emits, change any node or the network,
 * or stop at anything but the first violation (kept in f->err).
 */
#include "fx_int.h"

#include <stdlib.h>
#include <string.h>

/* State-machine safety: index `i` must apply the same (term, payload) on
 * every node, whether through an entry or a snapshot. */
void fx_check_commit(fx *f, fx_node *n, raft_index i, fx_slot s)
{
    if (!fx_grow(f, &f->committed, &f->cap_committed, i, sizeof *f->committed))
        return;
    fx_slot *c = &f->committed[i - 1];
    if (!c->b) {
        *c = s;
        if (i > f->n_committed)
            f->n_committed = i;
        return;
    }
    if (c->b != s.b || c->term != s.term)
        fx_fail(f, "state machine safety: node %llu applied index %llu as (term %llu, %s) "
                   "but it was applied elsewhere as (term %llu, %s)",
                (ull)n->id, (ull)i, (ull)s.term, fx_blob_text(s.b), (ull)c->term, fx_blob_text(c->b));
}

/* Log matching, incrementally: an (index, term) pair fixes the payload and
 * the previous entry's term; by induction it fixes the whole prefix. */
void fx_check_log_matching(fx *f, fx_node *n, raft_index i, raft_term term,
                           const fx_blob *b, raft_term prev_term)
{
    if (!fx_grow(f, &f->lm, &f->cap_lm, i, sizeof *f->lm))
        return;
    fx_lm_slot *s = &f->lm[i - 1];
    for (size_t k = 0; k < s->n; k++) {
        fx_lm_ent *w = &s->v[k];
        if (w->term != term)
            continue;
        if (w->b != b || w->prev_term != prev_term)
            fx_fail(f, "log matching: node %llu has (index %llu, term %llu) = (%s, prev term %llu) "
                       "but another log had (%s, prev term %llu)",
                    (ull)n->id, (ull)i, (ull)term, fx_blob_text(b), (ull)prev_term,
                    fx_blob_text(w->b), (ull)w->prev_term);
        return;
    }
    if (!fx_grow(f, &s->v, &s->cap, s->n + 1, sizeof *s->v))
        return;
    s->v[s->n++] = (fx_lm_ent){.term = term, .prev_term = prev_term, .b = b};
}

static void check_leader_unique(fx *f, raft_id id, raft_term term)
{
    if (!fx_grow(f, &f->leaders, &f->cap_leaders, (size_t)term + 1, sizeof *f->leaders))
        return;
    if (!f->leaders[term])
        f->leaders[term] = id;
    else if (f->leaders[term] != id)
        fx_fail(f, "election safety: nodes %llu and %llu both led term %llu",
                (ull)f->leaders[term], (ull)id, (ull)term);
}

/* Leader completeness: a new leader holds every entry applied anywhere
 * before it was elected (entries under its snapshot are covered by
 * state-machine safety of that snapshot). */
static void check_leader_complete(fx *f, fx_node *n, raft_term term)
{
    for (raft_index i = n->snap.index + 1; i <= f->n_committed && !f->failed; i++) {
        const fx_slot *c = &f->committed[i - 1];
        raft_term t;
        if (!c->b)
            continue;
        if (!fx_disk_term(n, i, &t) || t != c->term)
            fx_fail(f, "leader completeness: node %llu leads term %llu without committed "
                       "index %llu (term %llu); its log ends at %llu",
                    (ull)n->id, (ull)term, (ull)i, (ull)c->term, (ull)fx_disk_last(n));
    }
}

void fx_observe_leader(fx *f, fx_node *n)
{
    if (!n->up || raft_role_get(n->r) != RAFT_LEADER)
        return;
    raft_term term = raft_term_get(n->r);
    check_leader_unique(f, n->id, term);
    if (n->leader_checked != term) {
        n->leader_checked = term;
        if (f->trace)
            fprintf(f->trace, "    node %llu is leader of term %llu\n", (ull)n->id, (ull)term);
        check_leader_complete(f, n, term);
    }
}

static bool ids_have(const raft_id *ids, uint32_t n, raft_id id)
{
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static bool conf_has_all(const raft_conf *a, const raft_conf *b)
{
    for (uint32_t i = 0; i < a->n_voters; i++)
        if (!ids_have(b->voters, b->n_voters, a->voters[i]))
            return false;
    for (uint32_t i = 0; i < a->n_learners; i++)
        if (!ids_have(b->learners, b->n_learners, a->learners[i]))
            return false;
    return true;
}

bool fx_conf_same(const raft_conf *a, const raft_conf *b)
{
    return a->n_voters == b->n_voters && a->n_learners == b->n_learners &&
           conf_has_all(a, b);
}

bool fx_conf_step(raft_conf *c, const fx_blob *b)
{
    raft_conf_change cc;
    if (b->type != RAFT_ENTRY_CONF)
        return true;
    if (raft_conf_change_decode(b->data, b->len, &cc))
        return false;
    raft_conf_apply(c, &cc); /* an invalid change leaves c, as in the core */
    return true;
}

bool fx_conf_at(fx *f, const fx_node *n, const fx_slot *data, raft_index count,
                raft_conf *out)
{
    *out = count ? f->boot : n->boot_conf;
    for (raft_index i = 0; i < count; i++)
        if (!fx_conf_step(out, data[i].b))
            return false;
    return true;
}

/* What a running node acted on must be durable and its membership must be
 * the one its applied entries make. A parked leader (fsync unfinished) is
 * judged when its Ready completes. */
static void check_node_settled(fx *f, fx_node *n)
{
    raft_id id = n->id;
    if (n->parked) {
        if (raft_role_get(n->r) != RAFT_LEADER)
            fx_fail(f, "node %llu is parked mid-fsync but is no leader", (ull)id);
        return;
    }
    if (raft_term_get(n->r) != n->hs.term)
        fx_fail(f, "node %llu is in term %llu but persisted term %llu", (ull)id,
                (ull)raft_term_get(n->r), (ull)n->hs.term);
    else if (raft_applied_index(n->r) != n->applied)
        fx_fail(f, "node %llu: core applied %llu, state machine applied %llu", (ull)id,
                (ull)raft_applied_index(n->r), (ull)n->applied);
    else if (raft_commit_index(n->r) > fx_disk_last(n))
        fx_fail(f, "node %llu commit %llu beyond its persisted log %llu", (ull)id,
                (ull)raft_commit_index(n->r), (ull)fx_disk_last(n));
    else if (!fx_conf_same(raft_conf_get(n->r), &n->sm_conf))
        fx_fail(f, "membership: node %llu's core conf (%u voters, %u learners) is not the "
                   "one its entries applied to %llu make (%u voters, %u learners)",
                (ull)id, raft_conf_get(n->r)->n_voters, raft_conf_get(n->r)->n_learners,
                (ull)n->applied, n->sm_conf.n_voters, n->sm_conf.n_learners);
}

int fx_check(fx *f)
{
    for (raft_id id = 1; id <= FX_MAX_NODES && !f->failed; id++) {
        fx_node *n = fx_node_get(f, id);
        if (n && n->up)
            check_node_settled(f, n);
    }
    return f->failed ? -1 : 0;
}

void fx_inject_apply(fx *f, raft_id id, raft_index index, raft_term term, const char *data)
{
    fx_node *n = fx_node_get(f, id);
    const fx_blob *b = fx_blob_intern(f, RAFT_ENTRY_NORMAL, (const uint8_t *)data,
                                   (uint32_t)strlen(data));
    if (n && b && index)
        fx_check_commit(f, n, index, (fx_slot){.term = term, .b = b});
}

void fx_inject_leader(fx *f, raft_id id, raft_term term)
{
    check_leader_unique(f, id, term);
}

void fx_inject_entry(fx *f, raft_id id, raft_index index, raft_term term, const char *data)
{
    fx_node *n = fx_node_get(f, id);
    const fx_blob *b = fx_blob_intern(f, RAFT_ENTRY_NORMAL, (const uint8_t *)data,
                                   (uint32_t)strlen(data));
    raft_term prev = 0;
    if (!n || !b || !index)
        return;
    fx_disk_term(n, index - 1, &prev);
    fx_check_log_matching(f, n, index, term, b, prev);
}
