/* snapshot: installing a leader's snapshot and taking this node's own
 * (snapshot.c), both on the node loop. */
#ifndef RAFTKV_SNAPSHOT_H
#define RAFTKV_SNAPSHOT_H

#include "server/node_int.h"

/* A Ready's snapshot: installs the received file, restores kv from it and
 * rebuilds what derives from kv (peers, removed ids, leases, watchers).
 * Stops the node (node_fatal) if it cannot. */
void node_install_snapshot(node *n, const raft_snapshot_meta *meta);
/* Each Ready (and each tick while a copy runs): adopts a finished
 * background snapshot, or starts one when snapshot_count entries were
 * applied since the last, or entries holding SNAPSHOT_LOG_BYTES (64 MiB)
 * or a quarter of kv.db's size, whichever is more (snapshot.c). */
void node_maybe_snapshot(node *n);
/* Counts applied entries' bytes toward the next snapshot. */
void node_snapshot_count(node *n, const raft_entry *ents, size_t cnt);

#endif
