/* fixture.c: the deterministic in-memory Raft cluster behind fixture.h.
 *
 * Owns: per-node emulated disks (hard state, snapshot meta + state machine
 * copy, persisted entries), per-node emulated state machines, the simulated
 * network, the random schedule and the invariant checker. It drives each
 * raft instance exactly as the real node loop will: persist, send, apply,
 * answer reads, advance.
 *
 * Must never: read a clock, keep global state, look inside raft beyond
 * raft.h, or trust what the core emits — every Ready is checked, and the
 * first violation is kept in f->err.
 *
 * Sections: memory helpers, interned entry payloads, checker, emulated disk,
 * state machine, network, node lifecycle, public API, random schedule.
 */
#include "fixture.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long ull; /* printf of uint64_t without PRIu64 noise */

/* An entry payload, interned so equal payloads share one pointer: state
 * machines and snapshots are then arrays of pointers, cheap to copy and to
 * compare. data is NUL-terminated so NORMAL entries read as C strings. */
typedef struct {
    uint64_t hash;
    uint32_t len;
    uint8_t type;
    uint8_t data[];
} fx_blob;

/* One log position as the fixture keeps it (disk log, state machine). */
typedef struct {
    raft_term term;
    const fx_blob *b;
} fx_slot;

/* Log-matching witness: the first (payload, previous term) seen for an
 * (index, term) pair. Any later sighting must agree. */
typedef struct {
    raft_term term, prev_term;
    const fx_blob *b;
} fx_lm_ent;

typedef struct {
    fx_lm_ent *v;
    size_t n, cap;
} fx_lm_slot;

typedef struct {
    uint64_t ctx;
    raft_index min_index; /* highest index applied anywhere when asked */
    raft_index index;
    bool done;
} fx_read;

typedef struct {
    uint64_t at; /* deliver at this step (random mode) */
    raft_msg m;  /* m.entries is ents: headers whose data are interned blobs */
    raft_entry *ents;
    fx_slot *snap; /* RAFT_MSG_SNAP: the sender's snapshot data */
} fx_qmsg;

typedef struct {
    raft_id id;
    bool exists, up;
    raft *r;
    uint32_t incarnation;
    raft_conf boot_conf;
    /* emulated disk: survives fx_crash */
    raft_hard_state hs;
    raft_snapshot_meta snap;
    fx_slot *snap_sm; /* snap.index slots */
    fx_slot *log;     /* log[k] is index snap.index + 1 + k */
    size_t n_log, cap_log;
    /* volatile: lost on fx_crash */
    fx_slot *sm; /* sm[i - 1] is index i */
    raft_index applied;
    size_t cap_sm;
    fx_slot *pending_snap; /* data of the last SNAP message received */
    raft_index pending_snap_n;
    fx_read *reads;
    size_t n_reads, cap_reads;
    uint64_t next_ctx; /* the random schedule's read rounds, per life */
    raft_term leader_checked; /* term in which completeness was checked */
    raft_index durable_commit; /* commit persisted before the current Ready */
} fx_node;

struct fx {
    fx_options o;
    uint64_t rng;
    uint64_t step;
    fx_node nodes[FX_MAX_NODES + 1];
    bool cut[FX_MAX_NODES + 1][FX_MAX_NODES + 1];
    bool held[FX_MAX_NODES + 1][FX_MAX_NODES + 1]; /* fx_hold: queued, not sent */
    fx_qmsg *q;
    size_t n_q, cap_q;
    bool faults; /* drop/duplicate/delay apply (random mode only) */
    bool calm;   /* random mode, healthy window: no drops */
    fx_blob **blobs; /* open-addressing hash set */
    size_t n_blobs, cap_blobs;
    fx_slot *committed; /* committed[i - 1]: what index i applied as */
    raft_index n_committed;
    size_t cap_committed;
    fx_lm_slot *lm; /* lm[i - 1] */
    size_t cap_lm;
    raft_id *leaders; /* leaders[term] */
    size_t cap_leaders;
    FILE *trace;
    bool failed;
    char err[600];
};

/* ------------------------------------------------------------------ */
/* memory helpers and failure recording                                */

static void fx_fail(fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fx_fail(fx *f, const char *fmt, ...)
{
    if (f->failed)
        return; /* the first violation is the interesting one */
    int off = snprintf(f->err, sizeof f->err, "step %llu: ", (ull)f->step);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err + off, sizeof f->err - (size_t)off, fmt, ap);
    va_end(ap);
    f->failed = true;
    if (f->trace)
        fprintf(f->trace, "VIOLATION %s\n", f->err);
}

/* Grows *p to hold `need` elements, zero-filling the new part. */
static bool grow(fx *f, void *pp, size_t *cap, size_t need, size_t elem)
{
    void **p = pp;
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    if (nc > ((size_t)1 << 40) / elem) {
        fx_fail(f, "fixture: absurd allocation (%zu elements)", need);
        return false;
    }
    void *np = realloc(*p, nc * elem);
    if (!np) {
        fx_fail(f, "fixture: out of memory");
        return false;
    }
    memset((char *)np + *cap * elem, 0, (nc - *cap) * elem);
    *p = np;
    *cap = nc;
    return true;
}

static fx_slot *slots_dup(fx *f, const fx_slot *src, size_t n)
{
    fx_slot *d = malloc((n ? n : 1) * sizeof *d);
    if (!d) {
        fx_fail(f, "fixture: out of memory");
        return NULL;
    }
    if (n)
        memcpy(d, src, n * sizeof *d);
    return d;
}

