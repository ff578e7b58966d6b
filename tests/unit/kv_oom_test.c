/* kv_oom_test: kv's reads and applies with each of SQLite's allocations
 * failed in turn (SQLite's allocator is this program's, set before SQLite
 * starts). A read must give the whole answer or an error, never part of
 * one, and leave its pooled connection fit for the next read. An apply
 * that fails must leave the store, once reopened, exactly as it was
 * before the command or exactly as after it (the node stops on such a
 * failure and replays the log from kv.db's applied index). Every other
 * read the API makes (auth, leases, history, hash, members...) gives its
 * answer or an internal error, never a refusal, a "not found" or a pass
 * of the server's making. A snapshot install that fails leaves the store
 * as it was or as the snapshot is, never a mix. */
#include "kv/kv.h"
#include "util/util.h"
#include "../test.h"
#include "kv_fixture.h"
#include "sqlite_oom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the store ---- */

static kvfx fx;

static int64_t apply_txn(const kv_txn *t)
{
    buf b;
    buf_init(&b);
    kv_result r;
    bool begin_ok = false, commit_ok = false;
    CHECK(kv_encode_txn(t, &b) == KV_OK);
    CHECK(kvfx_apply(&fx, &b, &r, &begin_ok, &commit_ok) == KV_OK && begin_ok && commit_ok);
    buf_free(&b);
    int64_t rev = r.revision;
    kv_result_free(&r);
    return rev;
}

static kv_span span_of(const char *key, const char *end)
{
    return (kv_span){(const uint8_t *)key, (uint32_t)strlen(key), end != NULL,
                     (const uint8_t *)end, end ? (uint32_t)strlen(end) : 0};
}

static void put(const char *key, const char *val)
{
    kv_op op = {.type = KV_OP_PUT, .span = span_of(key, NULL), .value = (const uint8_t *)val,
                .value_len = (uint32_t)strlen(val)};
    kv_txn t = {.n_success = 1, .success = &op};
    apply_txn(&t);
}

/* ---- reads ---- */

static bool same_kv(const kv_kv *a, const kv_kv *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0 &&
           a->value_len == b->value_len &&
           (!a->value_len || memcmp(a->value, b->value, a->value_len) == 0) &&
           a->create_revision == b->create_revision && a->mod_revision == b->mod_revision &&
           a->version == b->version && a->lease == b->lease;
}

static bool same_range(const kv_op_result *a, int64_t ra, const kv_op_result *b, int64_t rb)
{
    if (ra != rb || a->count != b->count || a->more != b->more || a->kvs.n != b->kvs.n)
        return false;
    for (size_t i = 0; i < a->kvs.n; i++)
        if (!same_kv(&a->kvs.items[i], &b->kvs.items[i]))
            return false;
    return true;
}

/* One range read with allocation n failed (n = 0: none); its code. */
static int read_with(long n, const kv_op *q, kv_op_result *out, int64_t *hdr, bool *hit)
{
    memset(out, 0, sizeof *out);
    *hdr = 0;
    sqlite_oom_arm(n);
    kv_conn *c = kv_reader_acquire(fx.k);
    int rc = c ? kv_range(c, q, out, hdr) : KV_ERR_INTERNAL;
    if (c)
        kv_reader_release(fx.k, c);
    *hit = sqlite_oom_disarm(n);
    return rc;
}

/* Fails each allocation of the read q in turn; the number that were hit. */
static long sweep_read(const char *what, const kv_op *q)
{
    kv_op_result want, got;
    int64_t want_rev, got_rev;
    bool hit;
    CHECK(read_with(0, q, &want, &want_rev, &hit) == KV_OK);
    long n = 1;
    for (;; n++) {
        int rc = read_with(n, q, &got, &got_rev, &hit);
        CHECK_MSG(rc == KV_OK ? same_range(&want, want_rev, &got, got_rev)
                              : rc == KV_ERR_INTERNAL && got.kvs.n == 0,
                  "%s, allocation %ld failed: rc %d, %zu kvs", what, n, rc, got.kvs.n);
        kv_list_free(&got.kvs);
        /* the connection went back to the pool: the next read is whole */
        bool unarmed;
        CHECK_MSG(read_with(0, q, &got, &got_rev, &unarmed) == KV_OK &&
                      same_range(&want, want_rev, &got, got_rev),
                  "%s: the read after allocation %ld failed differs", what, n);
        kv_list_free(&got.kvs);
        if (!hit)
            break;
    }
    kv_list_free(&want.kvs);
    return n - 1;
}

