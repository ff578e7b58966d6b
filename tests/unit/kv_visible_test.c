/* kv_visible_test: batches ended with kv_apply_end stay in the writer's
 * open transaction until kv_apply_flush — readers do not see them before,
 * see them after, and a reader on another thread waits for them (asking
 * through the flush hook) instead of reading around them; a failed flush
 * (failpoint kv.flush) or a failed later batch (kv.commit) rolls every
 * unflushed batch back, says so (kv_take_lost), and leaves the cached
 * state and applied index as kv.db has them, so applying the same
 * batches again gives the same store. */
#include "kv/kv.h"
#include "../test.h"
#include "kv_fixture.h"
#include "util/failpoint.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Puts key=val as one batch ended (not flushed) at the next index. */
static void put_ended(kvfx *f, const char *key, const char *val)
{
    kv_op op = {.type = KV_OP_PUT,
                .span = {(const uint8_t *)key, (uint32_t)strlen(key), false, NULL, 0},
                .value = (const uint8_t *)val, .value_len = (uint32_t)strlen(val)};
    kv_txn t = {.n_success = 1, .success = &op};
    buf b;
    buf_init(&b);
    CHECK(kv_encode_txn(&t, &b) == KV_OK);
    kv_result r;
    CHECK(kv_apply_begin(f->k) == KV_OK);
    CHECK(kv_apply_cmd(f->k, b.data, b.len, &r) == KV_OK && r.err == KV_OK);
    kv_result_free(&r);
    CHECK(kv_apply_end(f->k, ++f->index, 1) == KV_OK);
    buf_free(&b);
}

/* How many keys a reader sees (all keys from ""), or -1. */
static long visible_keys(kv *k)
{
    static const uint8_t zero[1] = {0};
    kv_conn *c = kv_reader_acquire(k);
    if (!c)
        return -1;
    kv_op q = {.type = KV_OP_RANGE,
               .span = {(const uint8_t *)"", 0, true, zero, 1},
               .count_only = true};
    kv_op_result out;
    int64_t hdr;
    int rc = kv_range(c, &q, &out, &hdr);
    kv_reader_release(k, c);
    if (rc != KV_OK)
        return -1;
    long n = (long)out.count;
    kv_list_free(&out.kvs);
    return n;
}

static void test_readers_see_flushed_only(void)
{
    kvfx f;
    kvfx_open(&f, "kv_visible");
    put_ended(&f, "a", "1");
    put_ended(&f, "b", "2");
    CHECK(kv_unflushed(f.k));
    CHECK(kv_revision(f.k) == 3); /* the writer sees its own batches */
    CHECK(visible_keys(f.k) == 0); /* a reader on the writer's thread does not wait */
    CHECK(kv_apply_flush(f.k) == KV_OK);
    CHECK(!kv_unflushed(f.k));
    CHECK(visible_keys(f.k) == 2);
    CHECK(!kv_take_lost(f.k));
    /* what was flushed survives a restart, with its applied index */
    put_ended(&f, "c", "3");
    CHECK(kv_apply_flush(f.k) == KV_OK);
    kv_close(f.k);
    f.k = NULL;
    CHECK(kvfx_reopen(&f));
    uint64_t idx, term;
    kv_applied(f.k, &idx, &term);
    CHECK(idx == 3 && kv_revision(f.k) == 4);
    kvfx_close(&f);
}

/* ---- a reader on another thread ---- */

typedef struct {
    kv *k;
    atomic_int asked; /* flush hook calls */
    long seen;
    atomic_bool done;
} reader_ctx;

static void on_want_flush(void *ud)
{
    reader_ctx *c = ud;
    atomic_fetch_add(&c->asked, 1);
}

static void *reader_main(void *arg)
{
    reader_ctx *c = arg;
    c->seen = visible_keys(c->k);
    atomic_store(&c->done, true);
    return NULL;
}

