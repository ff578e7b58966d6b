/* kv_test: the MVCC store end to end through kv.h — revisions, reads at
 * old revisions, ranges, txns, refused and garbage commands, compaction,
 * history, persistence, snapshots and membership. Every store lives in a
 * fresh mkdtemp directory that is removed at the end. */
#include "kv/kv.h"
#include "../test.h"
#include "kv_fixture.h"

#include <sched.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- fixture ---- */

typedef kvfx store;

static void store_open(store *s) { kvfx_open(s, "kv_test"); }

static void store_close(store *s) { kvfx_close(s); }

/* Applies one encoded command as its own batch. */
static int apply_buf(store *s, const buf *cmd, kv_result *res)
{
    bool begin_ok, commit_ok;
    int rc = kvfx_apply(s, cmd, res, &begin_ok, &commit_ok);
    CHECK(begin_ok);
    CHECK(commit_ok);
    return rc;
}

static int apply_txn(store *s, const kv_txn *t, kv_result *res)
{
    buf b;
    buf_init(&b);
    int rc = kv_encode_txn(t, &b);
    CHECK(rc == KV_OK);
    if (rc == KV_OK)
        rc = apply_buf(s, &b, res);
    buf_free(&b);
    return rc;
}

static kv_span one_key(const char *key)
{
    return (kv_span){(const uint8_t *)key, (uint32_t)strlen(key), false, NULL, 0};
}

static kv_op put_op(const char *key, const char *val)
{
    return (kv_op){.type = KV_OP_PUT, .span = one_key(key), .value = (const uint8_t *)val,
                   .value_len = (uint32_t)strlen(val)};
}

/* Puts key=val; returns the revision after the command. */
static int64_t put(store *s, const char *key, const char *val)
{
    kv_op op = put_op(key, val);
    kv_txn t = {.n_success = 1, .success = &op};
    kv_result r;
    CHECK(apply_txn(s, &t, &r) == KV_OK);
    CHECK(r.err == KV_OK && r.succeeded && r.n_ops == 1);
    kv_result_free(&r);
    return r.revision;
}

static int64_t del(store *s, const char *key, int64_t *deleted)
{
    kv_op op = {.type = KV_OP_DELETE, .span = one_key(key)};
    kv_txn t = {.n_success = 1, .success = &op};
    kv_result r;
    CHECK(apply_txn(s, &t, &r) == KV_OK);
    CHECK(r.err == KV_OK && r.n_ops == 1);
    *deleted = r.n_ops == 1 ? r.ops[0].deleted : -1;
    kv_result_free(&r);
    return r.revision;
}

static int range(store *s, const kv_op *req, kv_op_result *out, int64_t *hdr)
{
    kv_conn *c = kv_reader_acquire(s->k);
    CHECK(c != NULL);
    if (!c)
        return KV_ERR_INTERNAL;
    int rc = kv_range(c, req, out, hdr);
    kv_reader_release(s->k, c);
    return rc;
}

/* Reads a single key at rev: 1 found, 0 missing, or a negative kv_err. */
static int get_at(store *s, const char *key, int64_t rev, kv_kv *out)
{
    kv_op q = {.type = KV_OP_RANGE, .span = one_key(key), .rev = rev};
    kv_op_result r;
    int64_t hdr;
    int rc = range(s, &q, &r, &hdr);
    if (rc != KV_OK)
        return rc;
    int found = r.kvs.n == 1;
    CHECK(r.count == (int64_t)r.kvs.n);
    if (found) {
        *out = r.kvs.items[0];
        r.kvs.n = 0;
    }
    kv_list_free(&r.kvs);
    return found;
}

static bool kv_is(const kv_kv *x, const char *val, int64_t create, int64_t mod, int64_t ver)
{
    return x->value_len == strlen(val) && memcmp(x->value, val, x->value_len) == 0 &&
           x->create_revision == create && x->mod_revision == mod && x->version == ver;
}

static void free_kv(kv_kv *x)
{
    free(x->key);
    free(x->value);
}

static bool check_get(store *s, const char *key, int64_t rev, const char *val, int64_t create,
                      int64_t mod, int64_t ver)
{
    kv_kv x;
    int rc = get_at(s, key, rev, &x);
    if (rc != 1)
        return false;
    bool ok = kv_is(&x, val, create, mod, ver);
    free_kv(&x);
    return ok;
}

/* ---- tests ---- */

static void test_revisions(void)
{
    store s;
    store_open(&s);
    int64_t n;
    CHECK(kv_revision(s.k) == 1);
    CHECK(put(&s, "a", "1") == 2);
    CHECK(check_get(&s, "a", 0, "1", 2, 2, 1));
    CHECK(put(&s, "a", "2") == 3);
    CHECK(check_get(&s, "a", 0, "2", 2, 3, 2));
    CHECK(del(&s, "a", &n) == 4 && n == 1);
    kv_kv x;
    CHECK(get_at(&s, "a", 0, &x) == 0);
    CHECK(del(&s, "a", &n) == 4 && n == 0); /* deleted nothing: no revision */
    CHECK(put(&s, "a", "3") == 5);
    CHECK(check_get(&s, "a", 0, "3", 5, 5, 1));
    CHECK(kv_revision(s.k) == 5);
    store_close(&s);
}

static kv_result compact(store *s, int64_t rev)
{
    buf b;
    buf_init(&b);
    CHECK(kv_encode_compact(rev, &b) == KV_OK);
    kv_result r;
    CHECK(apply_buf(s, &b, &r) == KV_OK);
    buf_free(&b);
    return r;
}

static void test_old_revisions(void)
{
    store s;
    store_open(&s);
    int64_t n;
    put(&s, "a", "1");     /* 2 */
    put(&s, "a", "2");     /* 3 */
    del(&s, "a", &n);      /* 4 */
    put(&s, "a", "3");     /* 5 */
    kv_kv x;
    CHECK(get_at(&s, "a", 1, &x) == 0);
    CHECK(check_get(&s, "a", 2, "1", 2, 2, 1));
    CHECK(check_get(&s, "a", 3, "2", 2, 3, 2));
    CHECK(get_at(&s, "a", 4, &x) == 0);
    CHECK(check_get(&s, "a", 5, "3", 5, 5, 1));
    CHECK(get_at(&s, "a", 6, &x) == KV_ERR_FUTURE_REV);
    kv_result r = compact(&s, 3);
    CHECK(r.err == KV_OK && r.compact_revision == 3 && r.revision == 5);
    CHECK(kv_revision(s.k) == 5 && kv_compact_revision(s.k) == 3);
    CHECK(get_at(&s, "a", 2, &x) == KV_ERR_COMPACTED);
    CHECK(check_get(&s, "a", 3, "2", 2, 3, 2)); /* the compact revision stays readable */
    CHECK(get_at(&s, "a", 4, &x) == 0);
    store_close(&s);
}