static void test_reads_out_of_memory(void)
{
    char key[32], val[200];
    memset(val, 'v', sizeof val - 1);
    val[sizeof val - 1] = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "oom/%03d", i);
        put(key, val);
    }
    int64_t mid = 0;
    {
        kv_op_result r;
        int64_t hdr;
        bool hit;
        kv_op q = {.type = KV_OP_RANGE, .span = span_of("oom/000", NULL)};
        CHECK(read_with(0, &q, &r, &hdr, &hit) == KV_OK);
        kv_list_free(&r.kvs);
        mid = hdr - 10;
    }
    for (int i = 0; i < 10; i++) { /* history for the read at an old revision */
        snprintf(key, sizeof key, "oom/%03d", i);
        put(key, "new");
    }
    kv_op one = {.type = KV_OP_RANGE, .span = span_of("oom/007", NULL)};
    kv_op all = {.type = KV_OP_RANGE, .span = span_of("oom/", "oom0")};
    kv_op limited = all, old = all, counted = all, keys = all;
    limited.limit = 5;
    old.rev = mid;
    counted.count_only = true;
    keys.keys_only = true;
    long hits = sweep_read("one key", &one) + sweep_read("a range of 40", &all) +
                sweep_read("a range with a limit", &limited) +
                sweep_read("a range at an old revision", &old) +
                sweep_read("count only", &counted) + sweep_read("keys only", &keys);
    printf("  %ld reads each ran out of memory once\n", hits);
    CHECK(hits > 20); /* the allocator is SQLite's: the sweep reached the reads */
}

/* ---- applies ---- */

/* What a store holds, as far as a failed apply could have touched it. */
typedef struct {
    uint32_t hash;
    int64_t hash_rev, compact_rev, revision;
    uint64_t index;
    size_t n_leases;
    int64_t lease_ids; /* their sum */
} state;

static bool read_state(kv *k, state *s)
{
    memset(s, 0, sizeof *s);
    uint64_t term;
    kv_applied(k, &s->index, &term);
    s->revision = kv_revision(k);
    kv_conn *c = kv_reader_acquire(k);
    kv_lease *ls = NULL;
    int64_t rev;
    bool ok = c && kv_hash(c, 0, &s->hash, &s->compact_rev, &s->hash_rev) == KV_OK &&
              kv_lease_list(c, &ls, &s->n_leases, &rev) == KV_OK;
    for (size_t i = 0; ok && i < s->n_leases; i++)
        s->lease_ids += ls[i].id;
    free(ls);
    if (c)
        kv_reader_release(k, c);
    return ok;
}

static bool same_state(const state *a, const state *b) { return memcmp(a, b, sizeof *a) == 0; }

/* What one armed apply reported. */
typedef struct {
    int rc, err, commit;
    int64_t revision;
    bool succeeded, hit;
} applied;

/* How a batch ends: committed alone (kv_apply_commit), or ended inside the
 * writer's open transaction and then flushed, as the node does under load
 * (kv_apply_end, kv_apply_flush). */
static bool batched;

/* Opens a copy of the template store, applies cmd as one batch with
 * allocation n failed (0: none), and reports; *before and *after get the
 * store's state around it (after: as reopened). */