static void test_reader_waits_for_flush(void)
{
    kvfx f;
    kvfx_open(&f, "kv_visible");
    reader_ctx c = {.k = f.k, .seen = -2};
    atomic_init(&c.asked, 0);
    atomic_init(&c.done, false);
    kv_set_flush_hook(f.k, on_want_flush, &c);
    put_ended(&f, "a", "1"); /* this thread is the writer from here on */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, reader_main, &c) == 0);
    for (int i = 0; i < 5000 && atomic_load(&c.asked) == 0; i++)
        usleep(1000);
    CHECK(atomic_load(&c.asked) == 1);
    CHECK(!atomic_load(&c.done)); /* it waits for the flush it asked for */
    CHECK(kv_apply_flush(f.k) == KV_OK);
    pthread_join(t, NULL);
    CHECK(c.seen == 1);
    /* nothing unflushed: a reader neither asks nor waits */
    atomic_store(&c.done, false);
    c.seen = -2;
    CHECK(pthread_create(&t, NULL, reader_main, &c) == 0);
    pthread_join(t, NULL);
    CHECK(atomic_load(&c.asked) == 1 && c.seen == 1);
    /* an open gate (the node cannot flush): the reader reads what is there */
    put_ended(&f, "b", "2");
    kv_gate_open(f.k, true);
    c.seen = -2;
    CHECK(pthread_create(&t, NULL, reader_main, &c) == 0);
    pthread_join(t, NULL);
    CHECK(c.seen == 1 && atomic_load(&c.asked) == 1);
    kv_gate_open(f.k, false);
    CHECK(kv_apply_flush(f.k) == KV_OK);
    kvfx_close(&f);
}

/* ---- lost batches ---- */

static void expect_state(kvfx *f, uint64_t index, int64_t rev, long keys)
{
    uint64_t idx, term;
    kv_applied(f->k, &idx, &term);
    CHECK(idx == index);
    CHECK(kv_revision(f->k) == rev);
    CHECK(visible_keys(f->k) == keys);
    CHECK(!kv_unflushed(f->k));
}

static void test_failed_flush_loses_batches(void)
{
    kvfx f;
    kvfx_open(&f, "kv_visible");
    put_ended(&f, "a", "1");
    CHECK(kv_apply_flush(f.k) == KV_OK);
    put_ended(&f, "b", "2");
    put_ended(&f, "c", "3");
    CHECK(failpoint_init("kv.flush=ENOSPC") == 0);
    CHECK(kv_apply_flush(f.k) == KV_ERR_NO_SPACE_DISK);
    failpoint_init(NULL);
    CHECK(kv_take_lost(f.k));
    CHECK(!kv_take_lost(f.k)); /* told once */
    expect_state(&f, 1, 2, 1);
    /* the same batches again: the same store as without the failure */
    f.index = 1;
    put_ended(&f, "b", "2");
    put_ended(&f, "c", "3");
    CHECK(kv_apply_flush(f.k) == KV_OK);
    expect_state(&f, 3, 4, 3);
    /* any other failure is an internal error, and loses them too */
    put_ended(&f, "d", "4");
    CHECK(failpoint_init("kv.flush=EIO") == 0);
    CHECK(kv_apply_flush(f.k) == KV_ERR_INTERNAL);
    failpoint_init(NULL);
    CHECK(kv_take_lost(f.k));
    expect_state(&f, 3, 4, 3);
    kvfx_close(&f);
}

/* A rollback after which kv.db's state cannot be read back (failpoint
 * kv.reload) is an internal error, whatever the failure before it: the
 * node must stop, not hold the batch as on a full disk. */
static void test_unreadable_state_after_rollback_is_internal(void)
{
    kvfx f;
    kvfx_open(&f, "kv_visible");
    put_ended(&f, "a", "1");
    CHECK(failpoint_init("kv.flush=ENOSPC,kv.reload=EIO") == 0);
    CHECK(kv_apply_flush(f.k) == KV_ERR_INTERNAL);
    CHECK(failpoint_init("kv.commit=ENOSPC,kv.reload=EIO") == 0);
    CHECK(kv_apply_begin(f.k) == KV_OK);
    CHECK(kv_apply_end(f.k, 2, 1) == KV_ERR_INTERNAL);
    failpoint_init(NULL);
    kvfx_close(&f);
}

