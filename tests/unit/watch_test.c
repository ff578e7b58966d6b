/* watch_test: the watch hub against a real kv store in a fresh temp dir,
 * no HTTP — interval matching (single key, prefix, range, none, and a
 * randomized comparison with brute force), cursors in the future, the
 * unsynced catch-up then live wake, whole revisions under max_events,
 * filters, prev_kv, compaction, deadlines, wake_all and removal, and
 * the read shared by one span's watchers (watch_memo). The test
 * plays the node: it applies commands and calls watch_notify.
 *
 * "Not woken" is asserted without sleeping: a sentinel watcher on the
 * same event is awaited, then watch_count() (which takes the hub's lock)
 * makes sure the hub has finished matching that event. */
#include "kv/kv.h"
#include "../test.h"
#include "kv_fixture.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 10000

typedef struct probe probe;

typedef struct {
    kvfx s; /* the store in its temp dir */
    watch_hub *h;
    probe *probes; /* every probe added, removed (if still there) by fx_close */
} fixture;

static void fx_open(fixture *f)
{
    kvfx_open(&f->s, "watch_test");
    f->probes = NULL;
    f->h = watch_hub_create(f->s.k);
    CHECK(f->h != NULL);
    if (!f->h)
        exit(1);
}

/* Applies one command as a batch, then tells the hub, as the node does. */
static int64_t apply(fixture *f, const buf *cmd)
{
    kv_result r;
    bool begin_ok, commit_ok;
    CHECK(kvfx_apply(&f->s, cmd, &r, &begin_ok, &commit_ok) == KV_OK);
    CHECK(begin_ok);
    CHECK(r.err == KV_OK);
    CHECK(commit_ok);
    kv_result_free(&r);
    watch_notify(f->h, kv_revision(f->s.k));
    return kv_revision(f->s.k);
}

static kv_span key_span(const char *key)
{
    return (kv_span){(const uint8_t *)key, (uint32_t)strlen(key), false, NULL, 0};
}

static int64_t txn(fixture *f, const kv_op *ops, size_t n)
{
    kv_txn t = {.n_success = n, .success = ops};
    buf b;
    buf_init(&b);
    CHECK(kv_encode_txn(&t, &b) == KV_OK);
    int64_t rev = apply(f, &b);
    buf_free(&b);
    return rev;
}

static int64_t put(fixture *f, const char *key, const char *val)
{
    kv_op op = {.type = KV_OP_PUT, .span = key_span(key), .value = (const uint8_t *)val,
                .value_len = (uint32_t)strlen(val)};
    return txn(f, &op, 1);
}

static int64_t del(fixture *f, const char *key)
{
    kv_op op = {.type = KV_OP_DELETE, .span = key_span(key)};
    return txn(f, &op, 1);
}

static void compact(fixture *f, int64_t rev)
{
    buf b;
    buf_init(&b);
    CHECK(kv_encode_compact(rev, &b) == KV_OK);
    apply(f, &b);
    buf_free(&b);
}

/* ---- a watcher that counts its wakes ---- */

struct probe {
    watch_watcher *w; /* NULL once removed */
    atomic_int wakes;
    char end[8];
    probe *next; /* in the fixture's list */
};

static void on_wake(void *ud)
{
    probe *p = ud;
    atomic_fetch_add(&p->wakes, 1);
}

static void probe_add(fixture *f, probe *p, kv_span s, unsigned filters)
{
    atomic_init(&p->wakes, 0);
    p->w = watch_add(f->h, &s, filters, true, on_wake, p);
    CHECK(p->w != NULL);
    p->next = f->probes;
    f->probes = p;
}

static void probe_remove(fixture *f, probe *p)
{
    if (p->w)
        watch_remove(f->h, p->w);
    p->w = NULL;
}

/* Removes the probes the test left, then checks the hub holds nobody. */
static void fx_close(fixture *f)
{
    for (probe *p = f->probes; p; p = p->next)
        probe_remove(f, p);
    CHECK(watch_count(f->h) == 0);
    watch_hub_destroy(f->h);
    kvfx_close(&f->s);
}

static void probe_prefix(fixture *f, probe *p, const char *prefix)
{
    uint32_t n = kv_prefix_end((const uint8_t *)prefix, (uint32_t)strlen(prefix),
                               (uint8_t *)p->end);
    kv_span s = {(const uint8_t *)prefix, (uint32_t)strlen(prefix), true, (const uint8_t *)p->end, n};
    probe_add(f, p, s, 0);
}