static bool apply_with(const char *tmpl, long n, const buf *cmd, applied *out, state *before,
                       state *after)
{
    *out = (applied){0};
    kv *k = NULL;
    char err[256];
    if (!sqlite_oom_copy_db(tmpl, fx.path) || kv_open(fx.path, &k, err, sizeof err) != KV_OK ||
        !read_state(k, before))
        return false;
    kv_result res;
    memset(&res, 0, sizeof res);
    sqlite_oom_arm(n);
    out->rc = kv_apply_begin(k); /* failed: the node stops before applying */
    if (out->rc == KV_OK) {
        out->rc = kv_apply_cmd(k, cmd->data, cmd->len, &res);
        out->commit = !batched ? kv_apply_commit(k, before->index + 1, 1)
                      : out->rc != KV_OK ? out->rc /* the node stops before ending it */
                                         : kv_apply_end(k, before->index + 1, 1);
        if (batched && out->commit == KV_OK)
            out->commit = kv_apply_flush(k);
    }
    out->hit = sqlite_oom_disarm(n);
    out->err = res.err;
    out->revision = res.revision;
    out->succeeded = res.succeeded;
    kv_result_free(&res);
    kv_close(k); /* what it committed is all a restart finds */
    k = NULL;
    bool ok = kv_open(fx.path, &k, err, sizeof err) == KV_OK && read_state(k, after);
    kv_close(k);
    return ok;
}

/* Fails each allocation of applying cmd in turn, each time on a fresh
 * copy of tmpl; the number of allocations that were hit. */
static long sweep_apply(const char *what, const char *tmpl, const buf *cmd)
{
    applied want = {0}, got = {0};
    state before, after, s0, s1;
    CHECK(apply_with(tmpl, 0, cmd, &want, &before, &after));
    CHECK(want.rc == KV_OK && want.commit == KV_OK && after.index == before.index + 1);
    long n = 1;
    for (;; n++) {
        if (!apply_with(tmpl, n, cmd, &got, &s0, &s1)) {
            CHECK_MSG(false, "%s, allocation %ld: the store cannot be read back", what, n);
            break;
        }
        bool done = got.rc == KV_OK && got.commit == KV_OK;
        /* a replicated command's outcome never depends on memory: the same
         * answer, or an internal error that stops the node */
        CHECK_MSG(got.rc != KV_OK || (got.err == want.err && got.succeeded == want.succeeded),
                  "%s, allocation %ld: applied with err %d (without the failure: %d)", what, n,
                  got.err, want.err);
        CHECK_MSG(done ? same_state(&s1, &after) && got.revision == want.revision
                       : same_state(&s1, &before),
                  "%s, allocation %ld (rc %d, commit %d): the store holds neither the state "
                  "before nor after (index %llu, revision %lld)",
                  what, n, got.rc, got.commit, (unsigned long long)s1.index,
                  (long long)s1.revision);
        if (!got.hit)
            break;
    }
    return n - 1;
}

static void encode_put(buf *b, const char *key, const char *val, int64_t lease)
{
    kv_op op = {.type = KV_OP_PUT, .span = span_of(key, NULL), .value = (const uint8_t *)val,
                .value_len = (uint32_t)strlen(val), .lease = lease, .prev_kv = true};
    kv_txn t = {.n_success = 1, .success = &op};
    CHECK(kv_encode_txn(&t, b) == KV_OK);
}

/* ---- auth: root, and alice whose role "app" may write under oom/ ---- */

static uint64_t alice_gen, root_gen;
static char tmpl[160]; /* the applies' store, which the other reads read too */

static void auth_apply(kv_auth_cmd c)
{
    buf b;
    buf_init(&b);
    kv_result r;
    bool begin_ok, commit_ok;
    CHECK(kv_encode_auth(&c, &b) == KV_OK);
    CHECK(kvfx_apply(&fx, &b, &r, &begin_ok, &commit_ok) == KV_OK && r.err == KV_OK);
    kv_result_free(&r);
    buf_free(&b);
}

