/* read_index.c: linearizable reads without log writes (ReadIndex).
 *
 * The leader records its commit index for each request, then proves it is
 * still leader by a heartbeat round acknowledged by a quorum of voters.
 * Rounds are numbered by the leader (read_seq), not by the callers' ctx,
 * so an acknowledgement of a later round also confirms every earlier one.
 *
 * Must never: answer a read before the leader committed an entry of its own
 * term (its commit index could be stale) or before a quorum confirmed the
 * round — so a read never completes in a minority; turn an answer to a
 * context outside the span this instance forwarded into a read state.
 */
#include "raft/raft_int.h"

#include <string.h>

/* Bound on queued requests, so a flood of forwarded reads cannot grow
 * memory without limit; excess requests are dropped (callers time out). */
#define MAX_PENDING_READS 65536

static void start_round(raft *r)
{
    r->read_seq++;
    for (size_t i = 0; i < r->n_preads; i++) {
        if (r->preads[i].seq == 0) {
            r->preads[i].seq = r->read_seq;
            r->preads[i].index = r->commit;
        }
    }
    raft_broadcast_heartbeat(r);
    raft_reads_check(r);
}

int raft_read_request(raft *r, uint64_t ctx, raft_id from)
{
    if (r->n_preads >= MAX_PENDING_READS)
        return RAFT_ERR_NOMEM;
    if (raft_grow((void **)&r->preads, &r->cap_preads, r->n_preads, sizeof *r->preads) != 0)
        return RAFT_ERR_NOMEM;
    raft_pending_read *pr = &r->preads[r->n_preads++];
    memset(pr, 0, sizeof *pr);
    pr->ctx = ctx;
    pr->from = from;
    if (raft_committed_in_term(r))
        start_round(r);
    return 0;
}

void raft_reads_on_commit(raft *r)
{
    if (r->n_preads == 0 || r->preads[r->n_preads - 1].seq != 0)
        return;
    if (raft_committed_in_term(r))
        start_round(r);
}

static bool confirmed(raft *r, uint64_t seq)
{
    uint32_t n = raft_promotable(r) ? 1 : 0;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        const raft_progress *p = &r->prs[i];
        if (p->read_ack >= seq && raft_is_voter(r, p->id))
            n++;
    }
    return n >= raft_quorum(r);
}

static void complete(raft *r, const raft_pending_read *pr)
{
    if (pr->from == r->id) {
        raft_push_read(r, pr->index, pr->ctx);
        return;
    }
    raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_READINDEX_RESP, pr->from);
    m.index = pr->index;
    m.context = pr->ctx;
    raft_send(r, &m);
}

void raft_reads_check(raft *r)
{
    size_t done = 0;
    /* Rounds are started in queue order, so the queue is sorted by seq and
     * unstarted (seq 0) requests sit at its tail. */
    while (done < r->n_preads && r->preads[done].seq != 0 &&
           confirmed(r, r->preads[done].seq)) {
        complete(r, &r->preads[done]);
        done++;
    }
    if (done == 0)
        return;
    memmove(r->preads, r->preads + done, (r->n_preads - done) * sizeof *r->preads);
    r->n_preads -= done;
}

void raft_reads_clear(raft *r)
{
    r->n_preads = 0;
}

void raft_reads_note_asked(raft *r, uint64_t ctx)
{
    if (ctx < r->asked_lo)
        r->asked_lo = ctx;
    if (ctx > r->asked_hi)
        r->asked_hi = ctx;
}

/* A span, not a set: it needs no memory per round and can never drop the
 * answer to a round this instance asked, however many are in flight. */
static bool asked(const raft *r, uint64_t ctx)
{
    return ctx >= r->asked_lo && ctx <= r->asked_hi;
}

/* An answer to a context outside what this instance forwarded is dropped: it
 * was asked by the node's previous life (the leader or its transport held it
 * across the crash), and its read index predates reads asked since the
 * restart. A caller that confirms every round at or below an answer's
 * context (as the node loop does) would otherwise read stale data. An old
 * answer whose context falls inside this life's span is not caught here:
 * only contexts that never repeat across restarts (the node numbers them
 * from the clock) cover that. */
void raft_handle_readindex_resp(raft *r, const raft_msg *m)
{
    if (!m->reject && asked(r, m->context))
        raft_push_read(r, m->index, m->context);
}
