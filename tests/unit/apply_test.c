/* apply_test: committed entries through the node's apply path
 * (node_apply_batch) into a real kv in a fresh temp dir — normal entries
 * change kv and answer this node's waiters with their results, only after
 * the batch reached kv.db; another node's entries answer nobody here; a
 * conf entry records the member in kv, reaches the membership hook with
 * its URL and answers its waiter; a lease grant moves the lease clock;
 * unreadable entries are skipped; a batch that cannot begin stops the
 * node and answers nobody. */
#include "../test.h"
#include "kv_fixture.h"
#include "server/apply.h"
#include "util/failpoint.h"
#include "server/envelope.h"

#include <stdlib.h>
#include <string.h>

#define SELF 1

/* ---- a minimal environment: recording hooks, answers counted ---- */

typedef struct {
    kvfx fx;
    waiters *w;
    lease_clock leases;
    node_apply_env env;
    int batches;            /* batch_applied calls */
    size_t batch_cnt;
    int answers_at_batch;   /* answers given before batch_applied ran */
    int answers;            /* every callback, over all requests */
    int fatals;
    int fatal_code;
    char fatal_what[128];
    int confs;
    raft_conf_change last_cc;
    char last_url[128];
    bool last_url_null;
    buf bufs[16];           /* entry bytes, kept until fx_close */
    size_t n_bufs;
} fixture;

typedef struct {
    fixture *f;
    int calls;
    int status;
    int64_t revision; /* of the result, for writes */
    bool had_res;
} answer;

static void on_write(void *ud, int status, kv_result *res)
{
    answer *a = ud;
    a->f->answers++;
    a->calls++;
    a->status = status;
    a->had_res = res != NULL;
    if (res) {
        a->revision = res->revision;
        kv_result_free(res);
        free(res);
    }
}

static void on_done(void *ud, int status)
{
    answer *a = ud;
    a->f->answers++;
    a->calls++;
    a->status = status;
}

static void hook_conf(void *ud, const raft_conf_change *cc, const char *url)
{
    fixture *f = ud;
    f->confs++;
    f->last_cc = *cc;
    f->last_url_null = url == NULL;
    snprintf(f->last_url, sizeof f->last_url, "%s", url ? url : "");
}

static void hook_batch(void *ud, size_t cnt)
{
    fixture *f = ud;
    f->batches++;
    f->batch_cnt = cnt;
    f->answers_at_batch = f->answers;
}

static void hook_fatal(void *ud, int code, const char *what)
{
    fixture *f = ud;
    f->fatals++;
    f->fatal_code = code;
    snprintf(f->fatal_what, sizeof f->fatal_what, "%s", what);
}

static void fx_open(fixture *f)
{
    memset(f, 0, sizeof *f);
    kvfx_open(&f->fx, "apply_test");
    f->w = calloc(1, sizeof *f->w);
    if (!f->w || lease_clock_init(&f->leases) < 0) {
        fprintf(stderr, "FAIL fixture: out of memory\n");
        exit(1);
    }
    f->env = (node_apply_env){.kv = f->fx.k, .self = SELF, .w = f->w, .leases = &f->leases,
                              .ud = f, .conf_applied = hook_conf, .batch_applied = hook_batch,
                              .fatal = hook_fatal};
}

static void fx_close(fixture *f)
{
    CHECK(f->w->all == NULL); /* every waiter was answered or taken */
    waiters_expire(f->w, 0, true, NODE_ERR_STOPPING);
    free(f->w);
    lease_clock_destroy(&f->leases);
    for (size_t i = 0; i < f->n_bufs; i++)
        buf_free(&f->bufs[i]);
    kvfx_close(&f->fx);
}

/* ---- entries ---- */

static buf *fx_buf(fixture *f)
{
    if (f->n_bufs == sizeof f->bufs / sizeof *f->bufs) {
        fprintf(stderr, "FAIL fixture: too many entries\n");
        exit(1);
    }
    buf *b = &f->bufs[f->n_bufs++];
    buf_init(b);
    return b;
}

static raft_entry entry_of(uint64_t index, uint8_t type, const buf *b)
{
    return (raft_entry){.term = 2, .index = index, .type = type, .len = (uint32_t)b->len,
                        .data = b->data, .crc = crc32c(0, b->data, b->len)};
}

