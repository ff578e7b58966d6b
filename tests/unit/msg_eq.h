/* msg_eq: whether two Raft messages are the same, field by field and
 * entry by entry (data compared, not pointers) — for the tests that check
 * what crossed the wire (codec_test, transport_test). */
#ifndef RAFTKV_TEST_MSG_EQ_H
#define RAFTKV_TEST_MSG_EQ_H

#include "raft/raft.h"

#include <stdbool.h>
#include <string.h>

static inline bool entry_eq(const raft_entry *a, const raft_entry *b)
{
    return a->term == b->term && a->index == b->index && a->type == b->type &&
           a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static inline bool conf_eq(const raft_conf *a, const raft_conf *b)
{
    return a->n_voters == b->n_voters && a->n_learners == b->n_learners &&
           memcmp(a->voters, b->voters, a->n_voters * sizeof(raft_id)) == 0 &&
           memcmp(a->learners, b->learners, a->n_learners * sizeof(raft_id)) == 0;
}

static inline bool msg_eq(const raft_msg *a, const raft_msg *b)
{
    if (a->type != b->type || a->flags != b->flags || a->reject != b->reject ||
        a->from != b->from || a->to != b->to || a->term != b->term ||
        a->log_term != b->log_term || a->index != b->index || a->commit != b->commit ||
        a->reject_hint != b->reject_hint || a->context != b->context ||
        a->n_entries != b->n_entries || a->snapshot.index != b->snapshot.index ||
        a->snapshot.term != b->snapshot.term || !conf_eq(&a->snapshot.conf, &b->snapshot.conf))
        return false;
    for (uint32_t i = 0; i < a->n_entries; i++)
        if (!entry_eq(&a->entries[i], &b->entries[i]))
            return false;
    return true;
}

#endif
