/* fuzz_raft: three in-process Raft cores (src/raft/raft.h) driven normally
 * (ticks, delivery in any order, drops, proposals, reads, transfers), with
 * messages decoded straight from the fuzz input (byte -> field) injected
 * among them. After every step the invariants below are checked.
 *
 * Injected messages never claim to come from nodes 1..3: a forged message
 * from a member may legitimately break Raft (a forged vote elects a second
 * leader), so they come from ids outside the cluster.
 *
 * The core refuses terms and indexes at or above 2^63 and steps only
 * members' messages (raft.c sender_allowed), so injected values are
 * unbounded (STRICT 1) and check_strict() asserts after every injected
 * message that every term stays below 2^63 and that the receiver's term,
 * role, commit and last index did not change. Before that fix a non-member
 * could push a node to a term whose successor wraps to 0, install a
 * snapshot at index 2^64-1, or shrink a node's membership to itself
 * (tests/fuzz/regress/raft/). STRICT 0 is the looser mode for bisecting.
 *
 * One kind of injected message does come from a member: a refusal of a
 * vote that names an outsider as the member's leader (raft.c
 * take_leader_hint). The design trusts members (DESIGN 11), so the named
 * id's appends, heartbeats and snapshots are then let in and may move the
 * node anywhere: even elect a second leader in a term (a snapshot's conf
 * of one), or leave it out of its own conf, where it follows any sender as
 * a joiner does. The hint, and every message to a node after a named id's
 * reached it, are checked for what holds under any input (no crash, terms
 * below 2^63 and never going back, commit never going back); once a named
 * id's message was stepped, the one-leader-per-term check ends.
 */
#include "fuzz.h"
#include "raft/raft.h"
#include "transport/transport_int.h"
#include "util/util.h"

#include <stdarg.h>
#include <string.h>

#define STRICT 1
#define VALUE_LIMIT (STRICT ? UINT64_MAX : (1ULL << 32))
#define N_NODES 3
#define MAX_QUEUE 256
#define MAX_OPS 2000
#define MAX_LEADERS 4096
#define MAX_NAMED 64

typedef struct {
    const uint8_t *p;
    size_t n, off;
} input;

typedef struct {
    raft *r;
    raft_term term;
    raft_index commit;
    bool led_by_named; /* a named id's message reached it (see the top) */
} fnode;

static struct {
    fnode nodes[N_NODES + 1]; /* 1-based, as the ids */
    raft_msg queue[MAX_QUEUE];
    size_t nq;
    struct {
        raft_term term;
        raft_id id;
    } leaders[MAX_LEADERS]; /* who led each term seen so far */
    size_t n_leaders;
    raft_id named[MAX_NAMED]; /* outsiders a forged member hint named */
    size_t n_named;
    bool named_overflow; /* more than MAX_NAMED: every outsider counts as named */
    bool trusted_forgery; /* a named id's message was stepped (see the top) */
} w;

/* FUZZ_TRACE=1 in the environment prints every step (to replay a crash). */
static int tracing = -1;

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
    if (tracing < 0)
        tracing = getenv("FUZZ_TRACE") != NULL;
    if (!tracing)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void trace_msg(const char *what, const raft_msg *m)
{
    trace("  %s %s %llu->%llu term %llu log_term %llu index %llu commit %llu reject %d "
          "entries %u snap %llu\n",
          what, raft_msg_type_name(m->type), (unsigned long long)m->from,
          (unsigned long long)m->to, (unsigned long long)m->term,
          (unsigned long long)m->log_term, (unsigned long long)m->index,
          (unsigned long long)m->commit, m->reject, m->n_entries,
          (unsigned long long)m->snapshot.index);
}

/* ---- input ---- */

static uint8_t u8(input *in) { return in->off < in->n ? in->p[in->off++] : 0; }

static uint64_t u64(input *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)u8(in) << (8 * i);
    return v;
}

/* A number near base most of the time, anything otherwise. */
static uint64_t near(input *in, uint64_t base)
{
    uint8_t b = u8(in);
    switch (b & 3) {
    case 0: return base + (b >> 2);
    case 1: return base > (uint64_t)(b >> 2) ? base - (b >> 2) : 0;
    case 2: return b >> 2;
    default: return u64(in);
    }
}

/* A term or index for an injected message (see VALUE_LIMIT). */
static uint64_t near_bounded(input *in, uint64_t base)
{
    uint64_t v = near(in, base);
    return STRICT || v < VALUE_LIMIT ? v : v % VALUE_LIMIT;
}

static fnode *node_of(raft_id id) { return id >= 1 && id <= N_NODES ? &w.nodes[id] : NULL; }

/* ---- the cluster ---- */

