/* requests: client proposals on the node loop (requests.c). membership.c
 * builds its conf-change requests with these; they call nothing back. */
#ifndef RAFTKV_REQUESTS_H
#define RAFTKV_REQUESTS_H

#include "server/node_int.h"

/* A pending request for ev's callback, with a fresh sequence number and
 * the request deadline; NULL if out of memory. */
pending *node_new_pending(node *n, event *ev);
/* Registers p as waiting and hands it to Raft; a request that finds no
 * leader stays pending, one Raft refuses is answered and freed. */
void node_propose_pending(node *n, pending *p);
/* EV_PROPOSE: wraps the command in an envelope and proposes it. */
void node_handle_propose(node *n, event *ev);
/* Each tick: proposes again what found no leader before. */
void node_retry_unproposed(node *n);
/* A conf change this node forwarded that the leader refused: answers its
 * request with the leader's reason, as the leader would have. */
void node_refused(node *n, const raft_refusal *rf);

#endif