static void put_keys(store *s, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(s, keys[i], keys[i]);
}

static void test_range(void)
{
    store s;
    store_open(&s);
    static const char *const keys[] = {"c", "ab", "a", "abc", "b"};
    put_keys(&s, keys, 5);
    uint8_t end[8];
    uint32_t end_len = kv_prefix_end((const uint8_t *)"a", 1, end);
    kv_op q = {.type = KV_OP_RANGE, .span = {(const uint8_t *)"a", 1, true, end, end_len}};
    kv_op_result r;
    int64_t hdr;
    CHECK(range(&s, &q, &r, &hdr) == KV_OK && hdr == 6);
    CHECK(r.count == 3 && r.kvs.n == 3 && !r.more);
    CHECK(r.kvs.n == 3 && r.kvs.items[1].key_len == 2 && memcmp(r.kvs.items[2].key, "abc", 3) == 0);
    kv_list_free(&r.kvs);
    q.limit = 2;
    CHECK(range(&s, &q, &r, &hdr) == KV_OK && r.count == 3 && r.kvs.n == 2 && r.more);
    kv_list_free(&r.kvs);
    q.limit = 3;
    CHECK(range(&s, &q, &r, &hdr) == KV_OK && r.count == 3 && r.kvs.n == 3 && !r.more);
    kv_list_free(&r.kvs);
    q.limit = 0;
    q.keys_only = true;
    CHECK(range(&s, &q, &r, &hdr) == KV_OK && r.kvs.n == 3 && r.kvs.items[0].value == NULL &&
          r.kvs.items[0].key_len == 1 && r.kvs.items[0].version == 1);
    kv_list_free(&r.kvs);
    q.count_only = true;
    q.limit = 1;
    CHECK(range(&s, &q, &r, &hdr) == KV_OK && r.kvs.n == 0 && r.count == 3 && !r.more);
    kv_list_free(&r.kvs);
    /* from key: "\0" end */
    kv_op from = {.type = KV_OP_RANGE, .span = {(const uint8_t *)"b", 1, true, (const uint8_t *)"", 1}};
    CHECK(range(&s, &from, &r, &hdr) == KV_OK && r.count == 2 && r.kvs.n == 2 &&
          r.kvs.items[1].key[0] == 'c');
    kv_list_free(&r.kvs);
    /* everything: empty key with "\0" end, also at an old revision */
    kv_op all = {.type = KV_OP_RANGE, .span = {(const uint8_t *)"", 0, true, (const uint8_t *)"", 1}};
    CHECK(range(&s, &all, &r, &hdr) == KV_OK && r.count == 5);
    kv_list_free(&r.kvs);
    all.rev = 3;
    CHECK(range(&s, &all, &r, &hdr) == KV_OK && r.count == 2 && r.kvs.n == 2 &&
          r.kvs.items[0].key[0] == 'a' && r.kvs.items[1].key[0] == 'c');
    kv_list_free(&r.kvs);
    /* [ab, b) */
    kv_op mid = {.type = KV_OP_RANGE, .span = {(const uint8_t *)"ab", 2, true, (const uint8_t *)"b", 1}};
    CHECK(range(&s, &mid, &r, &hdr) == KV_OK && r.count == 2);
    kv_list_free(&r.kvs);
    /* end before key: empty, not an error */
    kv_op back = {.type = KV_OP_RANGE, .span = {(const uint8_t *)"c", 1, true, (const uint8_t *)"a", 1}};
    CHECK(range(&s, &back, &r, &hdr) == KV_OK && r.count == 0);
    kv_list_free(&r.kvs);
    /* invalid requests */
    kv_op bad = {.type = KV_OP_RANGE, .span = {(const uint8_t *)"", 0, false, NULL, 0}};
    CHECK(range(&s, &bad, &r, &hdr) == KV_ERR_INVALID);
    bad = (kv_op){.type = KV_OP_RANGE, .span = one_key("a"), .limit = -1};
    CHECK(range(&s, &bad, &r, &hdr) == KV_ERR_INVALID);
    store_close(&s);
}

static void test_prefix_end(void)
{
    uint8_t out[8];
    CHECK(kv_prefix_end((const uint8_t *)"a", 1, out) == 1 && out[0] == 'b');
    CHECK(kv_prefix_end((const uint8_t *)"a\xff\xff", 3, out) == 1 && out[0] == 'b');
    CHECK(kv_prefix_end((const uint8_t *)"ab", 2, out) == 2 && out[0] == 'a' && out[1] == 'c');
    CHECK(kv_prefix_end((const uint8_t *)"\xff\xff", 2, out) == 1 && out[0] == 0);
    CHECK(kv_prefix_end((const uint8_t *)"", 0, out) == 1 && out[0] == 0);
}

static void test_binary(void)
{
    store s;
    store_open(&s);
    static const uint8_t key[] = {'k', 0, 'x'};
    static const uint8_t val[] = {0, 0, 'v', 0};
    kv_op op = {.type = KV_OP_PUT, .span = {key, 3, false, NULL, 0}, .value = val, .value_len = 4};
    kv_txn t = {.n_success = 1, .success = &op};
    kv_result r;
    CHECK(apply_txn(&s, &t, &r) == KV_OK && r.err == KV_OK);
    kv_result_free(&r);
    put(&s, "k", ""); /* a prefix of the binary key, with an empty value */
    kv_op q = {.type = KV_OP_RANGE, .span = {key, 3, false, NULL, 0}};
    kv_op_result out;
    int64_t hdr;
    CHECK(range(&s, &q, &out, &hdr) == KV_OK && out.kvs.n == 1);
    if (out.kvs.n == 1)
        CHECK(out.kvs.items[0].key_len == 3 && memcmp(out.kvs.items[0].key, key, 3) == 0 &&
              out.kvs.items[0].value_len == 4 && memcmp(out.kvs.items[0].value, val, 4) == 0);
    kv_list_free(&out.kvs);
    CHECK(check_get(&s, "k", 0, "", 3, 3, 1));
    store_close(&s);
}

/* One compare against a key with create 2, mod 3, version 2, lease 7,
 * value "m"; expect[] is for EQUAL, NOT_EQUAL, GREATER, LESS. */