static void probe_range(fixture *f, probe *p, const char *from, const char *to)
{
    kv_span s = {(const uint8_t *)from, (uint32_t)strlen(from), true, (const uint8_t *)to,
                 (uint32_t)strlen(to)};
    probe_add(f, p, s, 0);
}

/* Parks at the store's next revision (the watcher is caught up). */
static void park_next(fixture *f, probe *p)
{
    watch_park(f->h, p->w, kv_revision(f->s.k) + 1, 0);
}

static bool wait_wakes(probe *p, int n)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&p->wakes) < n) {
        if (now_ms() > end)
            return false;
        usleep(1000);
    }
    return true;
}

/* After the sentinel woke, the hub has matched that event for everyone
 * once its lock is free again. */
static void settle(fixture *f, probe *sentinel, int n)
{
    CHECK(wait_wakes(sentinel, n));
    (void)watch_count(f->h);
}

/* ---- tests ---- */

static void test_match_kinds(void)
{
    fixture f;
    fx_open(&f);
    probe single, prefix, range, other, all;
    probe_add(&f, &single, key_span("app/a"), 0);
    probe_prefix(&f, &prefix, "app/");
    probe_range(&f, &range, "app/b", "app/d");
    probe_add(&f, &other, key_span("zzz"), 0);
    kv_span every = {(const uint8_t *)"", 0, true, (const uint8_t *)"", 1};
    probe_add(&f, &all, every, 0);
    probe *ps[] = {&single, &prefix, &range, &other, &all};
    for (size_t i = 0; i < 5; i++)
        park_next(&f, ps[i]);
    put(&f, "app/c", "1"); /* prefix, range, all */
    settle(&f, &all, 1);
    CHECK(atomic_load(&prefix.wakes) == 1 && atomic_load(&range.wakes) == 1);
    CHECK(atomic_load(&single.wakes) == 0 && atomic_load(&other.wakes) == 0);
    park_next(&f, &all);
    park_next(&f, &prefix);
    park_next(&f, &range);
    put(&f, "app/d", "1"); /* range end is exclusive */
    settle(&f, &all, 2);
    CHECK(atomic_load(&range.wakes) == 1 && atomic_load(&prefix.wakes) == 2);
    CHECK(atomic_load(&single.wakes) == 0);
    park_next(&f, &all);
    put(&f, "app/a", "1");
    settle(&f, &all, 3);
    CHECK(atomic_load(&single.wakes) == 1 && atomic_load(&range.wakes) == 1);
    CHECK(atomic_load(&other.wakes) == 0);
    /* a woken watcher is unparked: a second event does not call it again */
    park_next(&f, &all);
    put(&f, "app/a", "2");
    settle(&f, &all, 4);
    CHECK(atomic_load(&single.wakes) == 1);
    fx_close(&f);
}

/* A cursor ahead of the store waits for its own revision; a cursor the hub
 * has already matched past wakes at once, inside watch_park. */
static void test_cursor_positions(void)
{
    fixture f;
    fx_open(&f);
    probe early, future;
    probe_add(&f, &early, key_span("k"), 0);
    probe_add(&f, &future, key_span("k"), 0);
    int64_t rev = put(&f, "k", "1");
    watch_park(f.h, future.w, rev + 2, 0);
    park_next(&f, &early);
    put(&f, "k", "2"); /* rev + 1 */
    settle(&f, &early, 1);
    CHECK(atomic_load(&future.wakes) == 0);
    put(&f, "k", "3"); /* rev + 2 */
    CHECK(wait_wakes(&future, 1));
    /* parked behind: wakes immediately (once the hub scanned rev + 2) */
    settle(&f, &future, 1);
    watch_park(f.h, early.w, rev, 0);
    CHECK(atomic_load(&early.wakes) == 2);
    fx_close(&f);
}

/* With nobody parked, watch_notify marks each revision matched itself
 * (no wake of the hub's thread): a watcher parking at or before the last
 * one is woken inside watch_park, on the spot; one parking past it waits
 * for the next write. */
static void test_unwatched_revisions_matched_at_once(void)
{
    fixture f;
    fx_open(&f);
    probe p;
    probe_add(&f, &p, key_span("k"), 0);
    put(&f, "k", "1");
    int64_t rev = put(&f, "k", "2");
    watch_park(f.h, p.w, rev, 0);
    CHECK(atomic_load(&p.wakes) == 1); /* no waiting: already matched */
    watch_park(f.h, p.w, rev + 1, 0);
    CHECK(atomic_load(&p.wakes) == 1);
    put(&f, "k", "3");
    CHECK(wait_wakes(&p, 2));
    fx_close(&f);
}

