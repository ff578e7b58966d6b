/* read_index.c: linearizable reads without log writes (ReadIndex).
 *
 * The leader records its commit index for each request, then proves it is
 * still leader by a heartbeat round acknowledged by a quorum of voters.
 * Rounds are numbered by the leader (read_seq), not by the callers' ctx,
 * so an acknowledgement of a later round also confirms every earlier one.
 * A round asks only the members that forwarded its reads and as many
 * voters as a quorum needs besides the leader: those that answered first
 * lately. Asking every member cost each extra one a heartbeat, and the
 * leader a request, per round, for an answer the round no longer waits
 * for. A round an asked voter leaves unanswered is confirmed by the next
 * heartbeat of every member (raft_tick_leader sends one each tick,
 * carrying the latest round), and that answer makes the voters who gave it
 * the ones asked next.
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

/* Does voter a answer read rounds before voter b? The one that has
 * acknowledged a later round, or the same round sooner. */
static bool answers_sooner(const raft_progress *a, const raft_progress *b)
{
    if (a->read_ack != b->read_ack)
        return a->read_ack > b->read_ack;
    return a->read_ack_at < b->read_ack_at;
}

/* Sends the round's heartbeat to prs[i]; a voter asked counts toward need. */
static void ask(raft *r, uint32_t i, bool *asked, uint32_t *need)
{
    asked[i] = true;
    if (*need > 0 && raft_is_voter(r, r->prs[i].id))
        (*need)--;
    raft_send_heartbeat(r, &r->prs[i]);
}

/* The voter not yet asked that answers soonest (n_prs if none is left). */
static uint32_t soonest(const raft *r, const bool *asked)
{
    uint32_t best = r->n_prs;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        if (asked[i] || !raft_is_voter(r, r->prs[i].id))
            continue;
        if (best == r->n_prs || answers_sooner(&r->prs[i], &r->prs[best]))
            best = i;
    }
    return best;
}

/* Asks the members that forwarded this round's reads (the heartbeat tells
 * each the commit index its read waits for), then as many of the voters
 * that answer soonest as a quorum still needs (every voter when fewer are
 * left: the round then needs all of them). */
static void ask_quorum(raft *r)
{
    uint32_t need = raft_quorum(r) - (raft_promotable(r) ? 1 : 0);
    bool asked[RAFT_MAX_MEMBERS] = {false};
    for (size_t k = 0; k < r->n_preads; k++) {
        const raft_pending_read *pr = &r->preads[k];
        for (uint32_t i = 0; pr->seq == r->read_seq && i < r->n_prs; i++)
            if (!asked[i] && r->prs[i].id == pr->from)
                ask(r, i, asked, &need);
    }
    while (need > 0) {
        uint32_t i = soonest(r, asked);
        if (i == r->n_prs)
            break;
        ask(r, i, asked, &need);
    }
}

static void start_round(raft *r)
{
    r->read_seq++;
    for (size_t i = 0; i < r->n_preads; i++) {
        if (r->preads[i].seq == 0) {
            r->preads[i].seq = r->read_seq;
            r->preads[i].index = r->commit;
        }
    }
    ask_quorum(r);
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