static void cmp_case(store *s, kv_compare c, const bool expect[4])
{
    for (int res = KV_CMP_EQUAL; res <= KV_CMP_LESS; res++) {
        c.result = (uint8_t)res;
        kv_op fail = {.type = KV_OP_RANGE, .span = one_key("x")};
        kv_txn t = {.n_compare = 1, .compare = &c, .n_failure = 1, .failure = &fail};
        kv_result r;
        CHECK(apply_txn(s, &t, &r) == KV_OK && r.err == KV_OK);
        CHECK_MSG(r.succeeded == expect[res - 1], "target %d result %d", c.target, res);
        CHECK(r.n_ops == (r.succeeded ? 0u : 1u));
        kv_result_free(&r);
    }
}

static void test_txn_compare(void)
{
    store s;
    store_open(&s);
    put(&s, "x", "a"); /* 2 */
    kv_op op = put_op("x", "m");
    op.lease = 7;
    kv_txn t = {.n_success = 1, .success = &op};
    kv_result r;
    buf grant; /* a PUT may only name a granted lease (takes no revision) */
    buf_init(&grant);
    CHECK(kv_encode_lease_grant(7, 60, &grant) == KV_OK);
    CHECK(apply_buf(&s, &grant, &r) == KV_OK && r.err == KV_OK);
    kv_result_free(&r);
    buf_free(&grant);
    CHECK(apply_txn(&s, &t, &r) == KV_OK && r.revision == 3);
    kv_result_free(&r);
    const uint8_t *x = (const uint8_t *)"x";
    static const bool eq[4] = {true, false, false, false};
    static const bool gt[4] = {false, true, true, false};
    static const bool lt[4] = {false, true, false, true};
    cmp_case(&s, (kv_compare){x, 1, KV_CMP_VALUE, 0, 0, (const uint8_t *)"m", 1}, eq);
    cmp_case(&s, (kv_compare){x, 1, KV_CMP_VALUE, 0, 0, (const uint8_t *)"a", 1}, gt);
    cmp_case(&s, (kv_compare){x, 1, KV_CMP_VALUE, 0, 0, (const uint8_t *)"mm", 2}, lt);
    cmp_case(&s, (kv_compare){x, 1, KV_CMP_VERSION, 0, 2, NULL, 0}, eq);
    cmp_case(&s, (kv_compare){x, 1, KV_CMP_VERSION, 0, 1, NULL, 0}, gt);
    cmp_case(&s, (kv_compare){x, 1, KV_CMP_CREATE, 0, 2, NULL, 0}, eq);
    cmp_case(&s, (kv_compare){x, 1, KV_CMP_CREATE, 0, 5, NULL, 0}, lt);
    cmp_case(&s, (kv_compare){x, 1, KV_CMP_MOD, 0, 3, NULL, 0}, eq);
    cmp_case(&s, (kv_compare){x, 1, KV_CMP_MOD, 0, 0, NULL, 0}, gt);
    cmp_case(&s, (kv_compare){x, 1, KV_CMP_LEASE, 0, 7, NULL, 0}, eq);
    cmp_case(&s, (kv_compare){x, 1, KV_CMP_LEASE, 0, 8, NULL, 0}, lt);
    /* a missing key: numbers are 0, a VALUE compare is always false */
    const uint8_t *y = (const uint8_t *)"y";
    static const bool never[4] = {false, false, false, false};
    cmp_case(&s, (kv_compare){y, 1, KV_CMP_VALUE, 0, 0, (const uint8_t *)"m", 1}, never);
    cmp_case(&s, (kv_compare){y, 1, KV_CMP_CREATE, 0, 0, NULL, 0}, eq);
    cmp_case(&s, (kv_compare){y, 1, KV_CMP_VERSION, 0, 1, NULL, 0}, lt);
    CHECK(kv_revision(s.k) == 3); /* compares and ranges never write */
    store_close(&s);
}

static void test_txn_multi(void)
{
    store s;
    store_open(&s);
    put(&s, "z", "old"); /* 2 */
    put(&s, "x", "x0");  /* 3 */
    kv_op ops[4] = {
        put_op("x", "x1"),
        put_op("y", "y1"),
        {.type = KV_OP_DELETE, .span = one_key("z"), .prev_kv = true},
        {.type = KV_OP_RANGE, .span = {(const uint8_t *)"", 0, true, (const uint8_t *)"", 1}},
    };
    ops[0].prev_kv = true;
    kv_compare c = {(const uint8_t *)"x", 1, KV_CMP_VALUE, KV_CMP_EQUAL, 0, (const uint8_t *)"x0", 2};
    kv_txn t = {.n_compare = 1, .compare = &c, .n_success = 4, .success = ops};
    kv_result r;
    CHECK(apply_txn(&s, &t, &r) == KV_OK && r.err == KV_OK && r.succeeded);
    CHECK(r.revision == 4 && r.n_ops == 4);
    if (r.n_ops == 4) {
        CHECK(r.ops[0].type == KV_OP_PUT && r.ops[0].kvs.n == 1 &&
              kv_is(&r.ops[0].kvs.items[0], "x0", 3, 3, 1));
        CHECK(r.ops[1].kvs.n == 0); /* no prev_kv asked */
        CHECK(r.ops[2].deleted == 1 && r.ops[2].kvs.n == 1 &&
              kv_is(&r.ops[2].kvs.items[0], "old", 2, 2, 1));
        /* the range sees the txn's own writes, at the txn's revision */
        CHECK(r.ops[3].count == 2 && r.ops[3].kvs.n == 2 &&
              kv_is(&r.ops[3].kvs.items[0], "x1", 3, 4, 2) &&
              kv_is(&r.ops[3].kvs.items[1], "y1", 4, 4, 1));
    }
    kv_result_free(&r);
    CHECK(check_get(&s, "x", 0, "x1", 3, 4, 2) && check_get(&s, "y", 0, "y1", 4, 4, 1));
    /* failed compare: the failure ops run, in one revision */
    kv_op f = put_op("w", "w1");
    t = (kv_txn){.n_compare = 1, .compare = &c, .n_success = 1, .success = ops, .n_failure = 1,
                 .failure = &f};
    CHECK(apply_txn(&s, &t, &r) == KV_OK && r.err == KV_OK && !r.succeeded && r.revision == 5);
    kv_result_free(&r);
    CHECK(check_get(&s, "w", 0, "w1", 5, 5, 1) && check_get(&s, "x", 0, "x1", 3, 4, 2));
    store_close(&s);
}