/* A normal entry: put key=val, proposed by origin under seq. */
static raft_entry put_entry(fixture *f, uint64_t index, uint64_t origin, uint64_t seq,
                            const char *key, const char *val)
{
    kv_op op = {.type = KV_OP_PUT,
                .span = {(const uint8_t *)key, (uint32_t)strlen(key), false, NULL, 0},
                .value = (const uint8_t *)val, .value_len = (uint32_t)strlen(val)};
    kv_txn t = {.n_success = 1, .success = &op};
    buf cmd;
    buf_init(&cmd);
    buf *e = fx_buf(f);
    CHECK(kv_encode_txn(&t, &cmd) == KV_OK);
    CHECK(envelope_wrap(e, origin, seq, cmd.data, cmd.len) == 0);
    buf_free(&cmd);
    return entry_of(index, RAFT_ENTRY_NORMAL, e);
}

/* A conf entry as membership.c encodes it: the URL in the envelope. */
static raft_entry conf_entry(fixture *f, uint64_t index, uint8_t op, uint64_t id,
                             uint64_t origin, uint64_t seq, const char *url)
{
    buf ctx;
    buf_init(&ctx);
    CHECK(envelope_wrap(&ctx, origin, seq, url, strlen(url)) == 0);
    raft_conf_change cc = {.op = op, .id = id, .ctx_len = (uint32_t)ctx.len, .ctx = ctx.data};
    size_t sz = raft_conf_change_size(&cc);
    buf *e = fx_buf(f);
    CHECK(buf_reserve(e, sz) == 0 && raft_conf_change_encode(&cc, e->data, sz) == sz);
    e->len = sz;
    buf_free(&ctx);
    return entry_of(index, RAFT_ENTRY_CONF, e);
}

/* Registers a waiter for seq, as requests.c does once it proposed. */
static void wait_for(fixture *f, uint64_t seq, answer *a, bool write)
{
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        fprintf(stderr, "FAIL out of memory\n");
        exit(1);
    }
    buf_init(&p->entry);
    p->seq = seq;
    p->deadline = UINT64_MAX;
    p->proposed = true;
    p->ud = a;
    a->f = f;
    if (write)
        p->wcb = on_write;
    else
        p->dcb = on_done;
    waiters_add(f->w, p);
}

/* ---- reading kv back ---- */

/* The value of key, or "" when missing; *mod gets its mod revision. */
static const char *get(fixture *f, const char *key, char *val, size_t cap, int64_t *mod)
{
    kv_op q = {.type = KV_OP_RANGE,
               .span = {(const uint8_t *)key, (uint32_t)strlen(key), false, NULL, 0}};
    kv_op_result r;
    int64_t hdr;
    val[0] = '\0';
    *mod = 0;
    kv_conn *c = kv_reader_acquire(f->fx.k);
    CHECK(c != NULL);
    if (!c)
        return val;
    if (kv_range(c, &q, &r, &hdr) == KV_OK) {
        if (r.kvs.n == 1 && r.kvs.items[0].value_len < cap) {
            memcpy(val, r.kvs.items[0].value, r.kvs.items[0].value_len);
            val[r.kvs.items[0].value_len] = '\0';
            *mod = r.kvs.items[0].mod_revision;
        }
        kv_list_free(&r.kvs);
    }
    kv_reader_release(f->fx.k, c);
    return val;
}

static bool value_is(fixture *f, const char *key, const char *want, int64_t want_mod)
{
    char val[64];
    int64_t mod;
    get(f, key, val, sizeof val, &mod);
    return strcmp(val, want) == 0 && mod == want_mod;
}

static bool applied_is(fixture *f, uint64_t index)
{
    uint64_t i, t;
    kv_applied(f->fx.k, &i, &t);
    return i == index && t == 2;
}

/* ---- cases ---- */

