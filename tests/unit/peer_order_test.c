/* peer_order_test: a peer's numbered batches are stepped in its order —
 * in order they pass at once; one ahead of a gap waits until the gap
 * fills, then both come out in order; a gap is given up on after
 * PEER_ORDER_HOLD_MS or beyond PEER_ORDER_HOLD_MAX held batches; a late
 * or repeated number passes at once; a new epoch starts again from 1 and
 * releases what its old life left held; two peers are ordered apart; and
 * free gives back every held event. */
#include "../test.h"
#include "server/peer_order.h"

#include <stdlib.h>

static event *batch(raft_id from, uint64_t epoch, uint64_t seq)
{
    event *ev = calloc(1, sizeof *ev);
    raft_msg *m = calloc(1, sizeof *m);
    if (!ev || !m) {
        fprintf(stderr, "FAIL out of memory\n");
        exit(1);
    }
    m->from = from;
    m->to = 9;
    ev->kind = EV_MSGS;
    ev->msgs = m;
    ev->n = 1;
    ev->has_seq = true;
    ev->seq.epoch = epoch;
    ev->seq.seq = seq;
    return ev;
}

/* Takes what is ready; writes its "from*1000+seq" list into out, returns
 * how many, and frees them. */
static size_t take(peer_order *o, uint64_t now, uint64_t *out, size_t max)
{
    size_t n = 0;
    event *evs = peer_order_take(o, now);
    while (evs) {
        event *next = evs->next;
        if (n < max)
            out[n] = evs->msgs[0].from * 1000 + evs->seq.seq;
        n++;
        event_free(evs);
        evs = next;
    }
    return n;
}

static void test_in_order_passes(void)
{
    peer_order o = {0};
    uint64_t got[8];
    for (uint64_t s = 1; s <= 3; s++)
        peer_order_add(&o, batch(2, 7, s), 100);
    CHECK(take(&o, 100, got, 8) == 3);
    CHECK(got[0] == 2001 && got[1] == 2002 && got[2] == 2003);
    CHECK(peer_order_deadline(&o) == 0 && o.held_total == 0);
    peer_order_free(&o);
}

static void test_ahead_of_gap_waits_for_it(void)
{
    peer_order o = {0};
    uint64_t got[8];
    peer_order_add(&o, batch(2, 7, 1), 100);
    CHECK(take(&o, 100, got, 8) == 1);
    peer_order_add(&o, batch(2, 7, 3), 101); /* 2 is still on its way */
    CHECK(take(&o, 101, got, 8) == 0);
    CHECK(peer_order_deadline(&o) == 101 + PEER_ORDER_HOLD_MS);
    CHECK(o.held_total == 1);
    peer_order_add(&o, batch(2, 7, 2), 102);
    CHECK(take(&o, 102, got, 8) == 2);
    CHECK(got[0] == 2002 && got[1] == 2003);
    CHECK(peer_order_deadline(&o) == 0 && o.gaps_total == 0);
    peer_order_add(&o, batch(2, 7, 4), 103); /* and on from there */
    CHECK(take(&o, 103, got, 8) == 1 && got[0] == 2004);
    peer_order_free(&o);
}

static void test_gap_given_up_after_hold_ms(void)
{
    peer_order o = {0};
    uint64_t got[8];
    peer_order_add(&o, batch(2, 7, 1), 100);
    peer_order_add(&o, batch(2, 7, 4), 100);
    peer_order_add(&o, batch(2, 7, 3), 101);
    CHECK(take(&o, 100, got, 8) == 1);
    CHECK(take(&o, 100 + PEER_ORDER_HOLD_MS - 1, got, 8) == 0);
    CHECK(take(&o, 100 + PEER_ORDER_HOLD_MS, got, 8) == 2);
    CHECK(got[0] == 2003 && got[1] == 2004); /* still in order */
    CHECK(o.gaps_total == 1);
    peer_order_add(&o, batch(2, 7, 2), 200); /* the lost one, late: at once */
    peer_order_add(&o, batch(2, 7, 5), 200); /* the next after the gap: at once */
    CHECK(take(&o, 200, got, 8) == 2 && got[0] == 2002 && got[1] == 2005);
    peer_order_free(&o);
}

