/* lease_test: leases in the kv state machine through kv.h — grant,
 * keepalive, revoke (all attached keys deleted in one revision, DELETE
 * records in history), PUT and txn refused for an unknown lease with
 * nothing written, the encoders' and decoder's refusals, and lease state
 * surviving reopen and snapshot restore. Every store lives in a fresh
 * mkdtemp directory removed at the end. */
#include "kv/kv.h"
#include "../test.h"
#include "kv_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef kvfx store;

static void store_open(store *s) { kvfx_open(s, "lease_test"); }

static void store_close(store *s) { kvfx_close(s); }

/* Applies one encoded command as its own batch; returns res.err. */
static int apply(store *s, const buf *cmd, kv_result *res)
{
    bool begin_ok, commit_ok;
    CHECK(kvfx_apply(s, cmd, res, &begin_ok, &commit_ok) == KV_OK);
    CHECK(begin_ok);
    CHECK(commit_ok);
    return res->err;
}

enum { GRANT, KEEP, REVOKE };

/* Runs one lease command; returns res.err, and the result's TTL in *ttl. */
static int lease_cmd(store *s, int what, int64_t id, int64_t ttl_in, int64_t *ttl)
{
    buf b;
    buf_init(&b);
    int rc = what == GRANT  ? kv_encode_lease_grant(id, ttl_in, &b)
             : what == KEEP ? kv_encode_lease_keepalive(id, &b)
                            : kv_encode_lease_revoke(id, &b);
    CHECK(rc == KV_OK);
    kv_result r;
    int err = apply(s, &b, &r);
    if (err == KV_OK) {
        CHECK(r.lease_id == id);
        CHECK(r.lease_op == (what == GRANT ? KV_LEASE_GRANTED
                             : what == KEEP ? KV_LEASE_KEPT : KV_LEASE_REVOKED));
    } else {
        CHECK(r.lease_op == KV_LEASE_NONE);
    }
    if (ttl)
        *ttl = r.lease_ttl;
    kv_result_free(&r);
    buf_free(&b);
    return err;
}

static kv_op put_op(const char *key, const char *val, int64_t lease)
{
    return (kv_op){.type = KV_OP_PUT,
                   .span = {(const uint8_t *)key, (uint32_t)strlen(key), false, NULL, 0},
                   .value = (const uint8_t *)val, .value_len = (uint32_t)strlen(val),
                   .lease = lease};
}

/* Applies a txn of the given ops; returns res.err. */
static int txn(store *s, const kv_op *ops, size_t n)
{
    kv_txn t = {.n_success = n, .success = ops};
    buf b;
    buf_init(&b);
    CHECK(kv_encode_txn(&t, &b) == KV_OK);
    kv_result r;
    int err = apply(s, &b, &r);
    kv_result_free(&r);
    buf_free(&b);
    return err;
}

static int put(store *s, const char *key, const char *val, int64_t lease)
{
    kv_op op = put_op(key, val, lease);
    return txn(s, &op, 1);
}

/* The lease's TTL and its keys joined by ',' (KV_ERR_NOT_FOUND if none). */
static int lease_get(store *s, int64_t id, int64_t *ttl, char *keys, size_t cap)
{
    kv_conn *c = kv_reader_acquire(s->k);
    kv_list l;
    int64_t hdr;
    int rc = kv_lease_get(c, id, ttl, &l, &hdr);
    keys[0] = 0;
    for (size_t i = 0; rc == KV_OK && i < l.n; i++) {
        size_t len = strlen(keys);
        snprintf(keys + len, cap - len, "%s%.*s", i ? "," : "", (int)l.items[i].key_len,
                 (const char *)l.items[i].key);
        CHECK(l.items[i].value == NULL); /* keys only */
    }
    CHECK(rc != KV_OK || hdr == kv_revision(s->k));
    kv_list_free(&l);
    kv_reader_release(s->k, c);
    return rc;
}

static size_t lease_count(store *s)
{
    kv_conn *c = kv_reader_acquire(s->k);
    kv_lease *ls;
    size_t n = 0;
    int64_t hdr;
    CHECK(kv_lease_list(c, &ls, &n, &hdr) == KV_OK);
    for (size_t i = 1; i < n; i++)
        CHECK(ls[i - 1].id < ls[i].id);
    free(ls);
    kv_reader_release(s->k, c);
    return n;
}