static void test_failed_batch_loses_earlier_ones(void)
{
    kvfx f;
    kvfx_open(&f, "kv_visible");
    put_ended(&f, "a", "1");
    CHECK(kv_apply_flush(f.k) == KV_OK);
    put_ended(&f, "b", "2");
    CHECK(failpoint_init("kv.commit=ENOSPC") == 0);
    CHECK(kv_apply_begin(f.k) == KV_OK);
    CHECK(kv_apply_end(f.k, 3, 1) == KV_ERR_NO_SPACE_DISK);
    failpoint_init(NULL);
    CHECK(kv_take_lost(f.k));
    expect_state(&f, 1, 2, 1);
    /* a failed batch with nothing unflushed before it loses nothing else */
    CHECK(failpoint_init("kv.commit=ENOSPC") == 0);
    CHECK(kv_apply_commit(f.k, 2, 1) == KV_ERR_NO_SPACE_DISK);
    failpoint_init(NULL);
    CHECK(!kv_take_lost(f.k));
    expect_state(&f, 1, 2, 1);
    kvfx_close(&f);
}

/* ---- views kept between reads ---- */

static long long wal_bytes(const kvfx *f)
{
    char path[160];
    snprintf(path, sizeof path, "%s-wal", f->path);
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* A pool connection keeps its read view between reads while nothing
 * commits: every commit makes the next read see it, and a view left on
 * an idle connection does not keep the log from being reset. */
static void test_kept_views_follow_commits(void)
{
    kvfx f;
    kvfx_open(&f, "kv_visible");
    put_ended(&f, "a", "1");
    CHECK(kv_apply_flush(f.k) == KV_OK);
    CHECK(visible_keys(f.k) == 1);
    CHECK(visible_keys(f.k) == 1); /* the same view, read twice */
    put_ended(&f, "b", "2");
    CHECK(kv_apply_flush(f.k) == KV_OK);
    CHECK(visible_keys(f.k) == 2); /* a commit ends the kept view */
    /* two connections read once each, so both keep a view; then many
     * commits with one of them idle */
    kv_conn *c1 = kv_reader_acquire(f.k), *c2 = kv_reader_acquire(f.k);
    CHECK(c1 && c2 && c1 != c2);
    int64_t r1 = 0, r2 = 0, cp = 0;
    CHECK(kv_read_revisions(c1, &r1, &cp) == KV_OK && kv_read_revisions(c2, &r2, &cp) == KV_OK);
    kv_reader_release(f.k, c1);
    kv_reader_release(f.k, c2);
    char val[1024];
    memset(val, 'v', sizeof val - 1);
    val[sizeof val - 1] = '\0';
    long long most = 0;
    for (int i = 0; i < 3000; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i % 500);
        put_ended(&f, key, val);
        CHECK(kv_apply_flush(f.k) == KV_OK);
        long long w = wal_bytes(&f);
        most = w > most ? w : most;
    }
    /* SQLite checkpoints every ~1000 pages and starts the log over when no
     * reader holds a view into it; a pinned view would let it grow to
     * ~3 pages per commit (tens of MB here) */
    CHECK(most > 0 && most < (12ll << 20));
    CHECK(visible_keys(f.k) == 502);
    kvfx_close(&f);
}

int main(void)
{
    RUN(test_readers_see_flushed_only);
    RUN(test_reader_waits_for_flush);
    RUN(test_failed_flush_loses_batches);
    RUN(test_failed_batch_loses_earlier_ones);
    RUN(test_unreadable_state_after_rollback_is_internal);
    RUN(test_kept_views_follow_commits);
    TEST_MAIN_END();
}