static void auth_setup(void)
{
    static const uint8_t secret[KV_AUTH_SECRET_LEN] = {7, 7, 7};
    auth_apply((kv_auth_cmd){.op = KV_AUTH_USER_ADD, .name = "root", .arg = "$y$fake-root"});
    auth_apply((kv_auth_cmd){.op = KV_AUTH_ROLE_ADD, .name = "root"});
    auth_apply((kv_auth_cmd){.op = KV_AUTH_USER_GRANT, .name = "root", .arg = "root"});
    auth_apply((kv_auth_cmd){.op = KV_AUTH_USER_ADD, .name = "alice", .arg = "$y$fake-alice"});
    auth_apply((kv_auth_cmd){.op = KV_AUTH_ROLE_ADD, .name = "app"});
    auth_apply((kv_auth_cmd){.op = KV_AUTH_ROLE_GRANT, .name = "app",
                             .span = span_of("oom/", "oom0"), .perm = KV_PERM_READWRITE});
    auth_apply((kv_auth_cmd){.op = KV_AUTH_USER_GRANT, .name = "alice", .arg = "app"});
    auth_apply((kv_auth_cmd){.op = KV_AUTH_ENABLE, .secret = secret,
                             .secret_len = sizeof secret});
    kv_conn *c = kv_reader_acquire(fx.k);
    char *hash = NULL;
    CHECK(c && kv_auth_user_get(c, "alice", &hash, &alice_gen) == KV_OK);
    free(hash);
    hash = NULL;
    CHECK(c && kv_auth_user_get(c, "root", &hash, &root_gen) == KV_OK);
    free(hash);
    if (c)
        kv_reader_release(fx.k, c);
}

/* A put of key as alice at generation gen. */
static void encode_as_alice(buf *out, const char *key, uint64_t gen)
{
    buf inner;
    buf_init(&inner);
    encode_put(&inner, key, "as alice", 0);
    CHECK(kv_encode_as("alice", gen, inner.data, inner.len, out) == KV_OK);
    buf_free(&inner);
}