static void test_normal_entries_answer_waiters(void)
{
    fixture f;
    fx_open(&f);
    answer a10 = {0}, a11 = {0};
    wait_for(&f, 10, &a10, true);
    wait_for(&f, 11, &a11, true);
    buf noop;
    buf_init(&noop);
    raft_entry ents[4] = {
        entry_of(1, RAFT_ENTRY_NORMAL, &noop), /* a new leader's empty entry */
        put_entry(&f, 2, SELF, 10, "a", "1"),
        put_entry(&f, 3, SELF + 1, 11, "b", "2"), /* another node's seq 11 */
        put_entry(&f, 4, SELF, 11, "c", "3"),
    };
    node_apply_batch(&f.env, ents, 4);
    CHECK(f.fatals == 0 && f.batches == 1 && f.batch_cnt == 4);
    CHECK(f.answers_at_batch == 0); /* nobody answered before the batch was in */
    CHECK(a10.calls == 1 && a10.status == NODE_OK && a10.had_res && a10.revision == 2);
    CHECK(a11.calls == 1 && a11.status == NODE_OK && a11.had_res && a11.revision == 4);
    CHECK(kv_revision(f.fx.k) == 4 && applied_is(&f, 4));
    CHECK(value_is(&f, "a", "1", 2) && value_is(&f, "b", "2", 3) && value_is(&f, "c", "3", 4));
    fx_close(&f);
}

/* A member re-proposed what it forwarded when the leader changed; the
 * first copy had made it after all (a duplicated message), and another
 * forwarded write was lost with the old leader (only its re-proposal
 * arrives). Each is applied once; the waiter is answered by the first. */
static void test_reproposed_entries_apply_once(void)
{
    fixture f;
    fx_open(&f);
    answer a20 = {0}, a21 = {0};
    wait_for(&f, 20, &a20, true);
    wait_for(&f, 21, &a21, true);
    raft_entry first[2] = {
        put_entry(&f, 1, SELF, 20, "x", "once"),
        put_entry(&f, 2, SELF + 1, 7, "y", "other"),
    };
    node_apply_batch(&f.env, first, 2);
    CHECK(a20.calls == 1 && a20.revision == 2 && kv_revision(f.fx.k) == 3);
    raft_entry again[4] = {
        put_entry(&f, 3, SELF, 20, "x", "once"),      /* the duplicate: skipped */
        put_entry(&f, 4, SELF, 21, "z", "lost-then-reproposed"),
        put_entry(&f, 5, SELF, 21, "z", "lost-then-reproposed"), /* and its twin */
        put_entry(&f, 6, SELF + 1, 7, "y", "other"),   /* another member's duplicate */
    };
    node_apply_batch(&f.env, again, 4);
    CHECK(f.fatals == 0 && applied_is(&f, 6));
    CHECK(a20.calls == 1 && a21.calls == 1 && a21.status == NODE_OK && a21.revision == 4);
    CHECK(kv_revision(f.fx.k) == 4); /* one new revision: z's */
    CHECK(value_is(&f, "x", "once", 2) && value_is(&f, "y", "other", 3) &&
          value_is(&f, "z", "lost-then-reproposed", 4));
    /* the record survives a restart (it is kv state) */
    kv_close(f.fx.k);
    CHECK(kvfx_reopen(&f.fx));
    f.env.kv = f.fx.k;
    raft_entry late = put_entry(&f, 7, SELF, 21, "z", "lost-then-reproposed");
    node_apply_batch(&f.env, &late, 1);
    CHECK(kv_revision(f.fx.k) == 4 && applied_is(&f, 7));
    fx_close(&f);
}

static void test_other_nodes_entries_answer_nobody(void)
{
    fixture f;
    fx_open(&f);
    answer a = {0};
    wait_for(&f, 5, &a, true);
    raft_entry e = put_entry(&f, 1, SELF + 2, 5, "k", "v");
    node_apply_batch(&f.env, &e, 1);
    CHECK(f.batches == 1 && a.calls == 0 && value_is(&f, "k", "v", 2));
    pending *p = waiters_take(f.w, 5); /* still waiting for its own entry */
    CHECK(p != NULL);
    if (p)
        waiters_fail_pending(p, NODE_ERR_TIMEOUT);
    CHECK(a.calls == 1 && a.status == NODE_ERR_TIMEOUT);
    fx_close(&f);
}

static bool member_is(fixture *f, uint64_t id, const char *url, bool *removed)
{
    kv_conn *c = kv_reader_acquire(f->fx.k);
    kv_member *m = NULL;
    size_t n = 0;
    uint64_t *gone = NULL;
    size_t n_gone = 0;
    bool found = false;
    *removed = false;
    if (c && kv_members(c, &m, &n) == KV_OK)
        for (size_t i = 0; i < n; i++)
            found |= m[i].id == id && strcmp(m[i].peer_url, url) == 0 && !m[i].is_learner;
    if (c && kv_removed_members(c, &gone, &n_gone) == KV_OK)
        for (size_t i = 0; i < n_gone; i++)
            *removed |= gone[i] == id;
    kv_members_free(m, n);
    free(gone);
    if (c)
        kv_reader_release(f->fx.k, c);
    return found;
}

