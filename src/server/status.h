/* status: what the node publishes about itself (status.c), and the one way
 * it stops on a fatal error. Any file of the node may call these; they
 * call no other node file back. */
#ifndef RAFTKV_STATUS_H
#define RAFTKV_STATUS_H

#include "server/node_int.h"

/* Copies the loop's view (raft, kv, counters) into what node_get_info
 * returns; node thread only. */
void node_publish_info(node *n, uint64_t now);
/* Publishes the size of kv.db and of its pages in use (n->db_size too,
 * for the quota check). */
void node_update_db_size(node *n);
/* Fail-stop: logs what failed and exits the process with code (enum
 * node_exit) at once, before anything else is answered or acknowledged.
 * The files are left as a crash would leave them; the restart recovers
 * from what is durable and re-applies the log. */
_Noreturn void node_fatal(node *n, int code, const char *what);

#endif