static int64_t drain(fixture *f, probe *p, int64_t cursor, size_t max, char *seen, size_t cap,
                     int *calls)
{
    size_t len = strlen(seen);
    for (;;) {
        watch_batch b;
        CHECK(watch_fetch(f->h, p->w, cursor, max, &b) == KV_OK);
        (*calls)++;
        for (size_t i = 0; i < b.events.n && len + 2 < cap; i++) {
            seen[len++] = (char)b.events.items[i].kv.value[0];
            seen[len] = 0;
        }
        CHECK(b.next_rev >= cursor);
        cursor = b.next_rev;
        bool more = b.more;
        watch_batch_free(&b);
        if (!more)
            return cursor;
    }
}

/* Behind: read history in bounded chunks until caught up, then park and
 * be woken by the live event. */
static void test_catch_up_then_live(void)
{
    fixture f, *fp = &f;
    fx_open(fp);
    char val[2] = "a";
    for (int i = 0; i < 10; i++, val[0]++)
        put(fp, "k", val);
    put(fp, "other", "x");
    probe p;
    probe_add(fp, &p, key_span("k"), 0);
    char seen[64] = "";
    int calls = 0;
    int64_t cursor = drain(fp, &p, 1, 3, seen, sizeof seen, &calls);
    CHECK(strcmp(seen, "abcdefghij") == 0);
    CHECK(calls >= 4); /* 10 events, 3 at a time */
    CHECK(cursor == kv_revision(f.s.k) + 1);
    watch_park(f.h, p.w, cursor, 0);
    CHECK(atomic_load(&p.wakes) == 0);
    put(fp, "k", "z");
    CHECK(wait_wakes(&p, 1));
    cursor = drain(fp, &p, cursor, 3, seen, sizeof seen, &calls);
    CHECK(strcmp(seen, "abcdefghijz") == 0);
    fx_close(fp);
}

/* max_events never splits a revision: a 5-put txn comes whole. */
static void test_whole_revisions(void)
{
    fixture f;
    fx_open(&f);
    probe p;
    probe_prefix(&f, &p, "q/");
    const char *keys[5] = {"q/1", "q/2", "q/3", "q/4", "q/5"};
    kv_op ops[5];
    for (int i = 0; i < 5; i++)
        ops[i] = (kv_op){.type = KV_OP_PUT, .span = key_span(keys[i]), .value = (const uint8_t *)"v",
                         .value_len = 1};
    int64_t first = put(&f, "q/0", "v");
    int64_t rev = txn(&f, ops, 5);
    put(&f, "q/6", "v");
    watch_batch b;
    /* q/0 (1 event) is under the limit, so the txn comes whole after it */
    CHECK(watch_fetch(f.h, p.w, first, 2, &b) == KV_OK);
    CHECK(b.events.n == 6 && b.next_rev == rev + 1 && b.more);
    watch_batch_free(&b);
    CHECK(watch_fetch(f.h, p.w, first + 1, 1, &b) == KV_OK);
    CHECK(b.events.n == 5 && b.next_rev == rev + 1 && b.more);
    for (size_t i = 0; i < b.events.n; i++)
        CHECK(b.events.items[i].kv.mod_revision == rev);
    CHECK(b.header_rev >= rev);
    watch_batch_free(&b);
    fx_close(&f);
}

static void test_filters_and_prev(void)
{
    fixture f;
    fx_open(&f);
    probe noput, nodel, sentinel;
    probe_add(&f, &noput, key_span("k"), WATCH_NOPUT);
    probe_add(&f, &nodel, key_span("k"), WATCH_NODELETE);
    probe_add(&f, &sentinel, key_span("k"), 0);
    int64_t start = put(&f, "k", "v1");
    park_next(&f, &noput);
    park_next(&f, &nodel);
    park_next(&f, &sentinel);
    put(&f, "k", "v2");
    settle(&f, &sentinel, 1);
    CHECK(atomic_load(&noput.wakes) == 0 && atomic_load(&nodel.wakes) == 1);
    int64_t drev = del(&f, "k");
    CHECK(wait_wakes(&noput, 1));
    watch_batch b;
    CHECK(watch_fetch(f.h, noput.w, start, 100, &b) == KV_OK);
    CHECK(b.events.n == 1 && b.events.items[0].type == KV_EVENT_DELETE);
    CHECK(b.events.n == 1 && b.events.items[0].kv.mod_revision == drev);
    CHECK(b.events.n == 1 && b.events.items[0].has_prev &&
          memcmp(b.events.items[0].prev_kv.value, "v2", 2) == 0);
    CHECK(b.next_rev == drev + 1);
    watch_batch_free(&b);
    CHECK(watch_fetch(f.h, nodel.w, start, 100, &b) == KV_OK);
    CHECK(b.events.n == 2 && b.events.items[0].type == KV_EVENT_PUT &&
          b.events.items[1].type == KV_EVENT_PUT);
    watch_batch_free(&b);
    fx_close(&f);
}

