/* apply: committed entries into kv, and their waiters answered (apply.c). */
#ifndef RAFTKV_APPLY_H
#define RAFTKV_APPLY_H

#include "server/node_int.h"

/* Applies ents (committed, in order) as one kv transaction, then answers
 * their waiters: with the result once the batch reached kv.db, else with
 * NODE_ERR_STOPPING. An unreadable entry is skipped, never fatal. */
void node_apply_committed(node *n, const raft_entry *ents, size_t cnt);

#endif