static void test_refused(void)
{
    store s;
    store_open(&s);
    put(&s, "a", "1");
    put(&s, "a", "2");
    put(&s, "a", "3"); /* 4 */
    kv_result r = compact(&s, 3);
    CHECK(r.err == KV_OK);
    /* a txn whose range asks a compacted revision is refused as a whole */
    kv_op ops[2] = {put_op("b", "1"), {.type = KV_OP_RANGE, .span = one_key("a"), .rev = 2}};
    kv_txn t = {.n_success = 2, .success = ops};
    CHECK(apply_txn(&s, &t, &r) == KV_OK && r.err == KV_ERR_COMPACTED && r.revision == 4);
    CHECK(r.compact_revision == 3 && r.n_ops == 0);
    kv_result_free(&r);
    ops[1].rev = 9;
    CHECK(apply_txn(&s, &t, &r) == KV_OK && r.err == KV_ERR_FUTURE_REV && r.revision == 4);
    kv_result_free(&r);
    kv_kv x;
    CHECK(get_at(&s, "b", 0, &x) == 0);
    r = compact(&s, 3);
    CHECK(r.err == KV_ERR_COMPACTED && kv_compact_revision(s.k) == 3);
    r = compact(&s, 5);
    CHECK(r.err == KV_ERR_FUTURE_REV && kv_compact_revision(s.k) == 3);
    /* a refused command inside a batch leaves the batch's other commands */
    buf good, bad;
    buf_init(&good);
    buf_init(&bad);
    kv_op p = put_op("c", "1");
    kv_txn tp = {.n_success = 1, .success = &p};
    CHECK(kv_encode_txn(&tp, &good) == KV_OK && kv_encode_txn(&t, &bad) == KV_OK);
    CHECK(kv_apply_begin(s.k) == KV_OK);
    CHECK(kv_apply_cmd(s.k, bad.data, bad.len, &r) == KV_OK && r.err == KV_ERR_FUTURE_REV);
    kv_result_free(&r);
    CHECK(kv_apply_cmd(s.k, good.data, good.len, &r) == KV_OK && r.err == KV_OK && r.revision == 5);
    kv_result_free(&r);
    CHECK(kv_apply_commit(s.k, ++s.index, 1) == KV_OK);
    CHECK(get_at(&s, "b", 0, &x) == 0 && check_get(&s, "c", 0, "1", 5, 5, 1));
    /* a rolled back batch restores the cached revision */
    CHECK(kv_apply_begin(s.k) == KV_OK);
    CHECK(kv_apply_cmd(s.k, good.data, good.len, &r) == KV_OK && r.revision == 6);
    kv_result_free(&r);
    kv_apply_rollback(s.k);
    CHECK(kv_revision(s.k) == 5 && check_get(&s, "c", 0, "1", 5, 5, 1));
    buf_free(&good);
    buf_free(&bad);
    store_close(&s);
}

static void test_encode_validation(void)
{
    buf b;
    buf_init(&b);
    kv_op op = put_op("", "v");
    kv_txn t = {.n_success = 1, .success = &op};
    CHECK(kv_encode_txn(&t, &b) == KV_ERR_INVALID); /* empty key */
    op = put_op("k", "v");
    op.span.has_end = true;
    op.span.end = (const uint8_t *)"z";
    op.span.end_len = 1;
    CHECK(kv_encode_txn(&t, &b) == KV_ERR_INVALID); /* PUT with a range end */
    op = put_op("k", "v");
    op.lease = -1;
    CHECK(kv_encode_txn(&t, &b) == KV_ERR_INVALID);
    kv_op ops[2] = {put_op("k", "1"), put_op("k", "2")};
    t = (kv_txn){.n_success = 2, .success = ops};
    CHECK(kv_encode_txn(&t, &b) == KV_ERR_INVALID); /* one key twice */
    ops[1] = (kv_op){.type = KV_OP_DELETE, .span = {(const uint8_t *)"a", 1, true, (const uint8_t *)"z", 1}};
    CHECK(kv_encode_txn(&t, &b) == KV_ERR_INVALID); /* put inside a deleted range */
    ops[1] = (kv_op){.type = KV_OP_RANGE, .span = one_key("k"), .limit = -2};
    CHECK(kv_encode_txn(&t, &b) == KV_ERR_INVALID);
    ops[1] = (kv_op){.type = 9, .span = one_key("k")};
    CHECK(kv_encode_txn(&t, &b) == KV_ERR_INVALID);
    kv_compare c = {(const uint8_t *)"k", 1, 9, KV_CMP_EQUAL, 0, NULL, 0};
    t = (kv_txn){.n_compare = 1, .compare = &c};
    CHECK(kv_encode_txn(&t, &b) == KV_ERR_INVALID); /* unknown target */
    c.target = KV_CMP_MOD;
    c.result = 0;
    CHECK(kv_encode_txn(&t, &b) == KV_ERR_INVALID);
    c.result = KV_CMP_LESS;
    c.number = -1;
    CHECK(kv_encode_txn(&t, &b) == KV_ERR_INVALID);
    CHECK(kv_encode_compact(0, &b) == KV_ERR_INVALID && kv_encode_compact(-5, &b) == KV_ERR_INVALID);
    CHECK(b.len == 0); /* refused encodes append nothing */
    c.number = 1;
    CHECK(kv_encode_txn(&t, &b) == KV_OK && b.len > 0);
    buf_free(&b);
}

static void expect_refused(store *s, const uint8_t *p, size_t n)
{
    int64_t rev = kv_revision(s->k);
    kv_result r;
    CHECK(kv_apply_begin(s->k) == KV_OK);
    CHECK(kv_apply_cmd(s->k, p, n, &r) == KV_OK);
    CHECK_MSG(r.err == KV_ERR_INVALID, "len %zu", n);
    CHECK(r.revision == rev && r.n_ops == 0);
    kv_result_free(&r);
    CHECK(kv_apply_commit(s->k, ++s->index, 1) == KV_OK);
    CHECK(kv_revision(s->k) == rev);
}