static void test_compacted(void)
{
    fixture f;
    fx_open(&f);
    probe p;
    probe_add(&f, &p, key_span("k"), 0);
    int64_t r1 = put(&f, "k", "1");
    int64_t r2 = put(&f, "k", "2");
    put(&f, "k", "3");
    compact(&f, r2);
    watch_batch b;
    CHECK(watch_fetch(f.h, p.w, r1, 10, &b) == KV_ERR_COMPACTED && b.compact_rev == r2);
    CHECK(b.events.n == 0);
    CHECK(watch_fetch(f.h, p.w, r2, 10, &b) == KV_ERR_COMPACTED);
    CHECK(watch_fetch(f.h, p.w, r2 + 1, 10, &b) == KV_OK && b.events.n == 1);
    watch_batch_free(&b);
    fx_close(&f);
}

/* Watchers of one span share a read (and a rendering) per cursor until
 * the next apply; other options, a lone watcher, a later write or a
 * compaction get a read of their own. */
static void test_shared_read(void)
{
    static const char tag = 0, other_tag = 0;
    fixture f;
    fx_open(&f);
    probe a, b, nput, lone;
    probe_add(&f, &a, key_span("k"), 0);
    probe_add(&f, &b, key_span("k"), 0);
    probe_add(&f, &nput, key_span("k"), WATCH_NOPUT);
    probe_add(&f, &lone, key_span("z"), 0);
    int64_t r1 = put(&f, "k", "1");
    put(&f, "z", "1");
    watch_batch ba, bb, bn;
    CHECK(watch_fetch(f.h, nput.w, r1, 10, &bn) == KV_OK && bn.events.n == 0);
    CHECK(watch_fetch(f.h, a.w, r1, 10, &ba) == KV_OK && ba.events.n == 1);
    CHECK(watch_fetch(f.h, b.w, r1, 10, &bb) == KV_OK && bb.events.n == 1);
    CHECK(ba.shared != NULL && bb.shared == ba.shared && bb.next_rev == ba.next_rev);
    CHECK(bn.shared != ba.shared);
    watch_batch_free(&bn);
    buf out;
    buf_init(&out);
    CHECK(!watch_batch_text(&bb, &tag, &out));
    watch_batch_keep_text(&ba, &tag, "line\n", 5);
    CHECK(!watch_batch_text(&bb, &other_tag, &out) && out.len == 0);
    CHECK(watch_batch_text(&bb, &tag, &out) && out.len == 5 && memcmp(out.data, "line\n", 5) == 0);
    buf_free(&out);
    watch_batch_free(&ba);
    watch_batch_free(&bb);
    CHECK(watch_fetch(f.h, lone.w, r1, 10, &bn) == KV_OK && bn.shared == NULL);
    watch_batch_free(&bn);
    put(&f, "k", "2"); /* a later write: the kept batch (one event) is stale */
    CHECK(watch_fetch(f.h, b.w, r1, 10, &bb) == KV_OK && bb.events.n == 2);
    watch_batch_free(&bb);
    CHECK(watch_fetch(f.h, a.w, r1, 10, &ba) == KV_OK && ba.events.n == 2);
    watch_batch_free(&ba); /* kept on the group, current: then compacted */
    compact(&f, r1);
    CHECK(watch_fetch(f.h, b.w, r1, 10, &bb) == KV_ERR_COMPACTED);
    fx_close(&f);
}

