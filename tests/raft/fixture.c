/* fixture.c: the fixture's lifecycle and shared plumbing — fx_new/fx_free,
 * failure recording, allocation helpers, the seeded PRNG, interned entry
 * payloads, and the public manual-driving calls (tick, elect, leader).
 *
 * Must never: read a clock, keep global state, or use any randomness but
 * f->rng; it holds no Raft logic of its own (that is in fx_node.c).
 */
#include "fx_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void fx_fail(fx *f, const char *fmt, ...)
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
bool fx_grow(fx *f, void *pp, size_t *cap, size_t need, size_t elem)
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

fx_slot *fx_slots_dup(fx *f, const fx_slot *src, size_t n)
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

uint64_t fx_rng_below(fx *f, uint64_t n)
{
    return n ? rng_next(f) % n : 0;
}

bool fx_rng_chance(fx *f, double p)
{
    return p > 0 && (double)(rng_next(f) >> 11) * (1.0 / 9007199254740992.0) < p;
}

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

const fx_blob *fx_blob_intern(fx *f, uint8_t type, const uint8_t *d, uint32_t len)
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

const fx_blob *fx_blob_of(fx *f, const raft_entry *e)
{
    return fx_blob_intern(f, e->type, e->data, e->len);
}

const char *fx_blob_text(const fx_blob *b)
{
    return b->type == RAFT_ENTRY_CONF ? "<conf>" : b->len ? (const char *)b->data : "<noop>";
}

fx_node *fx_node_get(fx *f, raft_id id)
{
    if (id == 0 || id > FX_MAX_NODES || !f->nodes[id].exists)
        return NULL;
    return &f->nodes[id];
}

/* As raftkv's recovery bootstraps a new cluster: the log starts with one
 * committed ADD_VOTER entry per initial member (term 1), and a node starts
 * with no membership and builds it by applying them; a node that joins
 * later receives them too (or a snapshot holding their result). */
static void bootstrap_log(fx *f, fx_node *n)
{
    raft_entry es[FX_MAX_NODES];
    uint8_t data[FX_MAX_NODES][32];
    size_t k = (size_t)f->o.n_nodes;
    for (size_t i = 0; i < k; i++) {
        raft_conf_change cc = {.op = RAFT_CONF_ADD_VOTER, .id = (raft_id)(i + 1)};
        size_t len = raft_conf_change_encode(&cc, data[i], sizeof data[i]);
        es[i] = (raft_entry){.term = 1, .index = i + 1, .type = RAFT_ENTRY_CONF,
                             .len = (uint32_t)len, .data = data[i]};
    }
    fx_disk_append(f, n, es, k);
    raft_hard_state hs = {.term = 1, .vote = 0, .commit = k};
    fx_disk_save_hs(f, n, &hs);
    n->durable_commit = k;
}

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
    f->boot = boot;
    for (int i = 1; i <= f->o.n_nodes; i++) {
        fx_node *n = &f->nodes[i];
        n->id = (raft_id)i;
        n->exists = true;
        bootstrap_log(f, n); /* boot_conf stays empty: the log builds it */
        if (f->failed || fx_node_start(f, n)) {
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
        fx_node_free(&f->nodes[i]);
    for (size_t i = 0; i < f->n_q; i++)
        fx_qmsg_free(&f->q[i]);
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

raft *fx_raft(fx *f, raft_id id)
{
    fx_node *n = fx_node_get(f, id);
    return n && n->up ? n->r : NULL;
}

void fx_tick(fx *f, raft_id id)
{
    f->step++;
    fx_node_tick(f, fx_node_get(f, id));
}

void fx_tick_all(fx *f)
{
    f->step++;
    for (raft_id id = 1; id <= FX_MAX_NODES; id++)
        fx_node_tick(f, fx_node_get(f, id));
}

raft_id fx_leader(fx *f)
{
    raft_id best = 0;
    raft_term best_term = 0;
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = fx_node_get(f, id);
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

const char *fx_error(const fx *f)
{
    return f->failed ? f->err : "";
}

fx_stats fx_get_stats(const fx *f)
{
    return f->stats;
}

uint64_t fx_step_count(const fx *f)
{
    return f->step;
}
