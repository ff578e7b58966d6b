/* peer_order: steps each peer's pipelined batches in the order it sent
 * them. A leader keeps up to two requests in flight per follower
 * (transport/sender.c) and numbers them (Raftkv-Seq: epoch, seq from 1);
 * the listener's threads may hand them to the loop in another order, and
 * an append stepped before the one it follows is refused, which sends the
 * leader back to probing. So a batch that arrives ahead of a gap waits —
 * its connection stays suspended — until the gap fills, or HOLD_MS passes
 * (the missing request failed: Raft sends again what matters), or more
 * than HOLD_MAX batches wait. Unnumbered batches, a batch at or below the
 * next expected number (a retry, a late one) and the first of a new epoch
 * numbered 1 go at once.
 *
 * Owned by the node loop (no lock). Must never hold a batch without a
 * bound in time and count, and never lose one: every event added comes
 * back out of peer_order_take or peer_order_free. */
#ifndef RAFTKV_PEER_ORDER_H
#define RAFTKV_PEER_ORDER_H

#include "server/inbox.h"

#include <stdint.h>

#define PEER_ORDER_HOLD_MS 20
#define PEER_ORDER_HOLD_MAX 16
/* Senders ordered at most: a batch's sender id is whatever the peer wrote
 * (Raft refuses a non-member's messages only when it steps them), so
 * beyond this many ids a batch is stepped as it comes. */
#define PEER_ORDER_PEERS_MAX 64

typedef struct peer_seq peer_seq;

typedef struct {
    peer_seq *peers;
    size_t n_peers;
    event *ready, **ready_tail; /* to step at the next take */
    uint64_t held_total; /* batches that arrived ahead of an earlier one */
    uint64_t gaps_total; /* gaps given up on (HOLD_MS or HOLD_MAX) */
} peer_order;

/* Zero-initialised is empty. Takes ev (an EV_MSGS with has_seq). */
void peer_order_add(peer_order *o, event *ev, uint64_t now_ms);
/* The events to step now, in order (a list through ev->next), or NULL. */
event *peer_order_take(peer_order *o, uint64_t now_ms);
/* When the oldest held batch is given up on (0: none held). */
uint64_t peer_order_deadline(const peer_order *o);
/* Frees every held event (the loop is stopping). */
void peer_order_free(peer_order *o);

#endif