static void test_applies_out_of_memory(void)
{
    /* the template: fx's store as the reads left it, plus a lease with keys */
    buf b;
    buf_init(&b);
    CHECK(kv_encode_lease_grant(77, 600, &b) == KV_OK);
    kv_result r;
    bool begin_ok, commit_ok;
    CHECK(kvfx_apply(&fx, &b, &r, &begin_ok, &commit_ok) == KV_OK && r.err == KV_OK);
    kv_result_free(&r);
    buf_reset(&b);
    encode_put(&b, "leased/a", "1", 77);
    encode_put(&b, "leased/b", "2", 77);
    /* two commands in one buf would be one garbage command: apply each */
    buf_free(&b);
    buf_init(&b);
    encode_put(&b, "leased/a", "1", 77);
    CHECK(kvfx_apply(&fx, &b, &r, &begin_ok, &commit_ok) == KV_OK && r.err == KV_OK);
    kv_result_free(&r);
    buf_reset(&b);
    encode_put(&b, "leased/b", "2", 77);
    CHECK(kvfx_apply(&fx, &b, &r, &begin_ok, &commit_ok) == KV_OK && r.err == KV_OK);
    kv_result_free(&r);
    buf_reset(&b);
    auth_setup();
    kv_close(fx.k);
    fx.k = NULL;
    snprintf(tmpl, sizeof tmpl, "%s/template.db", fx.dir);
    CHECK(sqlite_oom_copy_file(fx.path, tmpl));

    buf_free(&b);
    enum { N_CMDS = 9 };
    static const char *const what[N_CMDS] = {
        "a put over a key", "a put of a new key with a lease",
        "a txn: compare, put, delete of 10, range", "a lease revoke deleting its keys",
        "a revoke of an unknown lease (refused)", "a compaction",
        "a put as a user its role allows", "a put as a user outside its role (refused)",
        "a put as a user with an old generation (refused)"};
    buf cmds[N_CMDS];
    for (int c = 0; c < N_CMDS; c++)
        buf_init(&cmds[c]);
    encode_put(&cmds[0], "oom/003", "a new value", 0);
    encode_put(&cmds[1], "brand-new-key", "v", 77);
    kv_compare cmp = {.key = (const uint8_t *)"oom/001", .key_len = 7, .target = KV_CMP_VERSION,
                      .result = KV_CMP_GREATER, .number = 0};
    kv_op ops[] = {
        {.type = KV_OP_PUT, .span = span_of("oom/001", NULL), .value = (const uint8_t *)"x",
         .value_len = 1},
        {.type = KV_OP_DELETE, .span = span_of("oom/02", "oom/03"), .prev_kv = true},
        {.type = KV_OP_RANGE, .span = span_of("oom/", "oom0"), .limit = 3},
    };
    kv_txn t = {.n_compare = 1, .compare = &cmp, .n_success = 3, .success = ops,
                .n_failure = 1, .failure = &ops[2]};
    CHECK(kv_encode_txn(&t, &cmds[2]) == KV_OK);
    CHECK(kv_encode_lease_revoke(77, &cmds[3]) == KV_OK);
    CHECK(kv_encode_lease_revoke(78, &cmds[4]) == KV_OK);
    CHECK(kv_encode_compact(30, &cmds[5]) == KV_OK);
    encode_as_alice(&cmds[6], "oom/004", alice_gen);
    encode_as_alice(&cmds[7], "brand-new-key", alice_gen);
    encode_as_alice(&cmds[8], "oom/004", alice_gen + 1);
    for (int mode = 0; mode < 2; mode++) {
        batched = mode == 1;
        long hits = 0;
        for (int c = 0; c < N_CMDS; c++)
            if (!batched || c == 0 || c == 2 || c == 3) /* batched: put, txn, revoke */
                hits += sweep_apply(what[c], tmpl, &cmds[c]);
        printf("  %ld applies (%s) each ran out of memory once\n", hits,
               batched ? "ended, then flushed" : "committed alone");
        CHECK(hits > 100);
    }
    for (int c = 0; c < N_CMDS; c++)
        buf_free(&cmds[c]);
    CHECK(kvfx_reopen(&fx));
}

/* ---- the other reads: what a request is told ----
 *
 * Each read the API makes besides ranges, on the applies' template store
 * (keys, history, lease 77 with two keys, auth with root and alice): the
 * answer it gives without a failure, or KV_ERR_INTERNAL. Anything else is
 * an answer of the server's making: "no such lease" or "no such user" (a
 * login counts that as a wrong password), a 401 or 403, a pass. */

typedef struct read_probe read_probe;
struct read_probe {
    const char *what;
    int want; /* the code without a failure */
    int (*run)(kv_conn *c, const read_probe *p, uint64_t *digest);
    const char *name, *key; /* a user or role; a key or prefix */
    int64_t num;            /* a lease id, a revision, a generation's offset */
    int perm;               /* a permission, or which auth listing */
};

/* A digest of what a read returned (FNV-1a over its fields). */
static void mix(uint64_t *h, const void *p, size_t n) { *h = fnv64_more(*h, p, n); }

static void mix_i(uint64_t *h, int64_t v) { mix(h, &v, sizeof v); }

static void mix_kv(uint64_t *h, const kv_kv *item)
{
    mix(h, item->key, item->key_len);
    mix(h, item->value, item->value_len);
    mix_i(h, item->mod_revision);
    mix_i(h, item->version);
}

static int run_user_get(kv_conn *c, const read_probe *p, uint64_t *d)
{
    char *hash = NULL;
    uint64_t gen = 0;
    int rc = kv_auth_user_get(c, p->name, &hash, &gen);
    if (rc == KV_OK && hash)
        mix(d, hash, strlen(hash));
    mix_i(d, (int64_t)gen);
    free(hash);
    return rc;
}

