/* peers: the node's side of the transport (peers.c) — starting it, and
 * keeping its peer list in step with the membership kv knows. */
#ifndef RAFTKV_PEERS_H
#define RAFTKV_PEERS_H

#include "server/node_int.h"

/* Starts the transport with the node's callbacks, then syncs its peers.
 * 0, or -1 (logged) if the peer listener cannot start. */
int node_start_transport(node *n);
/* Calls fn for every member's id and peer URL as kv knows them or, on a
 * node that has not applied any membership yet (an empty table), for
 * --cluster's (the id is the position); stops once fn returns false. -1
 * if the table cannot be read (node thread: a kv reader). */
typedef bool (*member_url_fn)(void *ud, uint64_t id, const char *url);
int node_each_member_url(node *n, member_url_fn fn, void *ud);
/* Points the transport at every member's peer URL as kv knows them; on a
 * node that has not applied any membership yet, at --cluster. -1 if the
 * members cannot be read or a peer not set (failpoint peers.sync). */
int node_sync_peers(node *n);

/* This node's hash of its key-value state at rev (a transport_hash_status);
 * any thread (reads through a kv reader). */
int node_hash(node *n, int64_t rev, transport_hash *out);

#endif