static uint64_t rng_next(fx *f)
{
    uint64_t z = (f->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rng_below(fx *f, uint64_t n)
{
    return n ? rng_next(f) % n : 0;
}

static bool rng_chance(fx *f, double p)
{
    return p > 0 && (double)(rng_next(f) >> 11) * (1.0 / 9007199254740992.0) < p;
}

/* ------------------------------------------------------------------ */
/* interned payloads                                                   */

static uint64_t blob_hash(uint8_t type, const uint8_t *d, uint32_t len)
{
    uint64_t h = 1469598103934665603ULL ^ type;
    for (uint32_t i = 0; i < len; i++) {
        h ^= d[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static bool blob_rehash(fx *f)
{
    size_t nc = f->cap_blobs ? f->cap_blobs * 2 : 256;
    fx_blob **nb = calloc(nc, sizeof *nb);
    if (!nb) {
        fx_fail(f, "fixture: out of memory");
        return false;
    }
    for (size_t i = 0; i < f->cap_blobs; i++) {
        fx_blob *b = f->blobs[i];
        if (!b)
            continue;
        size_t j = b->hash & (nc - 1);
        while (nb[j])
            j = (j + 1) & (nc - 1);
        nb[j] = b;
    }
    free(f->blobs);
    f->blobs = nb;
    f->cap_blobs = nc;
    return true;
}

static const fx_blob *blob_intern(fx *f, uint8_t type, const uint8_t *d, uint32_t len)
{
    if (len && !d) {
        fx_fail(f, "core handed out an entry with len %u and no data", len);
        return NULL;
    }
    if ((f->n_blobs + 1) * 2 > f->cap_blobs && !blob_rehash(f))
        return NULL;
    uint64_t h = blob_hash(type, d, len);
    size_t mask = f->cap_blobs - 1, i = h & mask;
    for (; f->blobs[i]; i = (i + 1) & mask) {
        const fx_blob *b = f->blobs[i];
        if (b->hash == h && b->type == type && b->len == len && (!len || !memcmp(b->data, d, len)))
            return b;
    }
    fx_blob *b = malloc(sizeof *b + (size_t)len + 1);
    if (!b) {
        fx_fail(f, "fixture: out of memory");
        return NULL;
    }
    b->hash = h;
    b->len = len;
    b->type = type;
    if (len)
        memcpy(b->data, d, len);
    b->data[len] = 0;
    f->blobs[i] = b;
    f->n_blobs++;
    return b;
}

static const fx_blob *blob_of_entry(fx *f, const raft_entry *e)
{
    return blob_intern(f, e->type, e->data, e->len);
}

static const char *blob_text(const fx_blob *b)
{
    return b->type == RAFT_ENTRY_CONF ? "<conf>" : b->len ? (const char *)b->data : "<noop>";
}

/* ------------------------------------------------------------------ */
/* checker                                                             */

/* State-machine safety: index `i` must apply the same (term, payload) on
 * every node, whether through an entry or a snapshot. */
static void check_commit(fx *f, fx_node *n, raft_index i, fx_slot s)
{
    if (!grow(f, &f->committed, &f->cap_committed, i, sizeof *f->committed))
        return;
    fx_slot *c = &f->committed[i - 1];
    if (!c->b) {
        *c = s;
        if (i > f->n_committed)
            f->n_committed = i;
        return;
    }
    if (c->b != s.b || c->term != s.term)
        fx_fail(f, "state machine safety: node %llu applied index %llu as (term %llu, %s) "
                   "but it was applied elsewhere as (term %llu, %s)",
                (ull)n->id, (ull)i, (ull)s.term, blob_text(s.b), (ull)c->term, blob_text(c->b));
}

/* Log matching, incrementally: an (index, term) pair fixes the payload and
 * the previous entry's term; by induction it fixes the whole prefix. */
static void check_log_matching(fx *f, fx_node *n, raft_index i, raft_term term,
                               const fx_blob *b, raft_term prev_term)
{
    if (!grow(f, &f->lm, &f->cap_lm, i, sizeof *f->lm))
        return;
    fx_lm_slot *s = &f->lm[i - 1];
    for (size_t k = 0; k < s->n; k++) {
        fx_lm_ent *w = &s->v[k];
        if (w->term != term)
            continue;
        if (w->b != b || w->prev_term != prev_term)
            fx_fail(f, "log matching: node %llu has (index %llu, term %llu) = (%s, prev term %llu) "
                       "but another log had (%s, prev term %llu)",
                    (ull)n->id, (ull)i, (ull)term, blob_text(b), (ull)prev_term,
                    blob_text(w->b), (ull)w->prev_term);
        return;
    }
    if (!grow(f, &s->v, &s->cap, s->n + 1, sizeof *s->v))
        return;
    s->v[s->n++] = (fx_lm_ent){.term = term, .prev_term = prev_term, .b = b};
}

static void check_leader_unique(fx *f, raft_id id, raft_term term)
{
    if (!grow(f, &f->leaders, &f->cap_leaders, (size_t)term + 1, sizeof *f->leaders))
        return;
    if (!f->leaders[term])
        f->leaders[term] = id;
    else if (f->leaders[term] != id)
        fx_fail(f, "election safety: nodes %llu and %llu both led term %llu",
                (ull)f->leaders[term], (ull)id, (ull)term);
}

static raft_index disk_last(const fx_node *n)
{
    return n->snap.index + n->n_log;
}

/* Term of index i on n's disk; false when n does not have it. */
static bool disk_term(const fx_node *n, raft_index i, raft_term *t)
{
    if (i == n->snap.index) {
        *t = n->snap.term; /* 0 for i == 0 */
        return true;
    }
    if (i < n->snap.index || i > disk_last(n))
        return false;
    *t = n->log[i - n->snap.index - 1].term;
    return true;
}

/* Leader completeness: a new leader holds every entry applied anywhere
 * before it was elected (entries under its snapshot are covered by
 * state-machine safety of that snapshot). */
static void check_leader_complete(fx *f, fx_node *n, raft_term term)
{
    for (raft_index i = n->snap.index + 1; i <= f->n_committed && !f->failed; i++) {
        const fx_slot *c = &f->committed[i - 1];
        raft_term t;
        if (!c->b)
            continue;
        if (!disk_term(n, i, &t) || t != c->term)
            fx_fail(f, "leader completeness: node %llu leads term %llu without committed "
                       "index %llu (term %llu); its log ends at %llu",
                    (ull)n->id, (ull)term, (ull)i, (ull)c->term, (ull)disk_last(n));
    }
}

static void observe_leader(fx *f, fx_node *n)
{
    if (!n->up || raft_role_get(n->r) != RAFT_LEADER)
        return;
    raft_term term = raft_term_get(n->r);
    check_leader_unique(f, n->id, term);
    if (n->leader_checked != term) {
        n->leader_checked = term;
        if (f->trace)
            fprintf(f->trace, "    node %llu is leader of term %llu\n", (ull)n->id, (ull)term);
        check_leader_complete(f, n, term);
    }
}

/* ------------------------------------------------------------------ */
/* emulated disk                                                       */

static void disk_save_hs(fx *f, fx_node *n, const raft_hard_state *hs)
{
    if (hs->term < n->hs.term)
        fx_fail(f, "node %llu persisted term %llu after term %llu", (ull)n->id,
                (ull)hs->term, (ull)n->hs.term);
    else if (hs->term == n->hs.term && n->hs.vote && hs->vote != n->hs.vote)
        fx_fail(f, "node %llu changed its vote in term %llu from %llu to %llu", (ull)n->id,
                (ull)hs->term, (ull)n->hs.vote, (ull)hs->vote);
    else if (hs->commit < n->hs.commit)
        fx_fail(f, "node %llu persisted commit %llu after commit %llu", (ull)n->id,
                (ull)hs->commit, (ull)n->hs.commit);
    n->hs = *hs;
}

static void disk_put(fx *f, fx_node *n, const raft_entry *e)
{
    if (e->index <= n->snap.index) {
        fx_fail(f, "node %llu asked to persist index %llu under its snapshot %llu",
                (ull)n->id, (ull)e->index, (ull)n->snap.index);
        return;
    }
    size_t k = (size_t)(e->index - n->snap.index - 1);
    if (k > n->n_log) {
        fx_fail(f, "node %llu asked to persist index %llu after a gap (log ends at %llu)",
                (ull)n->id, (ull)e->index, (ull)disk_last(n));
        return;
    }
    /* The Ready's own hard state may already count the new entries as
     * committed, so judge against what was durable before it. */
    if (k < n->n_log && n->log[k].term != e->term && e->index <= n->durable_commit)
        fx_fail(f, "node %llu overwrote committed index %llu (term %llu -> %llu, commit %llu)",
                (ull)n->id, (ull)e->index, (ull)n->log[k].term, (ull)e->term,
                (ull)n->durable_commit);
    const fx_blob *b = blob_of_entry(f, e);
    if (!b || !grow(f, &n->log, &n->cap_log, k + 1, sizeof *n->log))
        return;
    n->log[k] = (fx_slot){.term = e->term, .b = b};
    n->n_log = k + 1; /* stored entries past this one are replaced */
    raft_term prev = 0;
    disk_term(n, e->index - 1, &prev);
    check_log_matching(f, n, e->index, e->term, b, prev);
}

static void disk_append(fx *f, fx_node *n, const raft_entry *es, size_t count)
{
    if (count && !es) {
        fx_fail(f, "node %llu Ready has %zu entries and no array", (ull)n->id, count);
        return;
    }
    for (size_t i = 0; i < count && !f->failed; i++) {
        if (i && es[i].index != es[i - 1].index + 1) {
            fx_fail(f, "node %llu Ready entries not contiguous at %llu", (ull)n->id,
                    (ull)es[i].index);
            return;
        }
        disk_put(f, n, &es[i]);
    }
}

/* Records a snapshot and drops stored entries at or below its index. */
static void disk_set_snapshot(fx *f, fx_node *n, const raft_snapshot_meta *meta,
                              const fx_slot *data)
{
    fx_slot *copy = slots_dup(f, data, (size_t)meta->index);
    if (!copy)
        return;
    raft_index drop = meta->index > n->snap.index ? meta->index - n->snap.index : 0;
    if (drop >= n->n_log) {
        n->n_log = 0;
    } else {
        memmove(n->log, n->log + drop, (n->n_log - (size_t)drop) * sizeof *n->log);
        n->n_log -= (size_t)drop;
    }
    free(n->snap_sm);
    n->snap_sm = copy;
    n->snap = *meta;
}

/* ------------------------------------------------------------------ */
/* state machine                                                       */

static void sm_reset(fx *f, fx_node *n, const fx_slot *data, raft_index count)
{
    n->applied = 0;
    if (count && !grow(f, &n->sm, &n->cap_sm, (size_t)count, sizeof *n->sm))
        return;
    if (count)
        memcpy(n->sm, data, (size_t)count * sizeof *n->sm);
    n->applied = count;
}

static void sm_install(fx *f, fx_node *n, const raft_snapshot_meta *meta)
{
    if (!n->pending_snap || n->pending_snap_n != meta->index) {
        fx_fail(f, "node %llu installs snapshot %llu it never received (last received %llu)",
                (ull)n->id, (ull)meta->index, (ull)n->pending_snap_n);
        return;
    }
    if (meta->index < n->applied) {
        fx_fail(f, "node %llu installs snapshot %llu below its applied index %llu",
                (ull)n->id, (ull)meta->index, (ull)n->applied);
        return;
    }
    for (raft_index i = 1; i <= meta->index && !f->failed; i++)
        check_commit(f, n, i, n->pending_snap[i - 1]);
    sm_reset(f, n, n->pending_snap, meta->index);
    n->n_log = 0; /* the whole stored log goes */
    disk_set_snapshot(f, n, meta, n->pending_snap);
    if (f->trace)
        fprintf(f->trace, "    node %llu installed snapshot %llu (term %llu)\n", (ull)n->id,
                (ull)meta->index, (ull)meta->term);
}

static void sm_apply(fx *f, fx_node *n, const raft_entry *e)
{
    raft_term t;
    if (e->index != n->applied + 1) {
        fx_fail(f, "node %llu applies index %llu after %llu", (ull)n->id, (ull)e->index,
                (ull)n->applied);
        return;
    }
    if (e->index > n->hs.commit) {
        fx_fail(f, "node %llu applies index %llu beyond its persisted commit %llu",
                (ull)n->id, (ull)e->index, (ull)n->hs.commit);
        return;
    }
    if (!disk_term(n, e->index, &t) || t != e->term) {
        fx_fail(f, "node %llu applies index %llu term %llu that its disk does not hold",
                (ull)n->id, (ull)e->index, (ull)e->term);
        return;
    }
    const fx_blob *b = blob_of_entry(f, e);
    if (!b || !grow(f, &n->sm, &n->cap_sm, (size_t)e->index, sizeof *n->sm))
        return;
    fx_slot s = {.term = e->term, .b = b};
    n->sm[n->applied++] = s;
    check_commit(f, n, e->index, s);
}

/* Takes a snapshot when enough entries were applied since the last one. */
static void sm_maybe_snapshot(fx *f, fx_node *n)
{
    int every = f->o.snapshot_every;
    if (every <= 0 || n->applied < n->snap.index + (raft_index)every)
        return;
    raft_index keep = f->o.snapshot_keep > 0 ? (raft_index)f->o.snapshot_keep : 0;
    raft_index to = n->applied > keep ? n->applied - keep : 0;
    raft_index first = raft_first_index(n->r);
    if (first && to < first - 1)
        to = first - 1; /* never ask to compact what is already gone */
    raft_snapshot_meta meta;
    memset(&meta, 0, sizeof meta);
    int rc = raft_snapshot_taken_at(n->r, n->applied, to, &meta);
    if (rc) {
        fx_fail(f, "node %llu: raft_snapshot_taken_at(%llu) = %d (applied %llu, first %llu)",
                (ull)n->id, (ull)to, rc, (ull)n->applied, (ull)first);
        return;
    }
    if (meta.index != n->applied) {
        fx_fail(f, "node %llu snapshot meta index %llu != applied %llu", (ull)n->id,
                (ull)meta.index, (ull)n->applied);
        return;
    }
    raft_term t;
    if (!disk_term(n, meta.index, &t) || t != meta.term)
        fx_fail(f, "node %llu snapshot meta term %llu does not match its log at %llu",
                (ull)n->id, (ull)meta.term, (ull)meta.index);
    disk_set_snapshot(f, n, &meta, n->sm);
    if (f->trace)
        fprintf(f->trace, "    node %llu snapshot at %llu, compacted to %llu\n", (ull)n->id,
                (ull)meta.index, (ull)to);
}

/* ------------------------------------------------------------------ */
/* reads                                                               */

static fx_read *read_find(fx_node *n, uint64_t ctx)
{
    for (size_t i = 0; i < n->n_reads; i++)
        if (n->reads[i].ctx == ctx)
            return &n->reads[i];
    return NULL;
}

static fx_read *read_add(fx *f, fx_node *n, uint64_t ctx)
{
    fx_read *rd = read_find(n, ctx);
    if (rd)
        return rd;
    if (!grow(f, &n->reads, &n->cap_reads, n->n_reads + 1, sizeof *n->reads))
        return NULL;
    rd = &n->reads[n->n_reads++];
    memset(rd, 0, sizeof *rd);
    rd->ctx = ctx;
    return rd;
}

/* Linearizable reads: the read point covers everything applied anywhere
 * before the request was made. */
static void read_confirm(fx *f, fx_node *n, fx_read *rd, const raft_read_state *rs)
{
    if (rs->index < rd->min_index)
        fx_fail(f, "stale read on node %llu: ctx %llu read at %llu (answer to ctx %llu) "
                   "but %llu was applied before the request",
                (ull)n->id, (ull)rd->ctx, (ull)rs->index, (ull)rs->context,
                (ull)rd->min_index);
    if (!rd->done && f->trace)
        fprintf(f->trace, "    node %llu read ctx %llu at %llu\n", (ull)n->id,
                (ull)rd->ctx, (ull)rs->index);
    rd->done = true;
    rd->index = rs->index;
}

/* As the node loop does, a read state confirms every waiting read of this
 * life asked at or below its context (callers number rounds upwards; reads
 * from before a restart were forgotten with the node's memory). */
static void read_answered(fx *f, fx_node *n, const raft_read_state *rs)
{
    for (size_t i = 0; i < n->n_reads; i++) {
        fx_read *rd = &n->reads[i];
        if (rd->ctx == rs->context || (!rd->done && rd->ctx < rs->context))
            read_confirm(f, n, rd, rs);
    }
}

/* ------------------------------------------------------------------ */
/* network                                                             */

static fx_node *node_get(fx *f, raft_id id)
{
    if (id == 0 || id > FX_MAX_NODES || !f->nodes[id].exists)
        return NULL;
    return &f->nodes[id];
}

static void qmsg_free(fx_qmsg *qm)
{
    free(qm->ents);
    qm->ents = NULL;
    qm->m.entries = NULL;
    qm->m.n_entries = 0;
    free(qm->snap);
    qm->snap = NULL;
}

/* Copies m into qm: the header, and the entries as headers whose payloads
 * are interned (the bytes live as long as the fixture), so the queue never
 * points into a Ready. */
static bool qmsg_copy(fx *f, fx_qmsg *qm, const raft_msg *m)
{
    qm->m = *m;
    qm->m.entries = NULL;
    qm->ents = NULL;
    if (!m->n_entries)
        return true;
    if (!m->entries) {
        fx_fail(f, "node %llu sent %u entries and no array", (ull)m->from, m->n_entries);
        return false;
    }
    qm->ents = malloc(m->n_entries * sizeof *qm->ents);
    if (!qm->ents) {
        fx_fail(f, "fixture: out of memory");
        return false;
    }
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const fx_blob *b = blob_of_entry(f, &m->entries[i]);
        if (!b) {
            free(qm->ents);
            qm->ents = NULL;
            return false;
        }
        qm->ents[i] = m->entries[i];
        qm->ents[i].data = b->len ? (uint8_t *)b->data : NULL; /* the core copies */
    }
    qm->m.entries = qm->ents;
    return true;
}

static void trace_msg(fx *f, const char *what, const raft_msg *m)
{
    if (!f->trace)
        return;
    fprintf(f->trace, "    %s %llu->%llu %s t=%llu lt=%llu i=%llu c=%llu n=%u%s ctx=%llu\n",
            what, (ull)m->from, (ull)m->to, raft_msg_type_name(m->type), (ull)m->term,
            (ull)m->log_term, (ull)m->index, (ull)m->commit, m->n_entries,
            m->reject ? " REJECT" : "", (ull)m->context);
}

static bool net_push(fx *f, fx_qmsg *qm)
{
    if (!grow(f, &f->q, &f->cap_q, f->n_q + 1, sizeof *f->q)) {
        qmsg_free(qm);
        return false;
    }
    f->q[f->n_q++] = *qm;
    return true;
}

static uint64_t net_delay(fx *f)
{
    return f->faults && f->o.max_delay > 0 ? rng_below(f, (uint64_t)f->o.max_delay + 1) : 0;
}

static void net_send(fx *f, fx_node *n, const raft_msg *m)
{
    if (m->from != n->id || m->to == 0 || m->to > FX_MAX_NODES || m->to == n->id) {
        fx_fail(f, "node %llu sent a message from %llu to %llu", (ull)n->id, (ull)m->from,
                (ull)m->to);
        return;
    }
    fx_qmsg qm;
    memset(&qm, 0, sizeof qm);
    if (m->type == RAFT_MSG_SNAP) {
        if (m->snapshot.index != n->snap.index || m->snapshot.term != n->snap.term) {
            fx_fail(f, "node %llu sends snapshot %llu/%llu but stores %llu/%llu", (ull)n->id,
                    (ull)m->snapshot.index, (ull)m->snapshot.term, (ull)n->snap.index,
                    (ull)n->snap.term);
            return;
        }
        qm.snap = slots_dup(f, n->snap_sm, (size_t)n->snap.index);
        if (!qm.snap)
            return;
    }
    if (!qmsg_copy(f, &qm, m)) {
        free(qm.snap);
        return;
    }
    qm.at = f->step + net_delay(f);
    net_push(f, &qm);
}

static void node_process(fx *f, fx_node *n);

static void report_snapshot(fx *f, raft_id from, raft_id to, bool ok)
{
    fx_node *src = node_get(f, from);
    if (!src || !src->up)
        return;
    raft_report_snapshot(src->r, to, ok);
    node_process(f, src);
}

static void report_unreachable(fx *f, raft_id from, raft_id to)
{
    fx_node *src = node_get(f, from);
    if (!src || !src->up)
        return;
    raft_report_unreachable(src->r, to);
    node_process(f, src);
}

static void net_duplicate(fx *f, const fx_qmsg *qm)
{
    fx_qmsg dup;
    memset(&dup, 0, sizeof dup);
    if (qm->snap && !(dup.snap = slots_dup(f, qm->snap, (size_t)qm->m.snapshot.index)))
        return;
    if (!qmsg_copy(f, &dup, &qm->m)) {
        free(dup.snap);
        return;
    }
    dup.at = f->step + 1 + net_delay(f);
    net_push(f, &dup);
}

/* Delivers (or loses) one message; takes ownership of qm. */
static void net_deliver(fx *f, fx_qmsg *qm)
{
    raft_id from = qm->m.from, to = qm->m.to;
    fx_node *dst = node_get(f, to);
    bool is_cut = f->cut[from][to];
    bool lost = !dst || !dst->up || is_cut ||
                (f->faults && !f->calm && rng_chance(f, f->o.drop));
    if (lost) {
        trace_msg(f, "drop", &qm->m);
        bool snap = qm->m.type == RAFT_MSG_SNAP;
        qmsg_free(qm);
        if (snap)
            report_snapshot(f, from, to, false);
        else if (is_cut && f->faults && rng_below(f, 4) == 0)
            report_unreachable(f, from, to);
        return;
    }
    if (f->faults && rng_chance(f, f->o.duplicate))
        net_duplicate(f, qm);
    trace_msg(f, "deliver", &qm->m);
    bool snap = qm->m.type == RAFT_MSG_SNAP;
    if (snap) {
        free(dst->pending_snap);
        dst->pending_snap = qm->snap;
        dst->pending_snap_n = qm->m.snapshot.index;
        qm->snap = NULL;
    }
    int rc = raft_step(dst->r, &qm->m);
    if (rc && f->trace)
        fprintf(f->trace, "    step on %llu returned %d\n", (ull)to, rc);
    qmsg_free(qm);
    node_process(f, dst);
    if (snap)
        report_snapshot(f, from, to, rc == 0);
}

/* Moves the messages due now (all of them when `all`) out of the queue and
 * delivers them in queue order; returns how many. */
static int net_deliver_due(fx *f, bool all)
{
    size_t n = 0, keep = 0;
    fx_qmsg *batch = malloc((f->n_q ? f->n_q : 1) * sizeof *batch);
    if (!batch) {
        fx_fail(f, "fixture: out of memory");
        return 0;
    }
    for (size_t i = 0; i < f->n_q; i++) {
        const raft_msg *m = &f->q[i].m;
        if ((all || f->q[i].at <= f->step) && !f->held[m->from][m->to])
            batch[n++] = f->q[i];
        else
            f->q[keep++] = f->q[i];
    }
    f->n_q = keep;
    for (size_t i = 0; i < n; i++)
        net_deliver(f, &batch[i]);
    free(batch);
    return (int)n;
}

/* Loses every queued message to `id`. A lost snapshot is reported to its
 * sender, as the real transport reports a failed stream. Held messages
 * (fx_hold) are still in the sender's queue and reach the next life. */
static void net_drop_to(fx *f, raft_id id)
{
    raft_id snap_from[FX_MAX_NODES + 1] = {0};
    size_t keep = 0;
    for (size_t i = 0; i < f->n_q; i++) {
        fx_qmsg *qm = &f->q[i];
        if (qm->m.to != id || f->held[qm->m.from][id]) {
            f->q[keep++] = *qm;
            continue;
        }
        if (qm->m.type == RAFT_MSG_SNAP && qm->m.from <= FX_MAX_NODES)
            snap_from[qm->m.from] = 1;
        qmsg_free(qm);
    }
    f->n_q = keep;
    for (raft_id from = 1; from <= FX_MAX_NODES; from++)
        if (snap_from[from])
            report_snapshot(f, from, id, false);
}

/* ------------------------------------------------------------------ */
/* node lifecycle and Ready processing                                 */

static void node_ready_once(fx *f, fx_node *n, const raft_ready *rd)
{
    n->durable_commit = n->hs.commit;
    if (rd->has_snapshot)
        sm_install(f, n, &rd->snapshot);
    if (rd->has_hard_state)
        disk_save_hs(f, n, &rd->hs);
    disk_append(f, n, rd->entries, rd->n_entries);
    if (rd->n_messages && !rd->messages)
        fx_fail(f, "node %llu Ready has messages and no array", (ull)n->id);
    for (size_t i = 0; i < rd->n_messages && rd->messages && !f->failed; i++)
        net_send(f, n, &rd->messages[i]);
    if (rd->n_committed && !rd->committed)
        fx_fail(f, "node %llu Ready has committed entries and no array", (ull)n->id);
    for (size_t i = 0; i < rd->n_committed && rd->committed && !f->failed; i++)
        sm_apply(f, n, &rd->committed[i]);
    for (size_t i = 0; i < rd->n_reads && rd->reads && !f->failed; i++)
        read_answered(f, n, &rd->reads[i]);
}

/* Drains n's Readies exactly as the node loop will. */
static void node_process(fx *f, fx_node *n)
{
    for (int round = 0; n->up && raft_has_ready(n->r); round++) {
        if (round > 100) {
            fx_fail(f, "node %llu keeps producing Readies", (ull)n->id);
            return;
        }
        raft_ready rd;
        memset(&rd, 0, sizeof rd);
        int rc = raft_ready_get(n->r, &rd);
        if (rc) {
            fx_fail(f, "node %llu: raft_ready_get = %d", (ull)n->id, rc);
            return;
        }
        node_ready_once(f, n, &rd);
        rc = raft_advance(n->r, &rd);
        if (rc)
            fx_fail(f, "node %llu: raft_advance = %d", (ull)n->id, rc);
        if (f->failed)
            return;
        sm_maybe_snapshot(f, n);
    }
    observe_leader(f, n);
}

static int node_start(fx *f, fx_node *n)
{
    raft_config cfg = {
        .id = n->id,
        .election_tick = f->o.election_tick,
        .heartbeat_tick = f->o.heartbeat_tick,
        .pre_vote = f->o.pre_vote,
        .check_quorum = f->o.check_quorum,
        .max_inflight = f->o.max_inflight,
        /* small, so catch-ups take several APPENDs; on a third of the seeds
         * one entry per APPEND, so an old-term entry can reach a majority
         * alone (the Figure 8 hazard of the Raft paper) */
        .max_msg_bytes = f->o.seed % 3 == 0 ? 1 : 256,
        .seed = f->o.seed * 1000003ULL + n->id * 7919ULL + n->incarnation,
    };
    raft_init_state init;
    memset(&init, 0, sizeof init);
    init.hs = n->hs;
    init.snap = n->snap;
    init.applied = n->snap.index; /* the emulated state machine is volatile */
    init.conf = n->snap.index ? n->snap.conf : n->boot_conf;
    raft_entry *es = calloc(n->n_log ? n->n_log : 1, sizeof *es);
    if (!es)
        return RAFT_ERR_NOMEM;
    for (size_t k = 0; k < n->n_log; k++) {
        const fx_blob *b = n->log[k].b;
        es[k] = (raft_entry){.term = n->log[k].term, .index = n->snap.index + 1 + k,
                             .type = b->type, .len = b->len,
                             /* the core copies; it never writes through this */
                             .data = b->len ? (uint8_t *)b->data : NULL};
    }
    init.n_entries = n->n_log;
    init.entries = es;
    int rc = raft_new(&cfg, &init, &n->r);
    free(es);
    if (rc) {
        n->r = NULL;
        fx_fail(f, "node %llu: raft_new = %d", (ull)n->id, rc);
        return rc;
    }
    n->incarnation++;
    n->up = true;
    n->n_reads = 0;
    /* Rounds are numbered from the fixture's clock, as the node loop numbers
     * them from the real-time clock (one round per step at most, so a life's
     * numbers stay below the next life's). Starting each life at 0 instead,
     * the node loop's numbering before issue 4's fix, makes seeds such as
     * 141 and 492 fail with a stale read: an answer to a round of the previous
     * life confirms a read of this one. */
    n->next_ctx = f->step << 20;
    n->leader_checked = 0;
    sm_reset(f, n, n->snap_sm, n->snap.index);
    node_process(f, n);
    return 0;
}

static void node_stop(fx *f, fx_node *n)
{
    if (!n->up)
        return;
    raft_free(n->r);
    n->r = NULL;
    n->up = false;
    n->applied = 0;
    n->n_reads = 0;
    free(n->pending_snap);
    n->pending_snap = NULL;
    n->pending_snap_n = 0;
    net_drop_to(f, n->id);
}

static void node_free(fx_node *n)
{
    if (n->r)
        raft_free(n->r);
    free(n->snap_sm);
    free(n->log);
    free(n->sm);
    free(n->pending_snap);
    free(n->reads);
}

/* ------------------------------------------------------------------ */
/* public API: lifecycle                                               */

fx *fx_new(const fx_options *o)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->o = *o;
    if (f->o.n_nodes < 1 || f->o.n_nodes > FX_MAX_NODES)
        f->o.n_nodes = 3;
    if (f->o.election_tick <= 0)
        f->o.election_tick = 10;
    if (f->o.heartbeat_tick <= 0)
        f->o.heartbeat_tick = 1;
    if (!f->o.max_inflight)
        f->o.max_inflight = 16;
    f->rng = o->seed ^ 0x5eed5eed5eedULL;
    raft_conf boot;
    memset(&boot, 0, sizeof boot);
    for (int i = 1; i <= f->o.n_nodes; i++)
        boot.voters[boot.n_voters++] = (raft_id)i;
    for (int i = 1; i <= f->o.n_nodes; i++) {
        fx_node *n = &f->nodes[i];
        n->id = (raft_id)i;
        n->exists = true;
        n->boot_conf = boot;
        if (node_start(f, n)) {
            fx_free(f);
            return NULL;
        }
    }
    return f;
}

void fx_free(fx *f)
{
    if (!f)
        return;
    for (int i = 1; i <= FX_MAX_NODES; i++)
        node_free(&f->nodes[i]);
    for (size_t i = 0; i < f->n_q; i++)
        qmsg_free(&f->q[i]);
    free(f->q);
    for (size_t i = 0; i < f->cap_blobs; i++)
        free(f->blobs[i]);
    free(f->blobs);
    free(f->committed);
    for (size_t i = 0; i < f->cap_lm; i++)
        free(f->lm[i].v);
    free(f->lm);
    free(f->leaders);
    free(f);
}

void fx_set_trace(fx *f, FILE *out)
{
    f->trace = out;
}

/* ------------------------------------------------------------------ */
/* public API: manual driving                                          */

raft *fx_raft(fx *f, raft_id id)
{
    fx_node *n = node_get(f, id);
    return n && n->up ? n->r : NULL;
}

static void node_tick(fx *f, fx_node *n)
{
    if (!n || !n->up)
        return;
    raft_tick(n->r);
    node_process(f, n);
}

void fx_tick(fx *f, raft_id id)
{
    f->step++;
    node_tick(f, node_get(f, id));
}

void fx_tick_all(fx *f)
{
    f->step++;
    for (raft_id id = 1; id <= FX_MAX_NODES; id++)
        node_tick(f, node_get(f, id));
}

int fx_deliver(fx *f, int max_rounds)
{
    int total = 0;
    for (int round = 0; round < max_rounds && f->n_q; round++) {
        f->step++;
        int n = net_deliver_due(f, true);
        if (n == 0)
            break; /* what is left is held */
        total += n;
    }
    return total;
}

raft_id fx_leader(fx *f)
{
    raft_id best = 0;
    raft_term best_term = 0;
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = node_get(f, id);
        if (n && n->up && raft_role_get(n->r) == RAFT_LEADER &&
            (!best || raft_term_get(n->r) > best_term)) {
            best = id;
            best_term = raft_term_get(n->r);
        }
    }
    return best;
}

raft_id fx_elect_any(fx *f, int max_ticks)
{
    for (int t = 0; t < max_ticks; t++) {
        raft_id l = fx_leader(f);
        if (l)
            return l;
        fx_tick_all(f);
        fx_deliver(f, 100);
    }
    return fx_leader(f);
}

/* ------------------------------------------------------------------ */
/* public API: client operations and state machine queries             */

int fx_propose(fx *f, raft_id id, const char *data)
{
    fx_node *n = node_get(f, id);
    if (!n || !n->up || !data)
        return RAFT_ERR_INVALID;
    int rc = raft_propose(n->r, (const uint8_t *)data, (uint32_t)strlen(data));
    node_process(f, n);
    return rc;
}

int fx_propose_conf(fx *f, raft_id id, uint8_t op, raft_id target)
{
    fx_node *n = node_get(f, id);
    if (!n || !n->up)
        return RAFT_ERR_INVALID;
    raft_conf_change cc = {.op = op, .id = target, .ctx_len = 0, .ctx = NULL};
    int rc = raft_propose_conf(n->r, &cc);
    node_process(f, n);
    return rc;
}

int fx_read_index(fx *f, raft_id id, uint64_t ctx)
{
    fx_node *n = node_get(f, id);
    if (!n || !n->up)
        return RAFT_ERR_INVALID;
    fx_read *rd = read_add(f, n, ctx);
    if (!rd)
        return RAFT_ERR_NOMEM;
    /* A shared context must satisfy its latest asker too. */
    if (f->n_committed > rd->min_index)
        rd->min_index = f->n_committed;
    rd->done = false;
    int rc = raft_read_index(n->r, ctx);
    node_process(f, n);
    return rc;
}

bool fx_read_done(fx *f, raft_id id, uint64_t ctx, raft_index *index)
{
    fx_node *n = node_get(f, id);
    fx_read *rd = n && n->up ? read_find(n, ctx) : NULL;
    if (!rd || !rd->done)
        return false;
    if (index)
        *index = rd->index;
    return true;
}

raft_index fx_applied(fx *f, raft_id id)
{
    fx_node *n = node_get(f, id);
    return n && n->up ? n->applied : 0;
}

const char *fx_applied_data(fx *f, raft_id id, raft_index index)
{
    fx_node *n = node_get(f, id);
    if (!n || !n->up || index == 0 || index > n->applied)
        return NULL;
    const fx_blob *b = n->sm[index - 1].b;
    return b->type == RAFT_ENTRY_CONF ? "" : (const char *)b->data;
}

/* ------------------------------------------------------------------ */
/* public API: faults                                                  */

void fx_cut(fx *f, raft_id from, raft_id to)
{
    if (from && to && from <= FX_MAX_NODES && to <= FX_MAX_NODES)
        f->cut[from][to] = true;
}

void fx_isolate(fx *f, raft_id id)
{
    for (raft_id o = 1; o <= FX_MAX_NODES; o++) {
        if (o == id)
            continue;
        fx_cut(f, id, o);
        fx_cut(f, o, id);
    }
}

void fx_partition(fx *f, const raft_id *a, size_t n_a)
{
    bool in_a[FX_MAX_NODES + 1] = {false};
    for (size_t i = 0; i < n_a; i++)
        if (a[i] && a[i] <= FX_MAX_NODES)
            in_a[a[i]] = true;
    for (raft_id x = 1; x <= FX_MAX_NODES; x++)
        for (raft_id y = 1; y <= FX_MAX_NODES; y++)
            if (in_a[x] != in_a[y])
                f->cut[x][y] = true;
}

void fx_heal(fx *f)
{
    memset(f->cut, 0, sizeof f->cut);
}

void fx_hold(fx *f, raft_id from, raft_id to)
{
    if (from && to && from <= FX_MAX_NODES && to <= FX_MAX_NODES)
        f->held[from][to] = true;
}

size_t fx_release(fx *f, raft_id from, raft_id to)
{
    if (!from || !to || from > FX_MAX_NODES || to > FX_MAX_NODES)
        return 0;
    f->held[from][to] = false;
    size_t n = 0;
    for (size_t i = 0; i < f->n_q; i++)
        n += f->q[i].m.from == from && f->q[i].m.to == to;
    return n;
}

bool fx_deliver_held(fx *f, raft_id from, raft_id to)
{
    for (size_t i = 0; i < f->n_q; i++) {
        if (f->q[i].m.from != from || f->q[i].m.to != to)
            continue;
        fx_qmsg qm = f->q[i];
        memmove(f->q + i, f->q + i + 1, (f->n_q - i - 1) * sizeof *f->q);
        f->n_q--;
        f->step++;
        net_deliver(f, &qm);
        return true;
    }
    return false;
}

void fx_crash(fx *f, raft_id id)
{
    fx_node *n = node_get(f, id);
    if (n)
        node_stop(f, n);
}

void fx_restart(fx *f, raft_id id)
{
    fx_node *n = node_get(f, id);
    if (n && !n->up)
        node_start(f, n);
}

int fx_add_node(fx *f, raft_id id)
{
    if (id == 0 || id > FX_MAX_NODES || f->nodes[id].exists)
        return RAFT_ERR_INVALID;
    fx_node *n = &f->nodes[id];
    memset(n, 0, sizeof *n);
    n->id = id;
    n->exists = true; /* init all zero, conf empty: it learns from the leader */
    return node_start(f, n);
}

/* ------------------------------------------------------------------ */
/* public API: invariants                                              */

int fx_check(fx *f)
{
    for (raft_id id = 1; id <= FX_MAX_NODES && !f->failed; id++) {
        fx_node *n = node_get(f, id);
        if (!n || !n->up)
            continue;
        /* After a drained Ready nothing may live only in memory. */
        if (raft_term_get(n->r) != n->hs.term)
            fx_fail(f, "node %llu is in term %llu but persisted term %llu", (ull)id,
                    (ull)raft_term_get(n->r), (ull)n->hs.term);
        else if (raft_applied_index(n->r) != n->applied)
            fx_fail(f, "node %llu: core applied %llu, state machine applied %llu", (ull)id,
                    (ull)raft_applied_index(n->r), (ull)n->applied);
        else if (raft_commit_index(n->r) > disk_last(n))
            fx_fail(f, "node %llu commit %llu beyond its persisted log %llu", (ull)id,
                    (ull)raft_commit_index(n->r), (ull)disk_last(n));
    }
    return f->failed ? -1 : 0;
}

const char *fx_error(const fx *f)
{
    return f->failed ? f->err : "";
}

uint64_t fx_step_count(const fx *f)
{
    return f->step;
}

void fx_inject_apply(fx *f, raft_id id, raft_index index, raft_term term, const char *data)
{
    fx_node *n = node_get(f, id);
    const fx_blob *b = blob_intern(f, RAFT_ENTRY_NORMAL, (const uint8_t *)data,
                                   (uint32_t)strlen(data));
    if (n && b && index)
        check_commit(f, n, index, (fx_slot){.term = term, .b = b});
}

void fx_inject_leader(fx *f, raft_id id, raft_term term)
{
    check_leader_unique(f, id, term);
}

void fx_inject_entry(fx *f, raft_id id, raft_index index, raft_term term, const char *data)
{
    fx_node *n = node_get(f, id);
    const fx_blob *b = blob_intern(f, RAFT_ENTRY_NORMAL, (const uint8_t *)data,
                                   (uint32_t)strlen(data));
    raft_term prev = 0;
    if (!n || !b || !index)
        return;
    disk_term(n, index - 1, &prev);
    check_log_matching(f, n, index, term, b, prev);
}

/* ------------------------------------------------------------------ */
/* random schedule                                                     */

/* A random existing node: want_up 1 = running, 0 = crashed, -1 = any. */
static fx_node *pick_node(fx *f, int want_up)
{
    raft_id ids[FX_MAX_NODES];
    size_t k = 0;
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = node_get(f, id);
        if (n && (want_up < 0 || n->up == (want_up == 1)))
            ids[k++] = id;
    }
    return k ? &f->nodes[ids[rng_below(f, k)]] : NULL;
}

static int count_nodes(fx *f, bool up_only)
{
    int c = 0;
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = node_get(f, id);
        c += n && (!up_only || n->up);
    }
    return c;
}

