/* reads: linearizable read barriers on the node loop (reads.c). */
#ifndef RAFTKV_READS_H
#define RAFTKV_READS_H

#include "server/node_int.h"

/* EV_READ: queues a read waiter with the request deadline. */
void node_handle_read(node *n, event *ev);
/* Each turn: starts one ReadIndex round for the reads not yet asked, if
 * no round is out (asks a lost one again). */
void node_ask_read_index(node *n, uint64_t now);
/* A Ready's read state: confirms the reads its round covers. */
void node_confirm_reads(node *n, const raft_read_state *rs);
/* After apply: answers the confirmed reads whose index is applied. */
void node_answer_reads(node *n);

#endif