static void test_deadline_wake_all_remove(void)
{
    fixture f;
    fx_open(&f);
    probe a, b;
    probe_add(&f, &a, key_span("a"), 0);
    probe_add(&f, &b, key_span("b"), 0);
    CHECK(watch_count(f.h) == 2);
    watch_park(f.h, a.w, kv_revision(f.s.k) + 1, now_ms() + 30);
    watch_park(f.h, b.w, kv_revision(f.s.k) + 1, now_ms() + 3600 * 1000);
    CHECK(wait_wakes(&a, 1));
    CHECK(atomic_load(&b.wakes) == 0);
    watch_wake_all(f.h);
    CHECK(atomic_load(&b.wakes) == 1 && atomic_load(&a.wakes) == 1);
    /* a parked watcher can be removed; it is never called afterwards */
    watch_park(f.h, a.w, kv_revision(f.s.k) + 1, 0);
    probe_remove(&f, &a);
    CHECK(watch_count(f.h) == 1);
    put(&f, "a", "1");
    watch_park(f.h, b.w, kv_revision(f.s.k) + 1, 0);
    put(&f, "b", "1");
    settle(&f, &b, 2);
    CHECK(atomic_load(&a.wakes) == 1);
    probe_remove(&f, &b);
    CHECK(watch_count(f.h) == 0);
    fx_close(&f);
}

/* ---- randomized: the tree's answer equals brute force ---- */

#define RAND_WATCHERS 300
#define RAND_ROUNDS 40

typedef struct {
    probe p;
    char key[4], end[4];
    int kind; /* 0 single, 1 range, 2 from key on */
} rand_w;

static void rand_key(char *out, unsigned *seed)
{
    out[0] = (char)('a' + rand_r(seed) % 6);
    out[1] = (char)('a' + rand_r(seed) % 6);
    out[2] = 0;
}

static bool rand_contains(const rand_w *w, const char *k)
{
    int lo = strcmp(k, w->key);
    if (w->kind == 0)
        return lo == 0;
    if (w->kind == 2)
        return lo >= 0;
    return lo >= 0 && strcmp(k, w->end) < 0;
}

static void test_random_intervals(void)
{
    fixture f;
    fx_open(&f);
    unsigned seed = 7;
    static rand_w ws[RAND_WATCHERS];
    static const char zero[1] = {0};
    for (int i = 0; i < RAND_WATCHERS; i++) {
        rand_w *w = &ws[i];
        w->kind = rand_r(&seed) % 3;
        rand_key(w->key, &seed);
        rand_key(w->end, &seed);
        kv_span s = {(const uint8_t *)w->key, 2, w->kind != 0,
                     (const uint8_t *)(w->kind == 2 ? zero : w->end), w->kind == 0 ? 0 : w->kind == 2 ? 1u : 2u};
        probe_add(&f, &w->p, s, 0);
    }
    probe sentinel;
    kv_span every = {(const uint8_t *)"", 0, true, (const uint8_t *)"", 1};
    probe_add(&f, &sentinel, every, 0);
    int mismatches = 0;
    for (int round = 0; round < RAND_ROUNDS; round++) {
        int before[RAND_WATCHERS];
        for (int i = 0; i < RAND_WATCHERS; i++) {
            before[i] = atomic_load(&ws[i].p.wakes);
            park_next(&f, &ws[i].p);
        }
        park_next(&f, &sentinel);
        char k[4];
        rand_key(k, &seed);
        put(&f, k, "v");
        settle(&f, &sentinel, round + 1);
        for (int i = 0; i < RAND_WATCHERS; i++) {
            bool woke = atomic_load(&ws[i].p.wakes) > before[i];
            mismatches += woke != rand_contains(&ws[i], k);
        }
    }
    CHECK(mismatches == 0);
    /* remove half (groups shared by equal spans must survive), then retry */
    for (int i = 0; i < RAND_WATCHERS; i += 2)
        probe_remove(&f, &ws[i].p);
    for (int round = 0; round < 10; round++) {
        int before[RAND_WATCHERS];
        for (int i = 1; i < RAND_WATCHERS; i += 2) {
            before[i] = atomic_load(&ws[i].p.wakes);
            park_next(&f, &ws[i].p);
        }
        park_next(&f, &sentinel);
        char k[4];
        rand_key(k, &seed);
        put(&f, k, "v");
        settle(&f, &sentinel, RAND_ROUNDS + round + 1);
        for (int i = 1; i < RAND_WATCHERS; i += 2)
            mismatches += (atomic_load(&ws[i].p.wakes) > before[i]) != rand_contains(&ws[i], k);
    }
    CHECK(mismatches == 0);
    fx_close(&f);
}

int main(void)
{
    RUN(test_match_kinds);
    RUN(test_cursor_positions);
    RUN(test_unwatched_revisions_matched_at_once);
    RUN(test_catch_up_then_live);
    RUN(test_whole_revisions);
    RUN(test_filters_and_prev);
    RUN(test_compacted);
    RUN(test_shared_read);
    RUN(test_deadline_wake_all_remove);
    RUN(test_random_intervals);
    TEST_MAIN_END();
}
