/* failover: leader changes without failed writes (failover.c) — a
 * stopping leader hands over first, a member re-proposes what it forwarded
 * when the leader changes (exactly once: kv_once.c skips the second copy),
 * re-asks lost read rounds, and moves leadership on demand. */
#ifndef RAFTKV_FAILOVER_H
#define RAFTKV_FAILOVER_H

#include "server/node_int.h"

/* Each turn: a new leader seen since the last turn makes this member
 * propose again what it has not seen applied, and ask its reads again. */
void node_watch_leader(node *n);
/* Each turn while a stop is asked: a leader hands leadership to the most
 * caught-up voter and waits (at most two election timeouts) for that and
 * for its own writes in flight; then n->stop is set. */
void node_stop_turn(node *n, uint64_t now);
/* EV_MOVE: starts a transfer and waits for it (answered by node_move_turn). */
void node_handle_move(node *n, event *ev);
void node_move_turn(node *n, uint64_t now);

#endif