static int run_secret(kv_conn *c, const read_probe *p, uint64_t *d)
{
    uint8_t key[64];
    size_t n = 0;
    int rc = kv_auth_secret(c, key, sizeof key, &n);
    mix(d, key, rc == KV_OK ? n : 0);
    return rc;
}

static int run_check(kv_conn *c, const read_probe *p, uint64_t *d)
{
    uint64_t gen = (strcmp(p->name, "root") == 0 ? root_gen : alice_gen) + (uint64_t)p->num;
    kv_span sp = span_of(p->key ? p->key : "", NULL);
    return kv_auth_check(c, p->name, gen, p->key ? &sp : NULL, p->perm);
}

static int run_auth_list(kv_conn *c, const read_probe *p, uint64_t *d)
{
    kv_auth_row *rows = NULL;
    size_t n = 0;
    int rc = kv_auth_list(c, p->perm, p->name, &rows, &n);
    for (size_t i = 0; rc == KV_OK && i < n; i++) {
        mix(d, rows[i].name, rows[i].name ? strlen(rows[i].name) : 0);
        mix(d, rows[i].role, rows[i].role ? strlen(rows[i].role) : 0);
        mix(d, rows[i].key, rows[i].key_len);
        mix_i(d, rows[i].perm);
    }
    mix_i(d, (int64_t)n);
    kv_auth_rows_free(rows, n);
    return rc;
}

static int run_lease_get(kv_conn *c, const read_probe *p, uint64_t *d)
{
    int64_t ttl = 0, rev = 0;
    kv_list keys = {0};
    int rc = kv_lease_get(c, p->num, &ttl, &keys, &rev);
    for (size_t i = 0; i < keys.n; i++)
        mix_kv(d, &keys.items[i]);
    mix_i(d, ttl);
    mix_i(d, rev);
    kv_list_free(&keys);
    return rc;
}

static int run_lease_list(kv_conn *c, const read_probe *p, uint64_t *d)
{
    kv_lease *ls = NULL;
    size_t n = 0;
    int64_t rev = 0;
    int rc = kv_lease_list(c, &ls, &n, &rev);
    for (size_t i = 0; rc == KV_OK && i < n; i++)
        mix(d, &ls[i], sizeof ls[i]);
    mix_i(d, rev);
    free(ls);
    return rc;
}

static int run_history(kv_conn *c, const read_probe *p, uint64_t *d)
{
    kv_event_list ev = {0};
    int64_t next = 0;
    kv_span sp = span_of(p->key, "oom0");
    int rc = kv_history(c, &sp, p->num, 30, true, &ev, &next);
    for (size_t i = 0; rc == KV_OK && i < ev.n; i++) {
        mix_i(d, ev.items[i].type);
        mix_kv(d, &ev.items[i].kv);
        if (ev.items[i].has_prev)
            mix_kv(d, &ev.items[i].prev_kv);
    }
    mix_i(d, (int64_t)ev.n);
    mix_i(d, next);
    kv_event_list_free(&ev);
    return rc;
}

static int run_hash(kv_conn *c, const read_probe *p, uint64_t *d)
{
    uint32_t h = 0;
    int64_t compact = 0, rev = 0;
    int rc = kv_hash(c, 0, &h, &compact, &rev);
    mix_i(d, h);
    mix_i(d, compact);
    mix_i(d, rev);
    return rc;
}

static int run_revisions(kv_conn *c, const read_probe *p, uint64_t *d)
{
    int64_t rev = 0, compact = 0;
    int rc = kv_read_revisions(c, &rev, &compact);
    mix_i(d, rev);
    mix_i(d, compact);
    return rc;
}

/* The cluster's state as the API lists it: alarms, members, removed ids. */
static int run_cluster(kv_conn *c, const read_probe *p, uint64_t *d)
{
    kv_alarm *alarms = NULL;
    kv_member *m = NULL;
    uint64_t *gone = NULL;
    size_t na = 0, nm = 0, ng = 0;
    int rc = kv_alarms_list(c, &alarms, &na);
    if (rc == KV_OK)
        rc = kv_members(c, &m, &nm);
    if (rc == KV_OK)
        rc = kv_removed_members(c, &gone, &ng);
    mix_i(d, (int64_t)na);
    mix_i(d, (int64_t)nm);
    mix_i(d, (int64_t)ng);
    free(alarms);
    kv_members_free(m, nm);
    free(gone);
    return rc;
}

