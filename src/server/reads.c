/* reads: read barriers — one ReadIndex round for every read that arrived
 * since the last, and each read answered once this node has applied up to
 * the index its round confirmed. Must never answer a read before that
 * index is applied, and never let a round asked earlier (even by this
 * node's previous life: contexts grow from a clock) confirm a later read. */
#include "server/reads.h"

#include <stdlib.h>

void node_handle_read(node *n, event *ev)
{
    read_waiter *rw = calloc(1, sizeof *rw);
    if (!rw) {
        event_fail(ev, NODE_ERR_INTERNAL);
        return;
    }
    rw->deadline = now_ms() + n->request_timeout_ms;
    rw->cb = ev->dcb;
    rw->ud = ev->ud;
    rw->next = n->w.reads;
    n->w.reads = rw;
    n->reads_total++;
}

void node_ask_read_index(node *n, uint64_t now)
{
    bool need = false, in_flight = false;
    for (read_waiter *rw = n->w.reads; rw; rw = rw->next) {
        /* a round whose answer was lost is asked again */
        if (!rw->confirmed && rw->ctx && now - rw->asked_ms > 2 * n->cfg->election_ms / 3 + 50)
            rw->ctx = 0;
        need |= !rw->confirmed && rw->ctx == 0;
        in_flight |= !rw->confirmed && rw->ctx != 0;
    }
    /* One round at a time: reads that arrive while a round is out wait
     * for its answer and then share the next one. Starting a round per
     * loop turn instead cost a heartbeat to every peer, and two thread
     * wake-ups on each, for every handful of reads. */
    if (!need || in_flight)
        return;
    uint64_t ctx = ++n->next_read_ctx;
    if (raft_read_index(n->r, ctx) != RAFT_OK)
        return; /* no leader yet: ask again next turn, until the deadline */
    n->read_rounds_total++;
    for (read_waiter *rw = n->w.reads; rw; rw = rw->next) {
        if (!rw->confirmed && rw->ctx == 0) {
            rw->ctx = ctx;
            rw->asked_ms = now;
        }
    }
}

/* A read state for ctx confirms every read asked at or before ctx: they
 * all arrived before the leader fixed that read index. */
void node_confirm_reads(node *n, const raft_read_state *rs)
{
    for (read_waiter *rw = n->w.reads; rw; rw = rw->next) {
        if (!rw->confirmed && rw->ctx && rw->ctx <= rs->context) {
            rw->confirmed = true;
            rw->index = rs->index;
        }
    }
}

/* The index a read may be answered at: what kv applied (behind Raft's
 * only while batches a full disk lost wait, flush.c). */
static raft_index readable_index(node *n)
{
    uint64_t applied, term;
    kv_applied(n->kv, &applied, &term);
    raft_index r = raft_applied_index(n->r);
    return n->replay_due && applied < r ? applied : r;
}

/* Reads answered now are committed first, so their readers do not wait
 * for it (kv_visible.c); reads still waiting for their round cost no
 * commit. */
static void flush_for_reads(node *n, raft_index applied)
{
    for (read_waiter *rw = n->w.reads; rw; rw = rw->next) {
        if (rw->confirmed && rw->index <= applied) {
            node_flush(n);
            return;
        }
    }
}

void node_answer_reads(node *n)
{
    raft_index applied = readable_index(n);
    flush_for_reads(n, applied);
    read_waiter **pp = &n->w.reads;
    while (*pp) {
        read_waiter *rw = *pp;
        if (rw->confirmed && rw->index <= applied) {
            *pp = rw->next;
            rw->cb(rw->ud, NODE_OK);
            free(rw);
        } else {
            pp = &rw->next;
        }
    }
}