static void test_garbage(void)
{
    store s;
    store_open(&s);
    put(&s, "a", "1");
    kv_op ops[3] = {put_op("b", "2"), {.type = KV_OP_DELETE, .span = one_key("a"), .prev_kv = true},
                    {.type = KV_OP_RANGE, .span = {(const uint8_t *)"a", 1, true, (const uint8_t *)"", 1}, .limit = 3}};
    kv_compare c = {(const uint8_t *)"a", 1, KV_CMP_VALUE, KV_CMP_EQUAL, 0, (const uint8_t *)"1", 1};
    kv_txn t = {.n_compare = 1, .compare = &c, .n_success = 3, .success = ops};
    buf b;
    buf_init(&b);
    CHECK(kv_encode_txn(&t, &b) == KV_OK);
    for (size_t n = 0; n < b.len; n++)
        expect_refused(&s, b.data, n); /* every truncation */
    CHECK(buf_put_u8(&b, 0) == 0);
    expect_refused(&s, b.data, b.len); /* a trailing byte */
    expect_refused(&s, NULL, 0);
    /* a bool that is not 0/1: DELETE "a" with prev_kv = 2 */
    kv_op d = {.type = KV_OP_DELETE, .span = one_key("a"), .prev_kv = true};
    kv_txn td = {.n_success = 1, .success = &d};
    buf_reset(&b);
    CHECK(kv_encode_txn(&td, &b) == KV_OK && b.len == 22 && b.data[17] == 1);
    b.data[17] = 2;
    expect_refused(&s, b.data, b.len);
    /* an unknown version and kind */
    uint8_t bad[] = {1, 2, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_refused(&s, bad, sizeof bad); /* compact to revision 0 */
    bad[0] = 2;
    expect_refused(&s, bad, sizeof bad);
    bad[0] = 1;
    bad[1] = 7;
    expect_refused(&s, bad, sizeof bad);
    /* a huge op count must not allocate or read past the end */
    uint8_t big[] = {1, 1, 0xff, 0xff, 0xff, 0xff};
    expect_refused(&s, big, sizeof big);
    srand(42);
    uint8_t rnd[256];
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(rand() % (int)sizeof rnd);
        for (size_t j = 0; j < n; j++)
            rnd[j] = (uint8_t)rand();
        if (n > 1 && i % 2) { /* past the header, into the body parser */
            rnd[0] = 1;
            rnd[1] = 1;
        }
        expect_refused(&s, rnd, n);
    }
    /* the store still works and holds what it held */
    CHECK(check_get(&s, "a", 0, "1", 2, 2, 1));
    buf_free(&b);
    store_close(&s);
}

static int64_t hist_rows(store *s)
{
    sqlite3 *db;
    int64_t n = -1;
    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM kv_hist", -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(db);
    return n;
}

static void test_compaction(void)
{
    store s;
    store_open(&s);
    int64_t n;
    put(&s, "a", "1"); /* 2 */
    put(&s, "a", "2"); /* 3 */
    put(&s, "b", "1"); /* 4 */
    del(&s, "b", &n);  /* 5 */
    put(&s, "c", "1"); /* 6 */
    put(&s, "a", "3"); /* 7 */
    CHECK(hist_rows(&s) == 6);
    kv_result r = compact(&s, 6);
    CHECK(r.err == KV_OK && r.revision == 7);
    /* kept: a@3 (a's latest at or below 6), c@6, a@7; the rest is gone */
    CHECK(hist_rows(&s) == 3);
    CHECK(check_get(&s, "a", 6, "2", 2, 3, 2) && check_get(&s, "c", 6, "1", 6, 6, 1));
    kv_kv x;
    CHECK(get_at(&s, "b", 6, &x) == 0);
    CHECK(get_at(&s, "a", 5, &x) == KV_ERR_COMPACTED);
    CHECK(check_get(&s, "a", 0, "3", 2, 7, 3));
    /* the compact revision persists */
    kv_close(s.k);
    CHECK(kvfx_reopen(&s));
    CHECK(kv_compact_revision(s.k) == 6 && kv_revision(s.k) == 7);
    store_close(&s);
}

static int history(store *s, const kv_span *sp, int64_t from, size_t max, kv_event_list *ev,
                   int64_t *next)
{
    kv_conn *c = kv_reader_acquire(s->k);
    CHECK(c != NULL);
    if (!c)
        return KV_ERR_INTERNAL;
    int rc = kv_history(c, sp, from, max, true, ev, next);
    kv_reader_release(s->k, c);
    return rc;
}

static void test_history(void)
{
    store s;
    store_open(&s);
    int64_t n;
    put(&s, "a", "1"); /* 2 */
    kv_op two[2] = {put_op("b", "1"), put_op("a", "2")};
    kv_txn t = {.n_success = 2, .success = two};
    kv_result r;
    CHECK(apply_txn(&s, &t, &r) == KV_OK && r.revision == 3);
    kv_result_free(&r);
    del(&s, "a", &n);  /* 4 */
    put(&s, "zz", "1"); /* 5 */
    kv_span all = {(const uint8_t *)"", 0, true, (const uint8_t *)"", 1};
    kv_event_list ev;
    int64_t next;
    CHECK(history(&s, &all, 2, 2, &ev, &next) == KV_OK);
    /* rev 2 then the whole of rev 3, though that passes max_events */
    CHECK(ev.n == 3 && next == 4);
    if (ev.n == 3) {
        CHECK(ev.items[0].kv.mod_revision == 2 && !ev.items[0].has_prev);
        CHECK(ev.items[1].kv.key[0] == 'b' && ev.items[2].kv.key[0] == 'a'); /* sub order */
        CHECK(ev.items[2].has_prev && kv_is(&ev.items[2].prev_kv, "1", 2, 2, 1));
        CHECK(kv_is(&ev.items[2].kv, "2", 2, 3, 2));
    }
    kv_event_list_free(&ev);
    CHECK(history(&s, &all, 2, 1, &ev, &next) == KV_OK && ev.n == 1 && next == 3);
    kv_event_list_free(&ev);
    CHECK(history(&s, &all, 3, 1, &ev, &next) == KV_OK && ev.n == 2 && next == 4);
    kv_event_list_free(&ev);
    kv_span a = one_key("a");
    CHECK(history(&s, &a, 4, 10, &ev, &next) == KV_OK && ev.n == 1 && next == 6);
    if (ev.n == 1)
        CHECK(ev.items[0].type == KV_EVENT_DELETE && ev.items[0].kv.mod_revision == 4 &&
              ev.items[0].has_prev && kv_is(&ev.items[0].prev_kv, "2", 2, 3, 2));
    kv_event_list_free(&ev);
    /* a single key reads only its own records (2, 3, 4), cut the same way */
    CHECK(history(&s, &a, 2, 10, &ev, &next) == KV_OK && ev.n == 3 && next == 6);
    if (ev.n == 3)
        CHECK(ev.items[0].kv.mod_revision == 2 && ev.items[1].kv.mod_revision == 3 &&
              ev.items[2].kv.mod_revision == 4 && ev.items[2].type == KV_EVENT_DELETE);
    kv_event_list_free(&ev);
    CHECK(history(&s, &a, 2, 1, &ev, &next) == KV_OK && ev.n == 1 && next == 3);
    kv_event_list_free(&ev);
    uint8_t end[2];
    kv_span pz = {(const uint8_t *)"z", 1, true, end, kv_prefix_end((const uint8_t *)"z", 1, end)};
    CHECK(history(&s, &pz, 2, 10, &ev, &next) == KV_OK && ev.n == 1 && next == 6);
    kv_event_list_free(&ev);
    CHECK(history(&s, &all, 6, 10, &ev, &next) == KV_OK && ev.n == 0 && next == 6);
    CHECK(history(&s, &all, 9, 10, &ev, &next) == KV_OK && ev.n == 0 && next == 9);
    r = compact(&s, 3);
    CHECK(history(&s, &all, 3, 10, &ev, &next) == KV_ERR_COMPACTED);
    CHECK(history(&s, &all, 4, 10, &ev, &next) == KV_OK && ev.n == 2);
    kv_event_list_free(&ev);
    store_close(&s);
}