static int run_idem(kv_conn *c, const read_probe *p, uint64_t *d)
{
    uint64_t member = 0;
    int rc = kv_idem_find_member(c, "no-such-key", 1, 1000, &member);
    mix_i(d, (int64_t)member);
    return rc;
}

/* One probe with allocation n failed (0: none): its code and digest. */
static int probe_with(long n, const read_probe *p, uint64_t *digest, bool *hit)
{
    *digest = FNV64_INIT;
    sqlite_oom_arm(n);
    kv_conn *c = kv_reader_acquire(fx.k);
    int rc = c ? p->run(c, p, digest) : KV_ERR_INTERNAL;
    if (c)
        kv_reader_release(fx.k, c);
    *hit = sqlite_oom_disarm(n);
    return rc;
}

static void test_other_reads_out_of_memory(void)
{
    kv_close(fx.k);
    fx.k = NULL;
    CHECK(sqlite_oom_copy_db(tmpl, fx.path) && kvfx_reopen(&fx));
    const read_probe probes[] = {
        {"alice's hash", KV_OK, run_user_get, "alice", NULL, 0, 0},
        {"an unknown user's hash", KV_ERR_NOT_FOUND, run_user_get, "mallory", NULL, 0, 0},
        {"the signing key", KV_OK, run_secret, NULL, NULL, 0, 0},
        {"alice writes under oom/", KV_OK, run_check, "alice", "oom/x", 0, KV_PERM_WRITE},
        {"alice writes elsewhere", KV_ERR_PERMISSION, run_check, "alice", "zzz", 0, KV_PERM_WRITE},
        {"alice as root", KV_ERR_PERMISSION, run_check, "alice", NULL, 0, KV_PERM_ROOT},
        {"root as root", KV_OK, run_check, "root", NULL, 0, KV_PERM_ROOT},
        {"alice at an old generation", KV_ERR_AUTH, run_check, "alice", NULL, 1, KV_PERM_READ},
        {"the users", KV_OK, run_auth_list, NULL, NULL, 0, KV_AUTH_LIST_USERS},
        {"one user", KV_OK, run_auth_list, "alice", NULL, 0, KV_AUTH_LIST_USERS},
        {"one role", KV_OK, run_auth_list, "app", NULL, 0, KV_AUTH_LIST_ROLES},
        {"a lease with keys", KV_OK, run_lease_get, NULL, NULL, 77, 0},
        {"an unknown lease", KV_ERR_NOT_FOUND, run_lease_get, NULL, NULL, 78, 0},
        {"the leases", KV_OK, run_lease_list, NULL, NULL, 0, 0},
        {"history of oom/ from revision 1", KV_OK, run_history, NULL, "oom/", 1, 0},
        {"the hash", KV_OK, run_hash, NULL, NULL, 0, 0},
        {"the revisions", KV_OK, run_revisions, NULL, NULL, 0, 0},
        {"the alarms, the members and the removed", KV_OK, run_cluster, NULL, NULL, 0, 0},
        {"an unknown idempotency key", 0, run_idem, NULL, NULL, 0, 0},
    };
    long hits = 0;
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        const read_probe *p = &probes[i];
        uint64_t want, got;
        bool hit;
        CHECK_MSG(probe_with(0, p, &want, &hit) == p->want, "%s: not %d without a failure",
                  p->what, p->want);
        for (long n = 1;; n++, hits++) {
            int rc = probe_with(n, p, &got, &hit);
            CHECK_MSG((rc == p->want && got == want) || rc == KV_ERR_INTERNAL,
                      "%s, allocation %ld failed: %d%s", p->what, n, rc,
                      rc == p->want ? " with another answer" : "");
            if (!hit)
                break;
        }
    }
    printf("  %ld other reads each ran out of memory once\n", hits);
    CHECK(hits > 100);
}