static bool key_exists(store *s, const char *key)
{
    kv_op q = {.type = KV_OP_RANGE,
               .span = {(const uint8_t *)key, (uint32_t)strlen(key), false, NULL, 0}};
    kv_op_result r;
    int64_t hdr;
    kv_conn *c = kv_reader_acquire(s->k);
    CHECK(kv_range(c, &q, &r, &hdr) == KV_OK);
    kv_reader_release(s->k, c);
    bool found = r.kvs.n == 1;
    kv_list_free(&r.kvs);
    return found;
}

/* ---- cases ---- */

static void test_grant_keepalive(void)
{
    store s;
    store_open(&s);
    int64_t rev = kv_revision(s.k), ttl = 0;
    CHECK(lease_cmd(&s, GRANT, 7, 30, &ttl) == KV_OK && ttl == 30);
    CHECK(lease_cmd(&s, GRANT, 7, 10, NULL) == KV_ERR_EXISTS);
    CHECK(lease_cmd(&s, KEEP, 7, 0, &ttl) == KV_OK && ttl == 30);
    CHECK(lease_cmd(&s, KEEP, 8, 0, NULL) == KV_ERR_NOT_FOUND);
    CHECK(lease_cmd(&s, GRANT, KV_LEASE_MAX_ID, KV_LEASE_MAX_TTL, NULL) == KV_OK);
    CHECK(kv_revision(s.k) == rev); /* leases take no revision */
    char keys[64];
    CHECK(lease_get(&s, 7, &ttl, keys, sizeof keys) == KV_OK && ttl == 30 && keys[0] == 0);
    CHECK(lease_get(&s, 8, &ttl, keys, sizeof keys) == KV_ERR_NOT_FOUND);
    CHECK(lease_count(&s) == 2);
    store_close(&s);
}

static void test_put_needs_lease(void)
{
    store s;
    store_open(&s);
    int64_t rev = kv_revision(s.k);
    CHECK(put(&s, "a", "1", 5) == KV_ERR_NOT_FOUND);
    kv_op ops[2] = {put_op("b", "2", 0), put_op("c", "3", 5)};
    CHECK(txn(&s, ops, 2) == KV_ERR_NOT_FOUND); /* refused whole: b not written */
    CHECK(kv_revision(s.k) == rev && !key_exists(&s, "a") && !key_exists(&s, "b"));
    CHECK(lease_cmd(&s, GRANT, 5, 60, NULL) == KV_OK);
    CHECK(txn(&s, ops, 2) == KV_OK && key_exists(&s, "b") && key_exists(&s, "c"));
    CHECK(put(&s, "a", "1", 5) == KV_OK);
    int64_t ttl;
    char keys[64];
    CHECK(lease_get(&s, 5, &ttl, keys, sizeof keys) == KV_OK && strcmp(keys, "a,c") == 0);
    /* re-putting a key without the lease detaches it */
    CHECK(put(&s, "c", "4", 0) == KV_OK);
    CHECK(lease_get(&s, 5, &ttl, keys, sizeof keys) == KV_OK && strcmp(keys, "a") == 0);
    store_close(&s);
}

/* Counts history events at exactly revision rev, all DELETEs. */
static size_t deletes_at(store *s, int64_t rev)
{
    static const uint8_t zero[1] = {0};
    kv_span all = {zero, 1, true, zero, 1};
    kv_event_list ev;
    int64_t next;
    kv_conn *c = kv_reader_acquire(s->k);
    CHECK(kv_history(c, &all, rev, 1000, false, &ev, &next) == KV_OK);
    kv_reader_release(s->k, c);
    size_t n = 0;
    for (size_t i = 0; i < ev.n; i++) {
        CHECK(ev.items[i].kv.mod_revision == rev && ev.items[i].type == KV_EVENT_DELETE);
        n++;
    }
    kv_event_list_free(&ev);
    return n;
}

