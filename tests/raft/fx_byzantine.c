/* fx_byzantine: the hostile-input nemesis of the simulator. A random up
 * node is handed a message from an id that was never a member (90..99):
 * any type, with absurd fields (terms and indexes at and around 2^63,
 * term 0, a commit far beyond any log, huge snapshot indexes, a snapshot
 * conf shrunk to the receiver or naming the sender, conf entries that
 * remove members or add the sender, empty and garbage entries).
 *
 * Must never let such a message pass unchecked: after each one, the
 * receiver's term, role, commit index and last index must be unchanged
 * (it may answer, never obey); the usual invariants run after the step.
 */
#include "fx_int.h"

#include <stdio.h>
#include <string.h>


static uint64_t absurd(fx *f, uint64_t near)
{
    static const uint64_t marks[] = {0, 1, 2, (1ull << 63) - 1, 1ull << 63, UINT64_MAX,
                                     (1ull << 32), 1000000};
    switch (fx_rng_below(f, 4)) {
    case 0: return marks[fx_rng_below(f, sizeof marks / sizeof marks[0])];
    case 1: return near + fx_rng_below(f, 3);
    case 2: return near > 0 ? near - 1 : 0;
    default: return fx_rng_below(f, 1ull << 40);
    }
}

/* Up to two entries: garbage, empty, or a conf change naming the sender
 * or removing a member. data holds their bytes. */
static uint32_t hostile_entries(fx *f, raft_msg *m, raft_entry *es, uint8_t (*data)[32])
{
    uint32_t n = (uint32_t)fx_rng_below(f, 3);
    for (uint32_t i = 0; i < n; i++) {
        raft_entry *e = &es[i];
        memset(e, 0, sizeof *e);
        e->term = absurd(f, m->term);
        e->index = m->index + 1 + i;
        if (fx_rng_chance(f, 0.5)) {
            raft_conf_change cc = {.op = fx_rng_chance(f, 0.5) ? RAFT_CONF_ADD_VOTER : RAFT_CONF_REMOVE,
                                   .id = fx_rng_chance(f, 0.5) ? m->from : 1 + fx_rng_below(f, 3)};
            e->type = RAFT_ENTRY_CONF;
            e->len = (uint32_t)raft_conf_change_encode(&cc, data[i], sizeof data[i]);
        } else {
            e->type = RAFT_ENTRY_NORMAL;
            e->len = (uint32_t)fx_rng_below(f, 32);
            for (uint32_t b = 0; b < e->len; b++)
                data[i][b] = (uint8_t)fx_rng_below(f, 256);
        }
        e->data = e->len ? data[i] : NULL;
    }
    return n;
}

static void hostile_snapshot(fx *f, raft_msg *m, raft_id to)
{
    m->snapshot.index = absurd(f, m->index);
    m->snapshot.term = absurd(f, m->term);
    raft_conf *c = &m->snapshot.conf;
    c->n_voters = 1;
    c->voters[0] = fx_rng_chance(f, 0.5) ? to : m->from; /* shrink to us, or name itself */
    if (fx_rng_chance(f, 0.5))
        c->voters[c->n_voters++] = m->from == c->voters[0] ? to : m->from;
}

typedef struct {
    raft_term term;
    enum raft_role role;
    raft_index commit, last;
} view;

static view view_of(raft *r)
{
    return (view){raft_term_get(r), raft_role_get(r), raft_commit_index(r), raft_last_index(r)};
}

void fx_byzantine_inject(fx *f)
{
    fx_node *n = fx_node_get(f, 1 + fx_rng_below(f, FX_MAX_NODES));
    /* a node not yet in the membership it applied is a joiner, which
     * follows whoever leads it by design (raft.c sender_allowed) */
    if (!n || !n->up || !n->r || !raft_conf_has(raft_conf_get(n->r), n->id))
        return;
    raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = (uint8_t)(RAFT_MSG_APPEND + fx_rng_below(f, RAFT_MSG_TRANSFER));
    m.from = FX_BYZANTINE_FIRST_ID + fx_rng_below(f, 10);
    m.to = fx_rng_chance(f, 0.9) ? n->id : 0;
    view before = view_of(n->r);
    m.term = fx_rng_chance(f, 0.1) ? 0 : absurd(f, before.term);
    m.log_term = absurd(f, before.term);
    m.index = absurd(f, before.last);
    m.commit = absurd(f, before.last + 10);
    m.reject = fx_rng_chance(f, 0.3);
    m.reject_hint = absurd(f, before.last);
    m.context = fx_rng_below(f, 1ull << 62);
    raft_entry es[2];
    uint8_t data[2][32];
    if (m.type == RAFT_MSG_APPEND || m.type == RAFT_MSG_PROP) {
        m.n_entries = hostile_entries(f, &m, es, data);
        m.entries = m.n_entries ? es : NULL;
    }
    if (m.type == RAFT_MSG_SNAP)
        hostile_snapshot(f, &m, n->id);
    if (f->trace)
        fprintf(f->trace, "    byzantine %s %llu->%llu t=%llu i=%llu n=%u\n",
                raft_msg_type_name(m.type), (ull)m.from, (ull)m.to, (ull)m.term, (ull)m.index,
                m.n_entries);
    f->stats.byz_injected++;
    f->stats.byz_by_type[m.type]++;
    int rc = raft_step(n->r, &m);
    view after = view_of(n->r);
    bool same = before.term == after.term && before.role == after.role &&
                before.commit == after.commit && before.last == after.last;
    if (!same || rc == RAFT_ERR_LOG_LOST)
        fx_fail(f, "node %llu obeyed a %s from non-member %llu (term %llu->%llu, role %d->%d, "
                   "commit %llu->%llu, last %llu->%llu, rc %d)",
                (ull)n->id, raft_msg_type_name(m.type), (ull)m.from, (ull)before.term,
                (ull)after.term, before.role, after.role, (ull)before.commit,
                (ull)after.commit, (ull)before.last, (ull)after.last, rc);
    fx_node_process(f, n);
}