static void test_gap_given_up_beyond_hold_max(void)
{
    peer_order o = {0};
    uint64_t got[64];
    for (uint64_t s = 2; s <= PEER_ORDER_HOLD_MAX + 2; s++)
        peer_order_add(&o, batch(2, 7, s), 100);
    CHECK(take(&o, 100, got, 64) == PEER_ORDER_HOLD_MAX + 1);
    CHECK(got[0] == 2002 && got[PEER_ORDER_HOLD_MAX] == 2000 + PEER_ORDER_HOLD_MAX + 2);
    CHECK(o.gaps_total == 1);
    peer_order_free(&o);
}

static void test_new_epoch_starts_again(void)
{
    peer_order o = {0};
    uint64_t got[8];
    peer_order_add(&o, batch(2, 7, 1), 100);
    peer_order_add(&o, batch(2, 7, 3), 100); /* held in epoch 7 */
    CHECK(take(&o, 100, got, 8) == 1);
    peer_order_add(&o, batch(2, 8, 2), 101); /* the sender restarted: waits for its 1 */
    CHECK(take(&o, 101, got, 8) == 1 && got[0] == 2003); /* the old life's, released */
    peer_order_add(&o, batch(2, 8, 1), 102);
    CHECK(take(&o, 102, got, 8) == 2 && got[0] == 2001 && got[1] == 2002);
    peer_order_free(&o);
}

static void test_peers_ordered_apart(void)
{
    peer_order o = {0};
    uint64_t got[8];
    peer_order_add(&o, batch(2, 7, 2), 100); /* 2 waits for its 1 */
    peer_order_add(&o, batch(3, 5, 1), 100); /* 3 does not wait for 2 */
    CHECK(take(&o, 100, got, 8) == 1 && got[0] == 3001);
    peer_order_add(&o, batch(2, 7, 1), 101);
    CHECK(take(&o, 101, got, 8) == 2 && got[0] == 2001 && got[1] == 2002);
    peer_order_free(&o);
}

/* Sender ids come from the peer: beyond PEER_ORDER_PEERS_MAX of them a
 * batch is not held (nothing grows for a peer that makes ids up), and the
 * senders already known are still ordered. */
static void test_sender_ids_bounded(void)
{
    peer_order o = {0};
    uint64_t got[4];
    for (raft_id id = 1; id <= PEER_ORDER_PEERS_MAX; id++) {
        peer_order_add(&o, batch(id, 7, 1), 100);
        CHECK(take(&o, 100, got, 4) == 1);
    }
    CHECK(o.n_peers == PEER_ORDER_PEERS_MAX);
    peer_order_add(&o, batch(PEER_ORDER_PEERS_MAX + 1, 7, 5), 100); /* ahead of a gap */
    CHECK(take(&o, 100, got, 4) == 1); /* not held */
    CHECK(o.n_peers == PEER_ORDER_PEERS_MAX && o.held_total == 0);
    peer_order_add(&o, batch(2, 7, 3), 101); /* a known sender still waits for its 2 */
    CHECK(take(&o, 101, got, 4) == 0 && o.held_total == 1);
    peer_order_free(&o);
    CHECK(o.n_peers == 0);
}

static void test_free_gives_back_held(void)
{
    peer_order o = {0};
    peer_order_add(&o, batch(2, 7, 5), 100);
    peer_order_add(&o, batch(3, 7, 9), 100);
    CHECK(peer_order_deadline(&o) != 0);
    peer_order_free(&o); /* ASan: nothing leaks */
    CHECK(o.peers == NULL && peer_order_take(&o, 100) == NULL);
}

int main(void)
{
    RUN(test_in_order_passes);
    RUN(test_ahead_of_gap_waits_for_it);
    RUN(test_gap_given_up_after_hold_ms);
    RUN(test_gap_given_up_beyond_hold_max);
    RUN(test_new_epoch_starts_again);
    RUN(test_peers_ordered_apart);
    RUN(test_sender_ids_bounded);
    RUN(test_free_gives_back_held);
    TEST_MAIN_END();
}