/* A batch of history stops once it holds KV_HISTORY_MAX_BYTES of keys and
 * values, at a revision boundary, as it does at max_events: 1 000 events
 * of big values were one answer of that many values. A revision is never
 * split, and following next_rev returns every event once. */
static void test_history_bytes_cap(void)
{
    store s;
    store_open(&s);
    size_t big = 1u << 20, n_big = 2 * (KV_HISTORY_MAX_BYTES / big) + 1;
    char *v = malloc(big + 1);
    CHECK(v != NULL);
    if (!v)
        return;
    memset(v, 'x', big);
    v[big] = 0;
    char key[16];
    for (size_t i = 0; i < n_big; i++) { /* revisions 2 .. n_big + 1 */
        snprintf(key, sizeof key, "big%02zu", i);
        put(&s, key, v);
    }
    kv_op three[3] = {put_op("t1", v), put_op("t2", v), put_op("t3", v)};
    kv_txn t = {.n_success = 3, .success = three};
    kv_result r;
    CHECK(apply_txn(&s, &t, &r) == KV_OK && r.revision == (int64_t)n_big + 2);
    kv_result_free(&r);
    free(v);
    kv_span all = {(const uint8_t *)"", 0, true, (const uint8_t *)"", 1};
    kv_event_list ev;
    int64_t next, from = 2, want = 2;
    size_t batches = 0;
    while (from <= (int64_t)n_big + 2) {
        CHECK(history(&s, &all, from, 1000, &ev, &next) == KV_OK && ev.n > 0);
        if (ev.n == 0)
            break;
        size_t bytes = 0;
        for (size_t i = 0; i < ev.n; i++) {
            int64_t rev = ev.items[i].kv.mod_revision;
            CHECK(rev == want || (rev == want - 1 && rev == (int64_t)n_big + 2));
            want = rev + 1;
            if (i + 1 < ev.n && ev.items[i + 1].kv.mod_revision != rev)
                bytes += ev.items[i].kv.key_len + ev.items[i].kv.value_len;
        }
        /* what came before the last revision stayed under the cap */
        CHECK(bytes < KV_HISTORY_MAX_BYTES);
        CHECK(next == ev.items[ev.n - 1].kv.mod_revision + 1);
        if (batches == 0) /* four values of 1 MiB and their keys pass 4 MiB */
            CHECK(ev.n == KV_HISTORY_MAX_BYTES / big && next == 2 + (int64_t)ev.n);
        if (ev.items[ev.n - 1].kv.mod_revision == (int64_t)n_big + 2) /* the txn, whole */
            CHECK(ev.n >= 3 && ev.items[ev.n - 3].kv.mod_revision == (int64_t)n_big + 2);
        kv_event_list_free(&ev);
        from = next;
        batches++;
    }
    CHECK(want == (int64_t)n_big + 3 && batches >= 3);
    store_close(&s);
}

static void test_applied_persists(void)
{
    store s;
    store_open(&s);
    put(&s, "a", "1");
    CHECK(kv_apply_begin(s.k) == KV_OK && kv_apply_commit(s.k, 41, 7) == KV_OK);
    uint64_t idx, term;
    kv_applied(s.k, &idx, &term);
    CHECK(idx == 41 && term == 7);
    kv_close(s.k);
    CHECK(kvfx_reopen(&s));
    kv_applied(s.k, &idx, &term);
    CHECK(idx == 41 && term == 7 && kv_revision(s.k) == 2);
    CHECK(check_get(&s, "a", 0, "1", 2, 2, 1));
    store_close(&s);
}

/* The log flusher starts a write-out after commits (a real thread, waited
 * for with a deadline), does nothing without commits, and goes with
 * kv_close; the data it wrote out reads back after a reopen. */
static void test_wal_flusher(void)
{
    store s;
    store_open(&s);
    CHECK(kv_wal_flushes(s.k) == 0); /* none started yet */
    CHECK(kv_start_wal_flusher(s.k) == 0);
    CHECK(kv_start_wal_flusher(s.k) == 0); /* a second start keeps the first */
    put(&s, "f", "1");
    uint64_t deadline = now_ms() + 10000;
    while (kv_wal_flushes(s.k) == 0 && now_ms() < deadline)
        sched_yield();
    CHECK(kv_wal_flushes(s.k) >= 1);
    uint64_t before = kv_wal_flushes(s.k); /* one commit, so one pass at most... */
    CHECK(before == 1);
    put(&s, "f", "2"); /* ...until this one: idle or pausing, the thread comes back */
    deadline = now_ms() + 10000;
    while (kv_wal_flushes(s.k) == before && now_ms() < deadline)
        sched_yield();
    CHECK(kv_wal_flushes(s.k) == before + 1);
    kv_close(s.k); /* joins the thread: ASan/valgrind see nothing left */
    CHECK(kvfx_reopen(&s));
    CHECK(check_get(&s, "f", 0, "2", 2, 3, 2));
    store_close(&s);
}

static void add_members(store *s)
{
    CHECK(kv_apply_begin(s->k) == KV_OK);
    CHECK(kv_apply_member(s->k, KV_MEMBER_ADD, 1, "http://127.0.0.1:12379") == KV_OK);
    CHECK(kv_apply_member(s->k, KV_MEMBER_ADD, 3, "http://127.0.0.1:32379") == KV_OK);
    CHECK(kv_apply_member(s->k, KV_MEMBER_ADD_LEARNER, 2, "http://127.0.0.1:22379") == KV_OK);
    CHECK(kv_apply_commit(s->k, ++s->index, 1) == KV_OK);
}

