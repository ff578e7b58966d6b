/* status: what the node publishes about itself (status.c), and the one way
 * it stops on a fatal error. Any file of the node may call these; they
 * call no other node file back. */
#ifndef RAFTKV_STATUS_H
#define RAFTKV_STATUS_H

#include "server/node_int.h"

/* Copies the loop's view (raft, kv, counters) into what node_get_info
 * returns; node thread only. */
void node_publish_info(node *n, uint64_t now);
/* Publishes the size of kv.db (one stat). */
void node_update_db_size(node *n);
/* Logs what failed and stops the loop: the data must not be touched again
 * by a node that could not persist or apply. */
void node_fatal(node *n, const char *what);

#endif
