/* peer_order: a peer's numbered batches put back in order (peer_order.h). */
#include "server/peer_order.h"

#include <stdlib.h>

struct peer_seq {
    peer_seq *next;
    raft_id id;
    uint64_t epoch, expect; /* the next number to step in this epoch */
    event *held;            /* sorted by seq, all above expect */
    size_t n_held;
    uint64_t held_since;    /* when the oldest of them arrived */
};

static peer_seq *find_or_add(peer_order *o, raft_id id)
{
    for (peer_seq *p = o->peers; p; p = p->next)
        if (p->id == id)
            return p;
    peer_seq *p = o->n_peers < PEER_ORDER_PEERS_MAX ? calloc(1, sizeof *p) : NULL;
    if (!p)
        return NULL;
    o->n_peers++;
    p->id = id;
    p->next = o->peers;
    o->peers = p;
    return p;
}

/* Onto the list of events to step now. */
static void append(peer_order *o, event *ev)
{
    if (!o->ready_tail)
        o->ready_tail = &o->ready;
    ev->next = NULL;
    *o->ready_tail = ev;
    o->ready_tail = &ev->next;
}

static void hold(peer_seq *p, event *ev, uint64_t now)
{
    event **pp = &p->held;
    while (*pp && (*pp)->seq.seq <= ev->seq.seq)
        pp = &(*pp)->next;
    ev->next = *pp;
    *pp = ev;
    if (!p->n_held++)
        p->held_since = now;
}

/* The held batches that are next in line; all of them once given up on. */
static void release(peer_order *o, peer_seq *p, uint64_t now)
{
    bool give_up = p->n_held && (p->n_held > PEER_ORDER_HOLD_MAX ||
                                 now >= p->held_since + PEER_ORDER_HOLD_MS);
    if (give_up)
        o->gaps_total++;
    bool moved = false;
    while (p->held && (give_up || p->held->seq.seq <= p->expect)) {
        moved = true;
        event *ev = p->held;
        p->held = ev->next;
        p->n_held--;
        if (ev->seq.seq >= p->expect)
            p->expect = ev->seq.seq + 1;
        append(o, ev);
    }
    if (moved && p->n_held)
        p->held_since = now; /* what is left waits behind a new gap */
}

void peer_order_add(peer_order *o, event *ev, uint64_t now)
{
    raft_id from = ev->n ? ev->msgs[0].from : 0;
    peer_seq *p = find_or_add(o, from);
    if (!p) { /* too many senders, or no memory: stepped as it comes */
        append(o, ev);
        return;
    }
    if (ev->seq.epoch != p->epoch) { /* the sender started again */
        while (p->held) { /* what its old life sent goes first */
            event *h = p->held;
            p->held = h->next;
            append(o, h);
        }
        p->n_held = 0;
        p->epoch = ev->seq.epoch;
        p->expect = 1;
    }
    if (ev->seq.seq > p->expect) {
        o->held_total++;
        hold(p, ev, now);
        return;
    }
    if (ev->seq.seq == p->expect)
        p->expect++;
    append(o, ev);
    release(o, p, now);
}

event *peer_order_take(peer_order *o, uint64_t now)
{
    for (peer_seq *p = o->peers; p; p = p->next)
        if (p->n_held)
            release(o, p, now);
    event *out = o->ready;
    o->ready = NULL;
    o->ready_tail = &o->ready;
    return out;
}

uint64_t peer_order_deadline(const peer_order *o)
{
    uint64_t first = 0;
    for (const peer_seq *p = o->peers; p; p = p->next)
        if (p->n_held && (!first || p->held_since + PEER_ORDER_HOLD_MS < first))
            first = p->held_since + PEER_ORDER_HOLD_MS;
    return first;
}

void peer_order_free(peer_order *o)
{
    event *evs = peer_order_take(o, UINT64_MAX / 2);
    while (evs) {
        event *next = evs->next;
        event_free(evs);
        evs = next;
    }
    while (o->peers) {
        peer_seq *p = o->peers;
        o->peers = p->next;
        free(p);
    }
    o->n_peers = 0;
}