static void trace_step(fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void trace_step(fx *f, const char *fmt, ...)
{
    if (!f->trace)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(f->trace, "step %llu%s: ", (ull)f->step, f->calm ? " (calm)" : "");
    vfprintf(f->trace, fmt, ap);
    va_end(ap);
    fputc('\n', f->trace);
}

static void rand_tick(fx *f)
{
    fx_node *n = pick_node(f, 1);
    if (!n)
        return;
    trace_step(f, "tick %llu (%s term %llu commit %llu applied %llu)", (ull)n->id,
               raft_role_name(raft_role_get(n->r)), (ull)raft_term_get(n->r),
               (ull)raft_commit_index(n->r), (ull)n->applied);
    node_tick(f, n);
}

static void rand_propose(fx *f)
{
    fx_node *n = pick_node(f, 1);
    char buf[32];
    if (!n)
        return;
    snprintf(buf, sizeof buf, "v%llu", (ull)f->step);
    int rc = fx_propose(f, n->id, buf);
    trace_step(f, "propose %s on %llu -> %d", buf, (ull)n->id, rc);
}

static void rand_read(fx *f)
{
    fx_node *n = pick_node(f, 1);
    if (!n)
        return;
    uint64_t ctx = ++n->next_ctx;
    int rc = fx_read_index(f, n->id, ctx);
    trace_step(f, "read_index ctx %llu on %llu -> %d", (ull)ctx, (ull)n->id, rc);
}

/* Faults aimed at the leader half of the time: that is where elections,
 * log repair and lost commits happen. */
static fx_node *pick_victim(fx *f)
{
    raft_id l = fx_leader(f);
    return l && rng_below(f, 2) ? &f->nodes[l] : pick_node(f, 1);
}

static void rand_partition(fx *f)
{
    raft_id a[FX_MAX_NODES];
    size_t k = 0;
    fx_node *v = pick_victim(f);
    if (v && rng_below(f, 2)) {
        a[k++] = v->id; /* the victim alone or with one other node */
        fx_node *o = pick_node(f, -1);
        if (o && o != v && rng_below(f, 2))
            a[k++] = o->id;
    } else {
        for (raft_id id = 1; id <= FX_MAX_NODES; id++)
            if (node_get(f, id) && rng_below(f, 2))
                a[k++] = id;
    }
    fx_heal(f);
    fx_partition(f, a, k);
    trace_step(f, "partition: %zu node(s) apart, first %llu", k, (ull)(k ? a[0] : 0));
}

static void rand_crash(fx *f)
{
    int total = count_nodes(f, false), down = total - count_nodes(f, true);
    if ((down + 1) * 2 >= total)
        return; /* keep a majority running */
    fx_node *n = pick_victim(f);
    if (!n)
        return;
    trace_step(f, "crash %llu", (ull)n->id);
    node_stop(f, n);
}

static void rand_restart(fx *f)
{
    fx_node *n = pick_node(f, 0);
    if (!n)
        return;
    trace_step(f, "restart %llu (disk: term %llu, snapshot %llu, log to %llu)", (ull)n->id,
               (ull)n->hs.term, (ull)n->snap.index, (ull)disk_last(n));
    node_start(f, n);
}

static void rand_cut(fx *f)
{
    fx_node *a = pick_node(f, -1), *b = pick_node(f, -1);
    if (!a || !b || a == b)
        return;
    trace_step(f, "cut %llu->%llu", (ull)a->id, (ull)b->id);
    fx_cut(f, a->id, b->id);
}

/* The bootstrap conf is not in the log, so a fresh node must learn the
 * membership from a snapshot: only let one join once every log is
 * compacted past index 1, which forces the leader to send one. */
static bool fresh_join_safe(fx *f)
{
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = node_get(f, id);
        if (!n)
            continue;
        if (n->snap.index == 0 || (n->up && raft_first_index(n->r) <= 1))
            return false;
    }
    return true;
}

