/* fx_disk: each node's emulated stable storage — hard state, snapshot
 * (meta and a copy of the state machine) and the persisted log. It holds
 * exactly what a Ready asked to persist, and survives fx_crash.
 *
 * Must never: hold anything a node has not been told to persist, or be
 * changed by anything but a Ready, a snapshot taken or installed.
 */
#include "fx_int.h"

#include <stdlib.h>
#include <string.h>

raft_index fx_disk_last(const fx_node *n)
{
    return n->snap.index + n->n_log;
}

/* Term of index i on n's disk; false when n does not have it. */
bool fx_disk_term(const fx_node *n, raft_index i, raft_term *t)
{
    if (i == n->snap.index) {
        *t = n->snap.term; /* 0 for i == 0 */
        return true;
    }
    if (i < n->snap.index || i > fx_disk_last(n))
        return false;
    *t = n->log[i - n->snap.index - 1].term;
    return true;
}

void fx_disk_save_hs(fx *f, fx_node *n, const raft_hard_state *hs)
{
    if (hs->term < n->hs.term)
        fx_fail(f, "node %llu persisted term %llu after term %llu", (ull)n->id,
                (ull)hs->term, (ull)n->hs.term);
    else if (hs->term == n->hs.term && n->hs.vote && hs->vote != n->hs.vote)
        fx_fail(f, "node %llu changed its vote in term %llu from %llu to %llu", (ull)n->id,
                (ull)hs->term, (ull)n->hs.vote, (ull)hs->vote);
    else if (hs->commit < n->hs.commit)
        fx_fail(f, "node %llu persisted commit %llu after commit %llu", (ull)n->id,
                (ull)hs->commit, (ull)n->hs.commit);
    n->hs = *hs;
}

static void disk_put(fx *f, fx_node *n, const raft_entry *e)
{
    if (e->index <= n->snap.index) {
        fx_fail(f, "node %llu asked to persist index %llu under its snapshot %llu",
                (ull)n->id, (ull)e->index, (ull)n->snap.index);
        return;
    }
    size_t k = (size_t)(e->index - n->snap.index - 1);
    if (k > n->n_log) {
        fx_fail(f, "node %llu asked to persist index %llu after a gap (log ends at %llu)",
                (ull)n->id, (ull)e->index, (ull)fx_disk_last(n));
        return;
    }
    /* The Ready's own hard state may already count the new entries as
     * committed, so judge against what was durable before it. */
    if (k < n->n_log && n->log[k].term != e->term && e->index <= n->durable_commit)
        fx_fail(f, "node %llu overwrote committed index %llu (term %llu -> %llu, commit %llu)",
                (ull)n->id, (ull)e->index, (ull)n->log[k].term, (ull)e->term,
                (ull)n->durable_commit);
    const fx_blob *b = fx_blob_of(f, e);
    if (!b || !fx_grow(f, &n->log, &n->cap_log, k + 1, sizeof *n->log))
        return;
    n->log[k] = (fx_slot){.term = e->term, .b = b};
    n->n_log = k + 1; /* stored entries past this one are replaced */
    raft_term prev = 0;
    fx_disk_term(n, e->index - 1, &prev);
    fx_check_log_matching(f, n, e->index, e->term, b, prev);
}

void fx_disk_append(fx *f, fx_node *n, const raft_entry *es, size_t count)
{
    if (count && !es) {
        fx_fail(f, "node %llu Ready has %zu entries and no array", (ull)n->id, count);
        return;
    }
    for (size_t i = 0; i < count && !f->failed; i++) {
        if (i && es[i].index != es[i - 1].index + 1) {
            fx_fail(f, "node %llu Ready entries not contiguous at %llu", (ull)n->id,
                    (ull)es[i].index);
            return;
        }
        disk_put(f, n, &es[i]);
    }
}

/* Records a snapshot and drops stored entries at or below its index. */
void fx_disk_set_snapshot(fx *f, fx_node *n, const raft_snapshot_meta *meta,
                          const fx_slot *data)
{
    fx_slot *copy = fx_slots_dup(f, data, (size_t)meta->index);
    if (!copy)
        return;
    raft_index drop = meta->index > n->snap.index ? meta->index - n->snap.index : 0;
    if (drop >= n->n_log) {
        n->n_log = 0;
    } else {
        memmove(n->log, n->log + drop, (n->n_log - (size_t)drop) * sizeof *n->log);
        n->n_log -= (size_t)drop;
    }
    free(n->snap_sm);
    n->snap_sm = copy;
    n->snap = *meta;
}