static void test_conf_entries(void)
{
    fixture f;
    fx_open(&f);
    answer add = {0};
    wait_for(&f, 20, &add, false);
    raft_entry e1 = conf_entry(&f, 1, RAFT_CONF_ADD_VOTER, 4, SELF, 20, "http://127.0.0.1:4004");
    node_apply_batch(&f.env, &e1, 1);
    bool removed;
    CHECK(f.fatals == 0 && f.batches == 1 && f.confs == 1);
    CHECK(f.last_cc.op == RAFT_CONF_ADD_VOTER && f.last_cc.id == 4 && !f.last_url_null);
    CHECK(strcmp(f.last_url, "http://127.0.0.1:4004") == 0);
    CHECK(add.calls == 1 && add.status == NODE_OK && f.answers_at_batch == 0);
    CHECK(member_is(&f, 4, "http://127.0.0.1:4004", &removed) && !removed);
    CHECK(applied_is(&f, 1));
    /* a removal proposed elsewhere (seq 0: nobody waits) */
    raft_entry e2 = conf_entry(&f, 2, RAFT_CONF_REMOVE, 4, SELF + 1, 0, "");
    node_apply_batch(&f.env, &e2, 1);
    CHECK(f.confs == 2 && f.last_cc.op == RAFT_CONF_REMOVE && f.last_cc.id == 4);
    CHECK(!member_is(&f, 4, "http://127.0.0.1:4004", &removed) && removed);
    CHECK(add.calls == 1 && applied_is(&f, 2));
    fx_close(&f);
}

static void test_lease_grant_moves_clock(void)
{
    fixture f;
    fx_open(&f);
    buf cmd;
    buf_init(&cmd);
    CHECK(kv_encode_lease_grant(77, 30, &cmd) == KV_OK);
    buf *b = fx_buf(&f);
    CHECK(envelope_wrap(b, SELF + 1, 3, cmd.data, cmd.len) == 0);
    buf_free(&cmd);
    raft_entry e = entry_of(1, RAFT_ENTRY_NORMAL, b);
    CHECK(lease_clock_remaining_ms(&f.leases, 77, now_ms()) == -1);
    node_apply_batch(&f.env, &e, 1);
    int64_t left = lease_clock_remaining_ms(&f.leases, 77, now_ms());
    CHECK_MSG(left > 25000 && left <= 30000, "%lld ms left", (long long)left);
    fx_close(&f);
}

static void test_unreadable_entries_skipped(void)
{
    fixture f;
    fx_open(&f);
    answer a = {0};
    wait_for(&f, 30, &a, true);
    buf *junk = fx_buf(&f);
    CHECK(buf_append(junk, "\x09garbage-not-an-envelope", 24) == 0);
    buf *short_env = fx_buf(&f);
    CHECK(buf_append(short_env, "\x01\x00\x00", 3) == 0); /* version 1, then cut */
    raft_entry ents[4] = {
        entry_of(1, RAFT_ENTRY_NORMAL, junk),
        entry_of(2, RAFT_ENTRY_CONF, junk),
        entry_of(3, RAFT_ENTRY_NORMAL, short_env),
        put_entry(&f, 4, SELF, 30, "after", "junk"),
    };
    node_apply_batch(&f.env, ents, 4);
    CHECK(f.fatals == 0 && f.confs == 0 && f.batches == 1);
    CHECK(a.calls == 1 && a.status == NODE_OK && a.revision == 2);
    CHECK(applied_is(&f, 4) && value_is(&f, "after", "junk", 2));
    fx_close(&f);
}

/* A batch that cannot begin: the node is told to stop, nothing changes,
 * and the waiters stay for shutdown to answer (their entries are
 * committed: the next life applies them). */