/* A node to add as learner: a removed node (it keeps its disk, so its old
 * votes still bind it), or a fresh one. */
static raft_id pick_joiner(fx *f, const raft_conf *c)
{
    raft_id ids[FX_MAX_NODES];
    size_t k = 0;
    raft_id limit = (raft_id)f->o.n_nodes + 2;
    if (limit > FX_MAX_NODES)
        limit = FX_MAX_NODES;
    bool fresh_ok = fresh_join_safe(f);
    for (raft_id id = 1; id <= limit; id++)
        if (!raft_conf_has(c, id) && (node_get(f, id) || fresh_ok))
            ids[k++] = id;
    return k ? ids[rng_below(f, k)] : 0;
}

static void rand_membership(fx *f)
{
    raft_id lid = fx_leader(f);
    if (!lid)
        return;
    raft_conf c = *raft_conf_get(f->nodes[lid].r);
    uint8_t op = 0;
    raft_id target = 0;
    switch (rng_below(f, 3)) {
    case 0:
        if (c.n_learners) {
            op = RAFT_CONF_PROMOTE;
            target = c.learners[rng_below(f, c.n_learners)];
        }
        break;
    case 1:
        if (c.n_voters > 3) {
            op = RAFT_CONF_REMOVE;
            target = c.voters[rng_below(f, c.n_voters)];
        } else if (c.n_learners) {
            op = RAFT_CONF_REMOVE;
            target = c.learners[rng_below(f, c.n_learners)];
        }
        break;
    default:
        target = pick_joiner(f, &c);
        if (target && !node_get(f, target) && fx_add_node(f, target))
            target = 0;
        op = RAFT_CONF_ADD_LEARNER;
        break;
    }
    if (!target)
        return;
    int rc = fx_propose_conf(f, lid, op, target);
    trace_step(f, "conf change op %u node %llu via leader %llu -> %d", op, (ull)target,
               (ull)lid, rc);
}