static bool members_are(store *s, const uint64_t *ids, const bool *learner, size_t n)
{
    kv_conn *c = kv_reader_acquire(s->k);
    kv_member *m;
    size_t got;
    bool ok = c && kv_members(c, &m, &got) == KV_OK && got == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = m[i].id == ids[i] && m[i].is_learner == learner[i] && m[i].peer_url[0] == 'h';
    if (c)
        kv_members_free(m, got);
    kv_reader_release(s->k, c);
    return ok;
}

static void test_members(void)
{
    store s;
    store_open(&s);
    add_members(&s);
    CHECK(members_are(&s, (uint64_t[]){1, 2, 3}, (bool[]){false, true, false}, 3));
    CHECK(kv_apply_begin(s.k) == KV_OK);
    CHECK(kv_apply_member(s.k, KV_MEMBER_PROMOTE, 2, NULL) == KV_OK);
    CHECK(kv_apply_member(s.k, KV_MEMBER_REMOVE, 1, NULL) == KV_OK);
    CHECK(kv_apply_member(s.k, KV_MEMBER_REMOVE, 9, NULL) == KV_ERR_NOT_FOUND);
    CHECK(kv_apply_member(s.k, KV_MEMBER_PROMOTE, 9, NULL) == KV_ERR_NOT_FOUND);
    CHECK(kv_apply_member(s.k, KV_MEMBER_ADD, 0, "http://x:1") == KV_ERR_INVALID);
    CHECK(kv_apply_member(s.k, KV_MEMBER_ADD, 5, NULL) == KV_ERR_INVALID);
    CHECK(kv_apply_member(s.k, 77, 5, "http://x:1") == KV_ERR_INVALID);
    CHECK(kv_apply_commit(s.k, ++s.index, 1) == KV_OK);
    CHECK(members_are(&s, (uint64_t[]){2, 3}, (bool[]){false, false}, 2));
    /* the removed id is remembered; the unknown one (9) is not */
    kv_conn *c = kv_reader_acquire(s.k);
    uint64_t *removed = NULL;
    size_t n_removed = 0;
    CHECK(c && kv_removed_members(c, &removed, &n_removed) == KV_OK);
    CHECK(n_removed == 1 && removed && removed[0] == 1);
    free(removed);
    kv_reader_release(s.k, c);
    CHECK(kv_revision(s.k) == 1); /* membership is not a kv write */
    store_close(&s);
}

/* Every key, with values, compared between two stores. */
static bool same_reads(store *a, store *b, int64_t rev)
{
    kv_op q = {.type = KV_OP_RANGE, .span = {(const uint8_t *)"", 0, true, (const uint8_t *)"", 1}, .rev = rev};
    kv_op_result ra, rb;
    int64_t ha, hb;
    if (range(a, &q, &ra, &ha) != KV_OK)
        return false;
    if (range(b, &q, &rb, &hb) != KV_OK) {
        kv_list_free(&ra.kvs);
        return false;
    }
    bool ok = ha == hb && ra.count == rb.count && ra.kvs.n == rb.kvs.n;
    for (size_t i = 0; ok && i < ra.kvs.n; i++) {
        kv_kv *x = &ra.kvs.items[i], *y = &rb.kvs.items[i];
        ok = x->key_len == y->key_len && memcmp(x->key, y->key, x->key_len) == 0 &&
             x->value_len == y->value_len && memcmp(x->value, y->value, x->value_len) == 0 &&
             x->create_revision == y->create_revision && x->mod_revision == y->mod_revision &&
             x->version == y->version && x->lease == y->lease;
    }
    kv_list_free(&ra.kvs);
    kv_list_free(&rb.kvs);
    return ok;
}

static void test_snapshot(void)
{
    store a, b;
    store_open(&a);
    store_open(&b);
    int64_t n;
    for (int i = 0; i < 50; i++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "k%02d", i % 17);
        snprintf(val, sizeof val, "v%d", i);
        put(&a, key, val);
    }
    del(&a, "k03", &n);
    kv_result r = compact(&a, 20);
    CHECK(r.err == KV_OK);
    add_members(&a);
    put(&b, "other", "x");
    kv_conn *early = kv_reader_acquire(b.k); /* a reader opened before the restore */
    char snap[160], err[256] = "";
    snprintf(snap, sizeof snap, "%s/snap.db", a.dir);
    CHECK(kvfx_snapshot(&a, snap, NULL) == KV_OK);
    CHECK(kvfx_snapshot(&a, snap, NULL) == KV_OK); /* overwrites a stale file */
    CHECK_MSG(kv_restore(b.k, snap, err, sizeof err) == KV_OK, "%s", err);
    CHECK(kv_revision(b.k) == kv_revision(a.k) && kv_compact_revision(b.k) == 20);
    uint64_t ia, ta, ib, tb;
    kv_applied(a.k, &ia, &ta);
    kv_applied(b.k, &ib, &tb);
    CHECK(ia == ib && ta == tb);
    CHECK(same_reads(&a, &b, 0) && same_reads(&a, &b, 20) && same_reads(&a, &b, 40));
    kv_kv x;
    CHECK(get_at(&b, "other", 0, &x) == 0);
    int64_t rev, compact_rev;
    CHECK(early && kv_read_revisions(early, &rev, &compact_rev) == KV_OK && rev == kv_revision(a.k));
    kv_reader_release(b.k, early);
    CHECK(members_are(&b, (uint64_t[]){1, 2, 3}, (bool[]){false, true, false}, 3));
    /* the restored store goes on applying */
    CHECK(put(&b, "new", "1") == kv_revision(a.k) + 1);
    store_close(&a);
    store_close(&b);
}

/* A background snapshot holds one consistent applied state, whatever the
 * writer applies while it copies, names the index of that state, and the
 * file's true size and CRC-32C. */