static void test_begin_failure_is_fatal(void)
{
    fixture f;
    fx_open(&f);
    answer a = {0};
    wait_for(&f, 40, &a, true);
    raft_entry e = put_entry(&f, 1, SELF, 40, "x", "1");
    CHECK(kv_apply_begin(f.fx.k) == KV_OK); /* a batch already open */
    node_apply_batch(&f.env, &e, 1);
    kv_apply_rollback(f.fx.k);
    CHECK(f.fatals == 1 && strcmp(f.fatal_what, "kv: cannot begin apply") == 0);
    CHECK(f.fatal_code == NODE_EXIT_APPLY);
    uint64_t index, term;
    kv_applied(f.fx.k, &index, &term);
    CHECK(f.batches == 0 && a.calls == 0 && kv_revision(f.fx.k) == 1 && index == 0);
    waiters_expire(f.w, 0, true, NODE_ERR_STOPPING);
    CHECK(a.calls == 1 && a.status == NODE_ERR_STOPPING);
    fx_close(&f);
}

/* A full disk is not fatal: nothing of the batch is in kv.db, its waiters
 * wait again, and the same batch applies once there is space. */
static void test_full_disk_holds_the_batch(void)
{
    fixture f;
    fx_open(&f);
    answer a = {0};
    wait_for(&f, 50, &a, true);
    raft_entry e[2] = {put_entry(&f, 1, SELF, 50, "k", "v"), put_entry(&f, 2, SELF + 1, 3, "j", "w")};
    CHECK(failpoint_init("kv.write=ENOSPC@2") == 0);
    CHECK(node_apply_batch(&f.env, e, 2) == NODE_APPLY_NOSPACE);
    CHECK(failpoint_init(NULL) == 0);
    CHECK(f.fatals == 0 && f.batches == 0 && a.calls == 0);
    CHECK_MSG(kv_revision(f.fx.k) == 1, "revision %lld", (long long)kv_revision(f.fx.k));
    uint64_t index, term;
    kv_applied(f.fx.k, &index, &term);
    CHECK(index == 0);
    CHECK(node_apply_batch(&f.env, e, 2) == NODE_APPLY_OK);
    CHECK(f.fatals == 0 && f.batches == 1);
    CHECK(a.calls == 1 && a.status == NODE_OK && a.revision == 2);
    CHECK(value_is(&f, "k", "v", 2) && value_is(&f, "j", "w", 3) && applied_is(&f, 2));
    fx_close(&f);
}

/* A full disk whose rollback leaves kv.db's state unreadable (failpoint
 * kv.reload) is no longer only a full disk: the node must stop; the
 * waiter stays for shutdown to answer (the next life applies its entry). */
static void test_full_disk_with_unreadable_state_is_fatal(void)
{
    fixture f;
    fx_open(&f);
    answer a = {0};
    wait_for(&f, 60, &a, true);
    raft_entry e = put_entry(&f, 1, SELF, 60, "k", "v");
    CHECK(failpoint_init("kv.write=ENOSPC,kv.reload=EIO") == 0);
    CHECK(node_apply_batch(&f.env, &e, 1) == NODE_APPLY_OK);
    CHECK(failpoint_init(NULL) == 0);
    CHECK(f.fatals == 1 && f.fatal_code == NODE_EXIT_STORAGE);
    CHECK(f.batches == 0 && a.calls == 0); /* waiting for shutdown's answer */
    waiters_expire(f.w, 0, true, NODE_ERR_STOPPING);
    CHECK(a.calls == 1 && a.status == NODE_ERR_STOPPING);
    fx_close(&f);
}

static void test_empty_batch_does_nothing(void)
{
    fixture f;
    fx_open(&f);
    node_apply_batch(&f.env, NULL, 0);
    CHECK(f.batches == 0 && f.fatals == 0 && kv_revision(f.fx.k) == 1);
    fx_close(&f);
}

int main(void)
{
    RUN(test_normal_entries_answer_waiters);
    RUN(test_other_nodes_entries_answer_nobody);
    RUN(test_reproposed_entries_apply_once);
    RUN(test_conf_entries);
    RUN(test_lease_grant_moves_clock);
    RUN(test_unreadable_entries_skipped);
    RUN(test_full_disk_with_unreadable_state_is_fatal);
    RUN(test_begin_failure_is_fatal);
    RUN(test_full_disk_holds_the_batch);
    RUN(test_empty_batch_does_nothing);
    TEST_MAIN_END();
}