static void queue_push(const raft_msg *m)
{
    if (!node_of(m->to) || w.nq == MAX_QUEUE)
        return; /* to a non-member (an injected sender), or the net is full */
    FUZZ_CHECK(transport_msg_copy(m, &w.queue[w.nq]) == 0);
    w.nq++;
}

static raft_msg queue_take(size_t i)
{
    raft_msg m = w.queue[i];
    w.queue[i] = w.queue[--w.nq];
    return m;
}

/* Drains a node's readies: persisting and applying are no-ops here. */
static void process(fnode *f)
{
    for (int round = 0; raft_has_ready(f->r); round++) {
        FUZZ_CHECK(round < 100);
        raft_ready rd;
        memset(&rd, 0, sizeof rd);
        FUZZ_CHECK(raft_ready_get(f->r, &rd) == 0);
        trace("  ready of %llu: hs %d (term %llu commit %llu) entries %zu snap %d "
              "messages %zu committed %zu reads %zu\n",
              (unsigned long long)raft_self(f->r), rd.has_hard_state,
              (unsigned long long)rd.hs.term, (unsigned long long)rd.hs.commit, rd.n_entries,
              rd.has_snapshot, rd.n_messages, rd.n_committed, rd.n_reads);
        for (size_t i = 0; i < rd.n_messages; i++)
            queue_push(&rd.messages[i]);
        FUZZ_CHECK(raft_advance(f->r, &rd) == 0);
    }
}

static void record_leader(raft_term term, raft_id id)
{
    for (size_t i = 0; i < w.n_leaders; i++) {
        if (w.leaders[i].term == term) {
            FUZZ_CHECK(w.leaders[i].id == id); /* at most one leader per term */
            return;
        }
    }
    if (w.n_leaders < MAX_LEADERS) {
        w.leaders[w.n_leaders].term = term;
        w.leaders[w.n_leaders++].id = id;
    }
}

/* The invariants the current core keeps, after every step. */
static void check_node(raft_id id)
{
    fnode *f = node_of(id);
    raft_term term = raft_term_get(f->r);
    raft_index commit = raft_commit_index(f->r);
    FUZZ_CHECK(term >= f->term);     /* terms never go back */
    FUZZ_CHECK(commit >= f->commit); /* nor does the commit index */
    FUZZ_CHECK(raft_applied_index(f->r) <= commit);
    f->term = term;
    f->commit = commit;
    if (raft_role_get(f->r) == RAFT_LEADER) {
        FUZZ_CHECK(raft_leader(f->r) == id);
        if (!w.trusted_forgery)
            record_leader(term, id);
    }
}

typedef struct {
    raft_term term;
    enum raft_role role;
    raft_index commit, last;
} node_state;

static node_state state_of(const fnode *f)
{
    return (node_state){raft_term_get(f->r), raft_role_get(f->r), raft_commit_index(f->r),
                        raft_last_index(f->r)};
}

/* Stricter checks, for when the core refuses absurd terms and non-members
 * (see the top of the file): before/after one injected message. */
static void check_strict(const node_state *before, const fnode *f, bool trusted)
{
    if (!STRICT)
        return;
    node_state after = state_of(f);
    FUZZ_CHECK(after.term < (1ULL << 63));
    if (trusted)
        return;
    FUZZ_CHECK(after.term == before->term && after.role == before->role &&
               after.commit == before->commit && after.last == before->last);
}

static void start(input *in)
{
    uint8_t opt = u8(in);
    raft_conf conf = {.n_voters = N_NODES, .voters = {1, 2, 3}};
    for (raft_id id = 1; id <= N_NODES; id++) {
        raft_config cfg = {.id = id, .election_tick = 10, .heartbeat_tick = 1,
                           .pre_vote = opt & 1, .check_quorum = opt & 2, .max_inflight = 4,
                           .max_msg_bytes = opt & 4 ? 1 : 1024, .seed = id * 7919u + opt};
        raft_init_state init;
        memset(&init, 0, sizeof init);
        init.conf = conf;
        FUZZ_CHECK(raft_new(&cfg, &init, &w.nodes[id].r) == 0);
    }
}

static void stop(void)
{
    for (raft_id id = 1; id <= N_NODES; id++)
        raft_free(w.nodes[id].r);
    for (size_t i = 0; i < w.nq; i++)
        raft_msg_release(&w.queue[i]);
    memset(&w, 0, sizeof w);
}

/* ---- injected messages: fields straight from the input ---- */

static raft_id outsider(input *in)
{
    static const raft_id ids[] = {0, 4, 5, 32, 33, UINT64_MAX};
    uint8_t b = u8(in);
    raft_id id = b < 6 * 40 ? ids[b % 6] : u64(in);
    return id >= 1 && id <= N_NODES ? id + N_NODES : id;
}