/* ---- a snapshot installed out of memory ---- */

/* Opens a copy of db, restores the snapshot file snap into it with
 * allocation n failed (0: none); the store's state before and, reopened,
 * after. */
static int restore_with(const char *db, const char *snap, long n, state *before, state *after,
                        bool *hit)
{
    kv *k = NULL;
    char err[256];
    *hit = false;
    if (!sqlite_oom_copy_db(db, fx.path) || kv_open(fx.path, &k, err, sizeof err) != KV_OK ||
        !read_state(k, before)) {
        kv_close(k);
        return 99;
    }
    sqlite_oom_arm(n);
    int rc = kv_restore(k, snap, err, sizeof err);
    *hit = sqlite_oom_disarm(n);
    kv_close(k); /* what it committed is all a restart finds */
    k = NULL;
    bool ok = kv_open(fx.path, &k, err, sizeof err) == KV_OK && read_state(k, after);
    kv_close(k);
    return ok ? rc : 99;
}

/* A member behind installs the applies' template as a snapshot. A failed
 * install stops the node, which installs it again at restart: the store
 * must then hold exactly its own state or exactly the snapshot's, never
 * a mix (kv_restore copies with SQLite's backup API in one transaction). */
static void test_restore_out_of_memory(void)
{
    char snap[160], behind[160];
    snprintf(snap, sizeof snap, "%s/snap.db", fx.dir);
    snprintf(behind, sizeof behind, "%s/behind.db", fx.dir);
    kv_close(fx.k);
    fx.k = NULL;
    state want, own, got;
    CHECK(sqlite_oom_copy_db(tmpl, fx.path) && kvfx_reopen(&fx));
    CHECK(kvfx_snapshot(&fx, snap, NULL) == KV_OK && read_state(fx.k, &want));
    /* the member's own store: older, with writes the snapshot lacks */
    kv_close(fx.k);
    fx.k = NULL;
    CHECK(sqlite_oom_copy_db(tmpl, fx.path) && kvfx_reopen(&fx));
    fx.index = want.index - 30;
    put("behind/a", "1");
    put("behind/b", "2");
    kv_close(fx.k);
    fx.k = NULL;
    CHECK(sqlite_oom_copy_file(fx.path, behind));
    bool hit;
    CHECK(restore_with(behind, snap, 0, &own, &got, &hit) == KV_OK && same_state(&got, &want) &&
          !same_state(&own, &want));
    /* every allocation up to 200, then every 7th: past the set-up, the
     * checks of each row repeat the same few allocations */
    long n = 1, tries = 0;
    for (;; n += n < 200 ? 1 : 7, tries++) {
        int rc = restore_with(behind, snap, n, &own, &got, &hit);
        CHECK_MSG(rc != 99, "allocation %ld: the store cannot be read back", n);
        CHECK_MSG(rc == KV_OK ? same_state(&got, &want)
                              : same_state(&got, &own) || same_state(&got, &want),
                  "allocation %ld (rc %d): the store holds neither its own state nor the "
                  "snapshot's (index %llu, revision %lld)",
                  n, rc, (unsigned long long)got.index, (long long)got.revision);
        if (!hit || rc == 99)
            break;
    }
    printf("  %ld installs each ran out of memory once\n", tries);
    CHECK(tries > 20);
    CHECK(kvfx_reopen(&fx));
}

int main(void)
{
    if (!sqlite_oom_install())
        return 1;
    kvfx_open(&fx, "kv_oom_test");
    RUN(test_reads_out_of_memory);
    RUN(test_applies_out_of_memory);
    RUN(test_other_reads_out_of_memory); /* after: it reads the applies' template */
    RUN(test_restore_out_of_memory);
    kvfx_close(&fx);
    TEST_MAIN_END();
}
