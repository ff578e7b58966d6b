/* log.c: the in-memory Raft log — entries after the compaction point, with
 * the compaction point's index and term kept so matching still works there.
 *
 * Must never: decide anything about Raft (who may append or truncate is the
 * caller's business) or touch stable storage. Indexes from the caller are
 * range-checked; nothing here reads outside ents[0..n).
 */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

void raft_log_init(raft_log *l, raft_index offset, raft_term offset_term)
{
    memset(l, 0, sizeof *l);
    l->offset = offset;
    l->offset_term = offset_term;
    l->stable = offset;
}

static void free_range(raft_log *l, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        raft_entry_free(&l->ents[i]);
}

void raft_log_free(raft_log *l)
{
    free_range(l, 0, l->n);
    free(l->ents);
    l->ents = NULL;
    l->n = l->cap = 0;
}

raft_index raft_log_last(const raft_log *l)
{
    return l->offset + l->n;
}

raft_term raft_log_last_term(const raft_log *l)
{
    return l->n ? l->ents[l->n - 1].term : l->offset_term;
}

int raft_log_term(const raft_log *l, raft_index i, raft_term *t)
{
    if (i == l->offset) {
        *t = l->offset_term;
        return 0;
    }
    if (i < l->offset || i > raft_log_last(l))
        return -1;
    *t = l->ents[i - l->offset - 1].term;
    return 0;
}

bool raft_log_match(const raft_log *l, raft_index i, raft_term t)
{
    raft_term have;
    return raft_log_term(l, i, &have) == 0 && have == t;
}

const raft_entry *raft_log_at(const raft_log *l, raft_index i)
{
    if (i <= l->offset || i > raft_log_last(l))
        return NULL;
    return &l->ents[i - l->offset - 1];
}

int raft_log_append(raft_log *l, const raft_entry *e)
{
    if (e->index != raft_log_last(l) + 1)
        return RAFT_ERR_INVALID;
    if (raft_grow((void **)&l->ents, &l->cap, l->n, sizeof *l->ents) != 0)
        return RAFT_ERR_NOMEM;
    int rc = raft_entry_copy(&l->ents[l->n], e);
    if (rc == 0)
        l->n++;
    return rc;
}

void raft_log_truncate(raft_log *l, raft_index from)
{
    if (from <= l->offset || from > raft_log_last(l))
        return;
    size_t keep = (size_t)(from - l->offset - 1);
    free_range(l, keep, l->n);
    l->n = keep;
    /* A rewritten suffix must be handed out (and persisted) again. */
    if (l->stable >= from)
        l->stable = from - 1;
}

void raft_log_compact(raft_log *l, raft_index to)
{
    if (to <= l->offset || to > raft_log_last(l))
        return;
    size_t drop = (size_t)(to - l->offset);
    raft_term t = l->ents[drop - 1].term;
    free_range(l, 0, drop);
    memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof *l->ents);
    l->n -= drop;
    l->offset = to;
    l->offset_term = t;
    if (l->stable < to)
        l->stable = to;
}

void raft_log_reset(raft_log *l, raft_index offset, raft_term offset_term)
{
    free_range(l, 0, l->n);
    l->n = 0;
    l->offset = offset;
    l->offset_term = offset_term;
    l->stable = offset;
}

raft_index raft_log_conflict_hint(const raft_log *l, raft_index i, raft_term t)
{
    if (i > raft_log_last(l))
        i = raft_log_last(l);
    while (i > l->offset && l->ents[i - l->offset - 1].term > t)
        i--;
    return i;
}

size_t raft_log_span(const raft_log *l, raft_index lo, uint64_t max_bytes)
{
    if (lo <= l->offset || lo > raft_log_last(l))
        return 0;
    size_t start = (size_t)(lo - l->offset - 1), n = 0;
    uint64_t bytes = 0;
    while (start + n < l->n) {
        bytes += l->ents[start + n].len + 32;
        if (n > 0 && max_bytes && bytes > max_bytes)
            break;
        n++;
    }
    return n;
}

bool raft_log_up_to_date(const raft_log *l, raft_index idx, raft_term t)
{
    raft_term lt = raft_log_last_term(l);
    return t > lt || (t == lt && idx >= raft_log_last(l));
}