static void shape_entries(input *in, raft_msg *m, raft_entry *es, uint8_t *blob)
{
    m->n_entries = u8(in) % 4;
    m->entries = m->n_entries ? es : NULL;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        raft_entry *e = &es[i];
        e->term = near_bounded(in, m->term);
        e->index = m->index + 1 + i;
        uint8_t type = u8(in) & 1; /* read either way: inputs keep their meaning */
        e->type = STRICT ? type : RAFT_ENTRY_NORMAL;
        e->len = u8(in) % 16;
        for (uint32_t k = 0; k < e->len; k++)
            blob[16 * i + k] = u8(in);
        e->data = e->len ? blob + 16 * i : NULL;
    }
}

/* Bits 1 and 2 of the flags byte on a vote answer: the answer becomes
 * another member's refusal naming the outsider as its leader. */
static void forge_member_hint(raft_msg *m, raft_id to, uint8_t flags_byte)
{
    if ((flags_byte & 6) != 6 ||
        (m->type != RAFT_MSG_VOTE_RESP && m->type != RAFT_MSG_PREVOTE_RESP))
        return;
    m->flags |= RAFT_FLAG_LEADER_HINT;
    m->reject = 1;
    m->context = m->from;
    m->from = to % N_NODES + 1;
    if (w.n_named < MAX_NAMED)
        w.named[w.n_named++] = m->context;
    else
        w.named_overflow = true;
}

static bool is_named(raft_id id)
{
    if (w.named_overflow)
        return true; /* the ones not recorded may be let in too */
    for (size_t i = 0; i < w.n_named; i++)
        if (w.named[i] == id)
            return true;
    return false;
}

static void shape_msg(input *in, fnode *f, raft_id to, raft_msg *m, raft_entry *es, uint8_t *blob)
{
    memset(m, 0, sizeof *m);
    m->type = (uint8_t)(1 + u8(in) % 14);
    uint8_t flags_byte = u8(in);
    m->flags = flags_byte & 1;
    m->reject = u8(in) & 1;
    m->from = outsider(in);
    m->to = to;
    m->term = near_bounded(in, raft_term_get(f->r));
    m->log_term = near_bounded(in, m->term);
    m->index = near_bounded(in, raft_last_index(f->r));
    m->commit = near_bounded(in, raft_commit_index(f->r));
    m->reject_hint = near_bounded(in, m->index);
    m->context = u64(in);
    if (m->type == RAFT_MSG_SNAP) {
        m->snapshot.index = near_bounded(in, m->index);
        m->snapshot.term = near_bounded(in, m->term);
        uint32_t n_voters = 1 + u8(in) % 3;
        m->snapshot.conf.n_voters = STRICT ? n_voters : N_NODES;
        for (uint32_t i = 0; i < m->snapshot.conf.n_voters; i++)
            m->snapshot.conf.voters[i] = i + 1;
    }
    shape_entries(in, m, es, blob);
    forge_member_hint(m, to, flags_byte);
}

static void inject(input *in, raft_id to)
{
    fnode *f = node_of(to);
    raft_msg m;
    raft_entry es[4];
    uint8_t blob[64];
    shape_msg(in, f, to, &m, es, blob);
    if (is_named(m.from))
        f->led_by_named = w.trusted_forgery = true;
    bool trusted = node_of(m.from) || f->led_by_named;
    node_state before = state_of(f);
    trace_msg(trusted ? "inject (trusted)" : "inject", &m);
    (void)raft_step(f->r, &m);
    check_strict(&before, f, trusted);
}

/* ---- one step ---- */

static void deliver(input *in, bool drop)
{
    if (w.nq == 0)
        return;
    raft_msg m = queue_take(u8(in) % w.nq);
    trace_msg(drop ? "drop" : "deliver", &m);
    if (!drop)
        (void)raft_step(node_of(m.to)->r, &m);
    raft_msg_release(&m);
}

static void step(input *in)
{
    uint8_t op = u8(in);
    raft_id id = 1 + (op >> 4) % N_NODES;
    raft *r = node_of(id)->r;
    uint8_t data[4] = {op, 1, 2, 3};
    trace("op %u on node %llu\n", op % 10, (unsigned long long)id);
    switch (op % 10) {
    case 0: case 1: case 2: (void)raft_tick(r); break;
    case 3: case 4: deliver(in, false); break;
    case 5: deliver(in, true); break;
    case 6: (void)raft_propose(r, data, 1 + op % 4); break;
    case 7: (void)raft_read_index(r, u64(in)); break;
    case 8: (void)raft_transfer_leader(r, u8(in) % (N_NODES + 2)); break;
    default: inject(in, id); break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size, 0};
    start(&in);
    for (int ops = 0; in.off < in.n && ops < MAX_OPS; ops++) {
        step(&in);
        for (raft_id id = 1; id <= N_NODES; id++) {
            process(node_of(id));
            check_node(id);
        }
    }
    stop();
    return 0;
}