static void rand_deliver(fx *f)
{
    trace_step(f, "deliver due (%zu queued)", f->n_q);
    net_deliver_due(f, false);
}

/* One random step. Every 200 steps the last 60 are calm (no new faults, no
 * drops, network healed) so that commits happen between storms. */
static void random_step(fx *f, bool membership)
{
    f->calm = f->step % 200 >= 140;
    if (f->calm)
        fx_heal(f);
    uint64_t r = rng_below(f, 100);
    if (r < 45)
        rand_tick(f);
    else if (r < 73)
        rand_deliver(f);
    else if (r < 83)
        rand_propose(f);
    else if (r < 87)
        rand_read(f);
    else if (f->calm && r < 93)
        rand_restart(f);
    else if (f->calm)
        membership ? rand_membership(f) : rand_tick(f);
    else if (r < 89)
        rand_partition(f);
    else if (r < 91) {
        trace_step(f, "heal");
        fx_heal(f);
    } else if (r < 93)
        rand_crash(f);
    else if (r < 95)
        rand_restart(f);
    else if (r < 96)
        rand_cut(f);
    else
        membership ? rand_membership(f) : rand_tick(f);
}

int fx_run_random(fx *f, int steps, bool membership)
{
    f->faults = true;
    for (int i = 0; i < steps && !f->failed; i++) {
        f->step++;
        random_step(f, membership);
        fx_check(f); /* so the run stops at the first violation */
    }
    f->faults = false;
    f->calm = false;
    return f->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* liveness                                                            */

static bool node_applied_marker(const fx_node *n, const fx_blob *marker)
{
    for (raft_index i = n->applied; i > n->snap.index; i--)
        if (n->sm[i - 1].b == marker)
            return true;
    /* under a snapshot taken after it was applied */
    for (raft_index i = n->snap.index; i > 0; i--)
        if (n->snap_sm[i - 1].b == marker)
            return true;
    return false;
}

/* Stops running nodes outside the leader's conf: raftkv stops a removed
 * node, and a removed node that never learnt it could disrupt forever. */
static void stop_non_members(fx *f, const raft_conf *c)
{
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = node_get(f, id);
        if (n && n->up && !raft_conf_has(c, id)) {
            trace_step(f, "settle: stop non-member %llu", (ull)id);
            node_stop(f, n);
        }
    }
}