static void test_snapshot_background(void)
{
    store a, b;
    store_open(&a);
    store_open(&b);
    for (int i = 0; i < 200; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%03d", i);
        put(&a, key, "before");
    }
    uint64_t before, t0, after, t1;
    kv_applied(a.k, &before, &t0);
    char snap[160], err[256] = "";
    snprintf(snap, sizeof snap, "%s/bg.db", a.dir);
    kv_snapjob *j = kv_snapjob_start(a.k, snap);
    CHECK(j != NULL);
    for (int i = 0; i < 50; i++) /* the writer goes on meanwhile */
        put(&a, "later", "x");
    kv_applied(a.k, &after, &t1);
    kv_snapfile f = {0};
    CHECK(j && kvfx_snapjob_wait(j, &f) == KV_OK);
    uint64_t index = f.index, size = 0;
    uint32_t crc = 0;
    CHECK(index >= before && index <= after && f.term == t0);
    CHECK(file_sum(snap, false, &size, &crc) == 0 && size > 0);
    CHECK(f.size == size && f.crc == crc);
    CHECK_MSG(kv_restore(b.k, snap, err, sizeof err) == KV_OK, "%s", err);
    uint64_t ib, tb;
    kv_applied(b.k, &ib, &tb);
    CHECK(ib == index);
    /* the snapshot plus the log after its index gives the writer's state */
    b.index = ib;
    for (uint64_t i = index; i < after; i++)
        put(&b, "later", "x");
    CHECK(kv_revision(b.k) == kv_revision(a.k) && same_reads(&a, &b, 0));
    store_close(&a);
    store_close(&b);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void sql_file(const char *path, const char *sql)
{
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
}

static void expect_restore_refused(store *s, const char *file)
{
    char err[256] = "";
    int64_t rev = kv_revision(s->k);
    CHECK(kv_restore(s->k, file, err, sizeof err) != KV_OK);
    CHECK(err[0] != 0);
    CHECK(kv_revision(s->k) == rev && check_get(s, "keep", 0, "1", 2, 2, 1));
}

static void test_restore_refuses(void)
{
    store s;
    store_open(&s);
    put(&s, "keep", "1");
    char p[160];
    snprintf(p, sizeof p, "%s/text.db", s.dir);
    write_file(p, "this is not a database, just text that came over the network\n");
    expect_restore_refused(&s, p);
    snprintf(p, sizeof p, "%s/other.db", s.dir);
    sql_file(p, "CREATE TABLE t(x); INSERT INTO t VALUES(1)");
    expect_restore_refused(&s, p);
    snprintf(p, sizeof p, "%s/missing.db", s.dir);
    expect_restore_refused(&s, p);
    /* a real kv snapshot with an unknown format, or an extra trigger */
    snprintf(p, sizeof p, "%s/fmt.db", s.dir);
    CHECK(kvfx_snapshot(&s, p, NULL) == KV_OK);
    sql_file(p, "UPDATE kv_meta SET value = 99 WHERE name = 'format'");
    expect_restore_refused(&s, p);
    snprintf(p, sizeof p, "%s/trig.db", s.dir);
    CHECK(kvfx_snapshot(&s, p, NULL) == KV_OK);
    sql_file(p, "CREATE TRIGGER t AFTER INSERT ON kv_cur BEGIN DELETE FROM kv_meta; END");
    expect_restore_refused(&s, p);
    store_close(&s);
}

static void test_damaged_open(void)
{
    store s;
    store_open(&s);
    put(&s, "a", "1");
    char p[160];
    snprintf(p, sizeof p, "%s/bad.db", s.dir);
    write_file(p, "garbage garbage garbage garbage garbage garbage garbage garbage garbage\n");
    kv *k = NULL;
    char err[256] = "";
    CHECK(kv_open(p, &k, err, sizeof err) != KV_OK && k == NULL && err[0]);
    snprintf(p, sizeof p, "%s/fmt.db", s.dir);
    CHECK(kvfx_snapshot(&s, p, NULL) == KV_OK);
    sql_file(p, "UPDATE kv_meta SET value = 9 WHERE name = 'format'");
    err[0] = 0;
    CHECK(kv_open(p, &k, err, sizeof err) != KV_OK && strstr(err, "format") != NULL);
    store_close(&s);
}

static void test_reader_pool(void)
{
    store s;
    store_open(&s);
    kv_conn *c[65];
    for (int i = 0; i < 64; i++) {
        c[i] = kv_reader_acquire(s.k);
        CHECK(c[i] != NULL);
    }
    c[64] = kv_reader_acquire(s.k);
    CHECK(c[64] == NULL); /* all busy: refuse rather than block */
    kv_reader_release(s.k, c[10]);
    kv_conn *again = kv_reader_acquire(s.k);
    CHECK(again == c[10]);
    for (int i = 0; i < 64; i++)
        kv_reader_release(s.k, c[i]);
    store_close(&s);
}

/* ---- readers on other threads see one consistent view per read ---- */

typedef struct {
    store *s;
    atomic_bool done;
    atomic_int reads, bad;
} race;

static void *reader_loop(void *arg)
{
    race *r = arg;
    kv_op all = {.type = KV_OP_RANGE, .span = {(const uint8_t *)"", 0, true, (const uint8_t *)"", 1}};
    while (!atomic_load(&r->done)) {
        kv_conn *c = kv_reader_acquire(r->s->k);
        kv_op_result out;
        int64_t hdr;
        if (!c || kv_range(c, &all, &out, &hdr) != KV_OK) {
            r->bad++;
        } else {
            /* every write adds one key: the count must match the header */
            if (out.count != hdr - 1 || out.kvs.n != (size_t)out.count)
                r->bad++;
            kv_list_free(&out.kvs);
        }
        kv_reader_release(r->s->k, c);
        r->reads++;
    }
    return NULL;
}

static void test_concurrent_readers(void)
{
    store s;
    store_open(&s);
    race r = {.s = &s};
    atomic_init(&r.done, false);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, reader_loop, &r) == 0);
    for (int i = 0; i < 300; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%04d", i);
        put(&s, key, "v");
    }
    atomic_store(&r.done, true);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK(r.bad == 0 && r.reads > 0);
    CHECK(kv_revision(s.k) == 301);
    store_close(&s);
}

int main(void)
{
    RUN(test_revisions);
    RUN(test_old_revisions);
    RUN(test_range);
    RUN(test_prefix_end);
    RUN(test_binary);
    RUN(test_txn_compare);
    RUN(test_txn_multi);
    RUN(test_refused);
    RUN(test_encode_validation);
    RUN(test_garbage);
    RUN(test_compaction);
    RUN(test_history);
    RUN(test_history_bytes_cap);
    RUN(test_applied_persists);
    RUN(test_members);
    RUN(test_snapshot);
    RUN(test_snapshot_background);
    RUN(test_restore_refuses);
    RUN(test_damaged_open);
    RUN(test_reader_pool);
    RUN(test_concurrent_readers);
    RUN(test_wal_flusher);
    TEST_MAIN_END();
}