static void test_revoke_one_revision(void)
{
    store s;
    store_open(&s);
    CHECK(lease_cmd(&s, GRANT, 9, 60, NULL) == KV_OK);
    CHECK(lease_cmd(&s, GRANT, 10, 60, NULL) == KV_OK);
    /* more keys than a client txn may hold */
    char key[32];
    for (int i = 0; i < KV_MAX_TXN_OPS + 20; i++) {
        snprintf(key, sizeof key, "svc/%03d", i);
        CHECK(put(&s, key, "up", 9) == KV_OK);
    }
    CHECK(put(&s, "other", "x", 10) == KV_OK && put(&s, "plain", "y", 0) == KV_OK);
    int64_t rev = kv_revision(s.k);
    CHECK(lease_cmd(&s, REVOKE, 9, 0, NULL) == KV_OK);
    CHECK(kv_revision(s.k) == rev + 1);
    CHECK(deletes_at(&s, rev + 1) == (size_t)KV_MAX_TXN_OPS + 20);
    CHECK(!key_exists(&s, "svc/000") && key_exists(&s, "other") && key_exists(&s, "plain"));
    int64_t ttl;
    char keys[64];
    CHECK(lease_get(&s, 9, &ttl, keys, sizeof keys) == KV_ERR_NOT_FOUND);
    CHECK(lease_cmd(&s, REVOKE, 9, 0, NULL) == KV_ERR_NOT_FOUND);
    CHECK(lease_cmd(&s, KEEP, 9, 0, NULL) == KV_ERR_NOT_FOUND);
    CHECK(put(&s, "late", "z", 9) == KV_ERR_NOT_FOUND);
    /* a lease without keys is revoked without a revision */
    CHECK(lease_cmd(&s, GRANT, 11, 60, NULL) == KV_OK);
    rev = kv_revision(s.k);
    CHECK(lease_cmd(&s, REVOKE, 11, 0, NULL) == KV_OK && kv_revision(s.k) == rev);
    CHECK(lease_count(&s) == 1);
    store_close(&s);
}

static void test_bad_commands(void)
{
    buf b;
    buf_init(&b);
    CHECK(kv_encode_lease_grant(0, 10, &b) == KV_ERR_INVALID);
    CHECK(kv_encode_lease_grant(-1, 10, &b) == KV_ERR_INVALID);
    CHECK(kv_encode_lease_grant(KV_LEASE_MAX_ID + 1, 10, &b) == KV_ERR_INVALID);
    CHECK(kv_encode_lease_grant(1, 0, &b) == KV_ERR_INVALID);
    CHECK(kv_encode_lease_grant(1, -5, &b) == KV_ERR_INVALID);
    CHECK(kv_encode_lease_grant(1, KV_LEASE_MAX_TTL + 1, &b) == KV_ERR_INVALID);
    CHECK(kv_encode_lease_revoke(0, &b) == KV_ERR_INVALID);
    CHECK(kv_encode_lease_keepalive(KV_LEASE_MAX_ID + 1, &b) == KV_ERR_INVALID);
    CHECK(b.len == 0);
    store s;
    store_open(&s);
    /* truncated, trailing and hand-made out-of-range commands are refused */
    CHECK(kv_encode_lease_grant(3, 10, &b) == KV_OK);
    kv_result r;
    buf cut = {b.data, b.len - 1, b.cap};
    CHECK(apply(&s, &cut, &r) == KV_ERR_INVALID);
    CHECK(buf_put_u8(&b, 0) == 0);
    CHECK(apply(&s, &b, &r) == KV_ERR_INVALID);
    b.len -= 1;
    b.data[b.len - 1] = 0x7f; /* ttl far above the maximum */
    CHECK(apply(&s, &b, &r) == KV_ERR_INVALID);
    CHECK(lease_count(&s) == 0);
    buf_free(&b);
    store_close(&s);
}

static void test_survives_reopen_and_restore(void)
{
    store s;
    store_open(&s);
    CHECK(lease_cmd(&s, GRANT, 21, 15, NULL) == KV_OK);
    CHECK(put(&s, "k", "v", 21) == KV_OK);
    kv_close(s.k);
    CHECK(kvfx_reopen(&s));
    if (!s.k) {
        store_close(&s);
        return;
    }
    int64_t ttl;
    char keys[64];
    CHECK(lease_get(&s, 21, &ttl, keys, sizeof keys) == KV_OK && ttl == 15 &&
          strcmp(keys, "k") == 0);
    char snap[160];
    snprintf(snap, sizeof snap, "%s/snap.db", s.dir);
    CHECK(kvfx_snapshot(&s, snap, NULL) == KV_OK);
    CHECK(lease_cmd(&s, REVOKE, 21, 0, NULL) == KV_OK);
    CHECK(lease_count(&s) == 0);
    char err[256] = "";
    CHECK_MSG(kv_restore(s.k, snap, err, sizeof err) == KV_OK, "%s", err);
    CHECK(lease_get(&s, 21, &ttl, keys, sizeof keys) == KV_OK && strcmp(keys, "k") == 0);
    store_close(&s);
}

int main(void)
{
    RUN(test_grant_keepalive);
    RUN(test_put_needs_lease);
    RUN(test_revoke_one_revision);
    RUN(test_bad_commands);
    RUN(test_survives_reopen_and_restore);
    TEST_MAIN_END();
}