/* The first running member that has not applied the marker, or 0. */
static raft_id marker_missing(fx *f, const raft_conf *c, const fx_blob *marker)
{
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = node_get(f, id);
        if (n && n->up && raft_conf_has(c, id) && !node_applied_marker(n, marker))
            return id;
    }
    return 0;
}

int fx_settle(fx *f, int max_ticks)
{
    if (f->failed)
        return -1;
    f->faults = false;
    fx_heal(f);
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = node_get(f, id);
        if (n && !n->up)
            node_start(f, n);
    }
    char text[48];
    snprintf(text, sizeof text, "settle-%llu", (ull)f->step);
    const fx_blob *marker = blob_intern(f, RAFT_ENTRY_NORMAL, (const uint8_t *)text,
                                        (uint32_t)strlen(text));
    raft_id proposed_to = 0, missing = 0;
    raft_term proposed_term = 0;
    bool pruned = false;
    for (int t = 0; t < max_ticks && !f->failed && marker; t++) {
        raft_id lid = fx_leader(f);
        fx_node *l = lid ? &f->nodes[lid] : NULL;
        if (l && (lid != proposed_to || raft_term_get(l->r) != proposed_term)) {
            proposed_to = lid;
            proposed_term = raft_term_get(l->r);
            int rc = fx_propose(f, lid, text);
            trace_step(f, "settle: propose %s on leader %llu -> %d", text, (ull)lid, rc);
        }
        if (l && node_applied_marker(l, marker)) {
            raft_conf c = *raft_conf_get(l->r);
            if (!pruned) {
                stop_non_members(f, &c);
                pruned = true;
            }
            missing = marker_missing(f, &c, marker);
            if (!missing)
                return fx_check(f);
        }
        fx_tick_all(f);
        fx_deliver(f, 100);
    }
    if (!f->failed)
        fx_fail(f, "liveness: %s within %d calm ticks (leader %llu, node %llu lacks %s)",
                missing ? "marker not applied everywhere" : "no leader committed a marker",
                max_ticks, (ull)fx_leader(f), (ull)missing, text);
    return -1;
}
