/* kv_integrity_test: the "Integrity and alarms" contract of kv through
 * kv.h — row checksums verified on every read path (a damaged row is
 * never served), damaged snapshots refused, kv_hash, alarms as replicated
 * state, the NOSPACE refusal, kv_db_size, the format check, and the
 * failpoints' effect (an internal error, state and applied index
 * unchanged). Damage is done with the sqlite3 API on a closed kv.db. */
#include "kv/kv.h"
#include "../test.h"
#include "kv_fixture.h"
#include "util/failpoint.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static int apply(kvfx *f, const buf *cmd, kv_result *res, bool *committed)
{
    bool begin_ok, commit_ok;
    int rc = kvfx_apply(f, cmd, res, &begin_ok, &commit_ok);
    CHECK(begin_ok);
    /* a batch with an internal error never commits; any other does */
    CHECK(commit_ok == !kv_err_internal(rc));
    if (committed)
        *committed = commit_ok;
    if (!commit_ok)
        f->index--; /* the batch did not commit: its index is still to apply */
    return rc;
}

static kv_span key_span(const char *key)
{
    return (kv_span){(const uint8_t *)key, (uint32_t)strlen(key), false, NULL, 0};
}

static kv_op put_op(const char *key, const char *val, int64_t lease)
{
    return (kv_op){.type = KV_OP_PUT, .span = key_span(key), .value = (const uint8_t *)val,
                   .value_len = (uint32_t)strlen(val), .lease = lease, .prev_kv = true};
}

/* Applies a txn; returns kv_apply_cmd's code, *err the refusal. */
static int txn(kvfx *f, const kv_txn *t, int *err, bool *committed)
{
    buf b;
    buf_init(&b);
    CHECK(kv_encode_txn(t, &b) == KV_OK);
    kv_result r;
    int rc = apply(f, &b, &r, committed);
    *err = r.err;
    kv_result_free(&r);
    buf_free(&b);
    return rc;
}

/* Puts key=val; the refusal (KV_OK if it applied), or the internal error. */
static int put(kvfx *f, const char *key, const char *val)
{
    kv_op op = put_op(key, val, 0);
    kv_txn t = {.n_success = 1, .success = &op};
    int err, rc = txn(f, &t, &err, NULL);
    return rc != KV_OK ? rc : err;
}

static int del(kvfx *f, const char *key)
{
    kv_op op = {.type = KV_OP_DELETE, .span = key_span(key), .prev_kv = true};
    kv_txn t = {.n_success = 1, .success = &op};
    int err, rc = txn(f, &t, &err, NULL);
    return rc != KV_OK ? rc : err;
}

typedef int (*encode_fn)(buf *b, int64_t a, int64_t c);

/* Applies one encoded non-txn command; the refusal, or the internal error. */
static int cmd(kvfx *f, encode_fn enc, int64_t a, int64_t c, kv_result *out)
{
    buf b;
    buf_init(&b);
    CHECK(enc(&b, a, c) == KV_OK);
    kv_result r;
    int rc = apply(f, &b, &r, NULL);
    buf_free(&b);
    int err = rc != KV_OK ? rc : r.err;
    if (out)
        *out = r;
    else
        kv_result_free(&r);
    return err;
}

static int enc_grant(buf *b, int64_t id, int64_t ttl) { return kv_encode_lease_grant(id, ttl, b); }
static int enc_revoke(buf *b, int64_t id, int64_t u) { return kv_encode_lease_revoke(id, b); }
static int enc_keep(buf *b, int64_t id, int64_t u) { return kv_encode_lease_keepalive(id, b); }
static int enc_compact(buf *b, int64_t rev, int64_t u) { return kv_encode_compact(rev, b); }
static int enc_alarm_on(buf *b, int64_t member, int64_t type)
{
    return kv_encode_alarm(KV_ALARM_ACTIVATE, (uint64_t)member, (int)type, b);
}
static int enc_alarm_off(buf *b, int64_t member, int64_t type)
{
    return kv_encode_alarm(KV_ALARM_DEACTIVATE, (uint64_t)member, (int)type, b);
}

/* A range read: the code; *n the kvs returned (they are freed). */
static int range_at(kvfx *f, kv_span sp, int64_t rev, bool keys_only, size_t *n, char *msg)
{
    kv_conn *c = kv_reader_acquire(f->k);
    CHECK(c != NULL);
    kv_op q = {.type = KV_OP_RANGE, .span = sp, .rev = rev, .keys_only = keys_only};
    kv_op_result out;
    int64_t hdr;
    int rc = c ? kv_range(c, &q, &out, &hdr) : KV_ERR_INTERNAL;
    if (c && msg)
        snprintf(msg, 256, "%s", kv_conn_errmsg(c));
    kv_reader_release(f->k, c);
    *n = rc == KV_OK ? out.kvs.n : 0;
    if (rc == KV_OK)
        kv_list_free(&out.kvs);
    else
        CHECK(out.kvs.n == 0 && out.kvs.items == NULL); /* never part of an answer */
    return rc;
}

static const kv_span all_keys = {(const uint8_t *)"", 0, true, (const uint8_t *)"", 1};

static int history(kvfx *f, kv_span sp, int64_t from, bool prev)
{
    kv_conn *c = kv_reader_acquire(f->k);
    kv_event_list ev;
    int64_t next;
    int rc = c ? kv_history(c, &sp, from, 1000, prev, &ev, &next) : KV_ERR_INTERNAL;
    kv_reader_release(f->k, c);
    if (rc == KV_OK)
        kv_event_list_free(&ev);
    else
        CHECK(ev.n == 0 && ev.items == NULL);
    return rc;
}

static int hash_at(kvfx *f, int64_t rev, uint32_t *h)
{
    kv_conn *c = kv_reader_acquire(f->k);
    int64_t compact, hrev;
    int rc = c ? kv_hash(c, rev, h, &compact, &hrev) : KV_ERR_INTERNAL;
    kv_reader_release(f->k, c);
    return rc;
}

/* Runs sql on the closed store's kv.db, then reopens it. */
static void damage(kvfx *f, const char *sql)
{
    kv_close(f->k);
    f->k = NULL;
    sqlite3 *db;
    CHECK(sqlite3_open(f->path, &db) == SQLITE_OK);
    char *msg = NULL;
    CHECK_MSG(sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK, "%s", msg ? msg : "");
    CHECK(sqlite3_changes(db) > 0);
    sqlite3_free(msg);
    sqlite3_close(db);
    CHECK(kvfx_reopen(f));
}

static void sql_on(const char *path, const char *sql)
{
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
}

/* ---- checksums on every read path ---- */

/* a@2 "v1", a@3 "v2", b@4, lease 7 granted, l@5 on lease 7. */
static void fill(kvfx *f)
{
    CHECK(put(f, "a", "v1") == KV_OK && put(f, "a", "v2") == KV_OK && put(f, "b", "ok") == KV_OK);
    CHECK(cmd(f, enc_grant, 7, 100, NULL) == KV_OK);
    kv_op op = put_op("l", "leased", 7);
    kv_txn t = {.n_success = 1, .success = &op};
    int err;
    CHECK(txn(f, &t, &err, NULL) == KV_OK && err == KV_OK);
    CHECK(kv_revision(f->k) == 5);
}

static void test_corrupt_reads_refused(void)
{
    kvfx f;
    kvfx_open(&f, "kv_integrity");
    fill(&f);
    CHECK(!kv_corruption_seen(f.k, NULL, 0));
    damage(&f, "UPDATE kv_cur SET value = X'7633' WHERE key = X'61';"
               "UPDATE kv_hist SET value = X'7639' WHERE key = X'61' AND rev = 2;"
               "UPDATE kv_cur SET value = X'4c' WHERE key = X'6c'");
    size_t n;
    char msg[256] = "";
    CHECK(range_at(&f, key_span("a"), 0, false, &n, msg) == KV_ERR_CORRUPT);
    CHECK_MSG(strstr(msg, "key \"a\"") && strstr(msg, "revision 3"), "%s", msg);
    CHECK(range_at(&f, key_span("a"), 0, true, &n, NULL) == KV_ERR_CORRUPT); /* keys only */
    CHECK(range_at(&f, all_keys, 0, false, &n, NULL) == KV_ERR_CORRUPT);
    CHECK(range_at(&f, key_span("a"), 2, false, &n, NULL) == KV_ERR_CORRUPT); /* history */
    CHECK(range_at(&f, key_span("a"), 3, false, &n, NULL) == KV_OK && n == 1); /* a@3 is sound */
    CHECK(range_at(&f, key_span("b"), 0, false, &n, NULL) == KV_OK && n == 1);
    CHECK(history(&f, key_span("a"), 2, false) == KV_ERR_CORRUPT);
    CHECK(history(&f, all_keys, 1, false) == KV_ERR_CORRUPT);
    CHECK(history(&f, key_span("a"), 3, false) == KV_OK);
    CHECK(history(&f, key_span("a"), 3, true) == KV_ERR_CORRUPT); /* prev_kv is a@2 */
    kv_conn *c = kv_reader_acquire(f.k);
    int64_t ttl, hdr;
    kv_list keys;
    CHECK(c && kv_lease_get(c, 7, &ttl, NULL, &hdr) == KV_OK);
    CHECK(c && kv_lease_get(c, 7, &ttl, &keys, &hdr) == KV_ERR_CORRUPT && keys.n == 0);
    kv_reader_release(f.k, c);
    uint32_t h;
    CHECK(hash_at(&f, 0, &h) == KV_ERR_CORRUPT);
    char first[256] = "";
    CHECK(kv_corruption_seen(f.k, first, sizeof first) && strstr(first, "checksum mismatch"));
    kvfx_close(&f);
}

/* On the writer, a damaged row read by a command fails the command as a
 * local (internal-class) error: nothing applied, the batch not committed. */
static void test_corrupt_apply_fails_stop(void)
{
    kvfx f;
    kvfx_open(&f, "kv_integrity");
    fill(&f);
    damage(&f, "UPDATE kv_cur SET value = X'7633' WHERE key = X'61';"
               "UPDATE kv_cur SET value = X'4c' WHERE key = X'6c'");
    uint64_t idx0, idx, term;
    kv_applied(f.k, &idx0, &term);
    kv_compare cmp = {(const uint8_t *)"a", 1, KV_CMP_VALUE, KV_CMP_EQUAL, 0,
                      (const uint8_t *)"v2", 2};
    kv_op op = put_op("z", "1", 0);
    kv_txn t = {.n_compare = 1, .compare = &cmp, .n_success = 1, .success = &op};
    int err;
    bool committed = true;
    CHECK(txn(&f, &t, &err, &committed) == KV_ERR_CORRUPT && err == KV_ERR_CORRUPT && !committed);
    committed = true;
    kv_op pa = put_op("a", "new", 0); /* reads a's row for version and prev_kv */
    kv_txn tp = {.n_success = 1, .success = &pa};
    CHECK(txn(&f, &tp, &err, &committed) == KV_ERR_CORRUPT && !committed);
    CHECK(del(&f, "b") == KV_OK); /* sound rows still apply */
    kv_op dall = {.type = KV_OP_DELETE, .span = all_keys};
    kv_txn td = {.n_success = 1, .success = &dall};
    committed = true;
    CHECK(txn(&f, &td, &err, &committed) == KV_ERR_CORRUPT && !committed);
    CHECK(cmd(&f, enc_revoke, 7, 0, NULL) == KV_ERR_CORRUPT); /* reads l */
    kv_applied(f.k, &idx, &term);
    CHECK(idx == idx0 + 1 && kv_revision(f.k) == 6); /* only the delete of b */
    char snap[200];
    snprintf(snap, sizeof snap, "%s/snap.db", f.dir);
    CHECK(kvfx_snapshot(&f, snap, NULL) == KV_ERR_CORRUPT); /* never shipped */
    char seen[200];
    CHECK(kv_corruption_seen(f.k, seen, sizeof seen) && strstr(seen, "checksum mismatch"));
    kvfx_close(&f);
}

/* The checksum covers metadata too, and tombstones. */
static void test_corrupt_metadata(void)
{
    kvfx f;
    kvfx_open(&f, "kv_integrity");
    fill(&f);
    CHECK(del(&f, "b") == KV_OK); /* tombstone b@6 */
    damage(&f, "UPDATE kv_cur SET version = 9 WHERE key = X'61';"
               "UPDATE kv_hist SET create_rev = 3 WHERE key = X'62' AND rev = 6");
    size_t n;
    CHECK(range_at(&f, key_span("a"), 0, false, &n, NULL) == KV_ERR_CORRUPT);
    CHECK(range_at(&f, key_span("l"), 0, false, &n, NULL) == KV_OK && n == 1);
    CHECK(history(&f, key_span("b"), 6, false) == KV_ERR_CORRUPT);
    CHECK(history(&f, key_span("b"), 4, false) == KV_ERR_CORRUPT);
    kvfx_close(&f);
}

static void test_damaged_snapshot_refused(void)
{
    kvfx a, b;
    kvfx_open(&a, "kv_integrity");
    kvfx_open(&b, "kv_integrity");
    fill(&a);
    CHECK(put(&b, "keep", "1") == KV_OK);
    char snap[200], err[256] = "";
    snprintf(snap, sizeof snap, "%s/snap.db", a.dir);
    CHECK(kvfx_snapshot(&a, snap, NULL) == KV_OK);
    sql_on(snap, "UPDATE kv_hist SET value = X'7631' WHERE key = X'61' AND rev = 3");
    CHECK(kv_restore(b.k, snap, err, sizeof err) == KV_ERR_INVALID);
    CHECK_MSG(strstr(err, "checksum mismatch: key \"a\" revision 3") != NULL, "%s", err);
    size_t n;
    CHECK(kv_revision(b.k) == 2 && range_at(&b, key_span("keep"), 0, false, &n, NULL) == KV_OK &&
          n == 1);
    CHECK(!kv_corruption_seen(b.k, NULL, 0)); /* a peer's bad file, not our disk */
    /* a sound snapshot is accepted */
    CHECK(kvfx_snapshot(&a, snap, NULL) == KV_OK);
    CHECK_MSG(kv_restore(b.k, snap, err, sizeof err) == KV_OK, "%s", err);
    CHECK(kv_revision(b.k) == 5);
    kvfx_close(&a);
    kvfx_close(&b);
}

/* ---- kv_hash ---- */

static void same_writes(kvfx *f, const char *last)
{
    for (int i = 0; i < 30; i++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "k%02d", i % 7);
        snprintf(val, sizeof val, "v%d", i);
        CHECK(put(f, key, val) == KV_OK);
    }
    CHECK(del(f, "k03") == KV_OK);
    CHECK(put(f, "last", last) == KV_OK); /* rev 33 */
}

static void test_hash(void)
{
    kvfx a, b, c;
    kvfx_open(&a, "kv_integrity");
    kvfx_open(&b, "kv_integrity");
    kvfx_open(&c, "kv_integrity");
    same_writes(&a, "x");
    same_writes(&b, "x");
    same_writes(&c, "y"); /* one byte differs, in the last write */
    uint32_t ha, hb, hc;
    CHECK(hash_at(&a, 0, &ha) == KV_OK && hash_at(&b, 0, &hb) == KV_OK && ha == hb);
    CHECK(hash_at(&c, 0, &hc) == KV_OK && hc != ha);
    CHECK(hash_at(&a, 32, &ha) == KV_OK && hash_at(&c, 32, &hc) == KV_OK && ha == hc);
    CHECK(hash_at(&a, 10, &ha) == KV_OK && hash_at(&a, 11, &hb) == KV_OK && ha != hb);
    CHECK(hash_at(&a, 34, &ha) == KV_ERR_FUTURE_REV);
    /* stable across restart */
    CHECK(hash_at(&a, 0, &ha) == KV_OK);
    kv_close(a.k);
    CHECK(kvfx_reopen(&a) && hash_at(&a, 0, &hb) == KV_OK && ha == hb);
    /* compaction on both: equal again; below it: compacted */
    CHECK(cmd(&a, enc_compact, 20, 0, NULL) == KV_OK && cmd(&b, enc_compact, 20, 0, NULL) == KV_OK);
    CHECK(hash_at(&a, 0, &ha) == KV_OK && hash_at(&b, 0, &hb) == KV_OK && ha == hb);
    CHECK(hash_at(&a, 19, &ha) == KV_ERR_COMPACTED && hash_at(&a, 20, &ha) == KV_OK);
    /* and across a snapshot restore (c takes a's state) */
    char snap[200], err[256] = "";
    snprintf(snap, sizeof snap, "%s/snap.db", a.dir);
    CHECK(kvfx_snapshot(&a, snap, NULL) == KV_OK);
    CHECK_MSG(kv_restore(c.k, snap, err, sizeof err) == KV_OK, "%s", err);
    CHECK(hash_at(&a, 0, &ha) == KV_OK && hash_at(&c, 0, &hc) == KV_OK && ha == hc);
    CHECK(hash_at(&a, 25, &ha) == KV_OK && hash_at(&c, 25, &hc) == KV_OK && ha == hc);
    kvfx_close(&a);
    kvfx_close(&b);
    kvfx_close(&c);
}

/* ---- alarms ---- */

static bool alarms_are(kvfx *f, const kv_alarm *want, size_t n)
{
    kv_conn *c = kv_reader_acquire(f->k);
    kv_alarm *got = NULL;
    size_t m = 0;
    bool ok = c && kv_alarms_list(c, &got, &m) == KV_OK && m == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = got[i].member_id == want[i].member_id && got[i].type == want[i].type;
    kv_reader_release(f->k, c);
    free(got);
    return ok;
}

#define NOSPACE_BIT KV_ALARM_BIT(KV_ALARM_NOSPACE)
#define CORRUPT_BIT KV_ALARM_BIT(KV_ALARM_CORRUPT)

static void test_alarm_encoding(void)
{
    buf b;
    buf_init(&b);
    CHECK(kv_encode_alarm(KV_ALARM_ACTIVATE, 0, KV_ALARM_NOSPACE, &b) == KV_ERR_INVALID);
    CHECK(kv_encode_alarm(KV_ALARM_ACTIVATE, 1, 0, &b) == KV_ERR_INVALID);
    CHECK(kv_encode_alarm(KV_ALARM_ACTIVATE, 1, 3, &b) == KV_ERR_INVALID);
    CHECK(kv_encode_alarm(3, 1, KV_ALARM_NOSPACE, &b) == KV_ERR_INVALID);
    CHECK(b.len == 0);
    CHECK(kv_encode_alarm(KV_ALARM_DEACTIVATE, 0, KV_ALARM_CORRUPT, &b) == KV_OK && b.len == 11);
    kvfx f;
    kvfx_open(&f, "kv_integrity");
    /* hand-made: ACTIVATE of type 9, and one trailing byte: refused */
    uint8_t bad[11] = {1, 6, 1, 0, 0, 0, 0, 0, 0, 0, 9};
    buf raw = {bad, sizeof bad, sizeof bad};
    kv_result r;
    CHECK(apply(&f, &raw, &r, NULL) == KV_OK && r.err == KV_ERR_INVALID);
    uint8_t longer[13] = {1, 6, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    raw = (buf){longer, 12, 12};
    CHECK(apply(&f, &raw, &r, NULL) == KV_OK && r.err == KV_ERR_INVALID);
    CHECK(kv_alarms_active(f.k) == 0 && alarms_are(&f, NULL, 0));
    buf_free(&b);
    kvfx_close(&f);
}

static void test_alarms_replicated_state(void)
{
    kvfx f, g;
    kvfx_open(&f, "kv_integrity");
    kvfx_open(&g, "kv_integrity");
    kv_result r;
    CHECK(cmd(&f, enc_alarm_on, 2, KV_ALARM_NOSPACE, &r) == KV_OK && r.alarms == NOSPACE_BIT);
    CHECK(cmd(&f, enc_alarm_on, 1, KV_ALARM_NOSPACE, NULL) == KV_OK);
    CHECK(cmd(&f, enc_alarm_on, 1, KV_ALARM_NOSPACE, NULL) == KV_OK); /* again: no change */
    CHECK(cmd(&f, enc_alarm_on, 3, KV_ALARM_CORRUPT, NULL) == KV_OK);
    CHECK(kv_revision(f.k) == 1); /* alarms take no revision */
    CHECK(kv_alarms_active(f.k) == (NOSPACE_BIT | CORRUPT_BIT));
    kv_alarm want[] = {{1, KV_ALARM_NOSPACE}, {2, KV_ALARM_NOSPACE}, {3, KV_ALARM_CORRUPT}};
    CHECK(alarms_are(&f, want, 3));
    /* kept across restart */
    kv_close(f.k);
    CHECK(kvfx_reopen(&f));
    CHECK(kv_alarms_active(f.k) == (NOSPACE_BIT | CORRUPT_BIT) && alarms_are(&f, want, 3));
    /* and in snapshots */
    char snap[200], err[256] = "";
    snprintf(snap, sizeof snap, "%s/snap.db", f.dir);
    CHECK(kvfx_snapshot(&f, snap, NULL) == KV_OK);
    CHECK(kv_alarms_active(g.k) == 0);
    CHECK_MSG(kv_restore(g.k, snap, err, sizeof err) == KV_OK, "%s", err);
    CHECK(kv_alarms_active(g.k) == (NOSPACE_BIT | CORRUPT_BIT) && alarms_are(&g, want, 3));
    /* deactivate one member's, then every member's; each disarm counts
     * (the corruption check drops a round a disarm overtook), an
     * activation does not */
    uint64_t disarms = kv_alarm_disarms(f.k);
    CHECK(cmd(&f, enc_alarm_off, 1, KV_ALARM_NOSPACE, NULL) == KV_OK);
    CHECK(kv_alarm_disarms(f.k) == disarms + 1);
    CHECK(kv_alarms_active(f.k) == (NOSPACE_BIT | CORRUPT_BIT) && alarms_are(&f, want + 1, 2));
    CHECK(cmd(&f, enc_alarm_off, 0, KV_ALARM_NOSPACE, &r) == KV_OK && r.alarms == CORRUPT_BIT);
    CHECK(kv_alarms_active(f.k) == CORRUPT_BIT && alarms_are(&f, want + 2, 1));
    CHECK(cmd(&f, enc_alarm_off, 0, KV_ALARM_CORRUPT, NULL) == KV_OK && kv_alarms_active(f.k) == 0);
    CHECK(kv_alarm_disarms(f.k) == disarms + 3);
    CHECK(cmd(&f, enc_alarm_on, 3, KV_ALARM_CORRUPT, NULL) == KV_OK);
    CHECK(kv_alarm_disarms(f.k) == disarms + 3);
    CHECK(cmd(&f, enc_alarm_off, 0, KV_ALARM_CORRUPT, NULL) == KV_OK);
    /* a restored snapshot replaces the alarms too */
    CHECK(kvfx_snapshot(&f, snap, NULL) == KV_OK);
    CHECK_MSG(kv_restore(g.k, snap, err, sizeof err) == KV_OK, "%s", err);
    CHECK(kv_alarms_active(g.k) == 0 && alarms_are(&g, NULL, 0));
    /* a snapshot holding an alarm row kv never writes is refused */
    sql_on(snap, "INSERT INTO kv_alarm(member, type) VALUES(1, 7)");
    CHECK(kv_restore(g.k, snap, err, sizeof err) == KV_ERR_INVALID);
    kvfx_close(&f);
    kvfx_close(&g);
}

/* ---- NOSPACE ---- */

/* The same sequence on every replica: what a NOSPACE alarm refuses and
 * what it lets through. Returns a digest of the refusals seen. */
static int nospace_sequence(kvfx *f)
{
    int digest = 0, err;
    CHECK(put(f, "a", "1") == KV_OK && put(f, "b", "1") == KV_OK);
    CHECK(cmd(f, enc_grant, 5, 60, NULL) == KV_OK);
    CHECK(cmd(f, enc_alarm_on, 9, KV_ALARM_NOSPACE, NULL) == KV_OK);
    int64_t rev = kv_revision(f->k);
    CHECK(put(f, "a", "2") == KV_ERR_NO_SPACE);
    digest = digest * 3 + (put(f, "new", "x") == KV_ERR_NO_SPACE);
    /* a txn with a PUT only in the branch that would not run: refused too */
    kv_compare never = {(const uint8_t *)"a", 1, KV_CMP_VERSION, KV_CMP_EQUAL, 99, NULL, 0};
    kv_op rd = {.type = KV_OP_RANGE, .span = key_span("a")};
    kv_op pt = put_op("c", "1", 0);
    kv_txn t = {.n_compare = 1, .compare = &never, .n_success = 1, .success = &pt,
                .n_failure = 1, .failure = &rd};
    CHECK(txn(f, &t, &err, NULL) == KV_OK && err == KV_ERR_NO_SPACE);
    kv_txn ro = {.n_success = 1, .success = &rd}; /* reads still apply */
    CHECK(txn(f, &ro, &err, NULL) == KV_OK && err == KV_OK);
    CHECK(cmd(f, enc_grant, 6, 60, NULL) == KV_ERR_NO_SPACE);
    CHECK(kv_revision(f->k) == rev);
    /* what frees space, or adds nothing, applies */
    CHECK(del(f, "b") == KV_OK && kv_revision(f->k) == rev + 1);
    CHECK(cmd(f, enc_keep, 5, 0, NULL) == KV_OK);
    CHECK(cmd(f, enc_compact, rev, 0, NULL) == KV_OK && kv_compact_revision(f->k) == rev);
    CHECK(cmd(f, enc_revoke, 5, 0, NULL) == KV_OK);
    CHECK(cmd(f, enc_alarm_off, 0, KV_ALARM_NOSPACE, NULL) == KV_OK);
    digest = digest * 3 + (put(f, "a", "3") == KV_OK);
    return digest;
}

static void test_nospace_refusals(void)
{
    kvfx a, b;
    kvfx_open(&a, "kv_integrity");
    kvfx_open(&b, "kv_integrity");
    CHECK(nospace_sequence(&a) == 4 && nospace_sequence(&b) == 4);
    uint32_t ha, hb;
    CHECK(hash_at(&a, 0, &ha) == KV_OK && hash_at(&b, 0, &hb) == KV_OK && ha == hb);
    CHECK(kv_revision(a.k) == kv_revision(b.k));
    kvfx_close(&a);
    kvfx_close(&b);
}

/* The alarm and the refusal land in one batch in order: a put after the
 * ACTIVATE of its own batch is refused, the one before it is not. */
static void test_nospace_within_batch(void)
{
    kvfx f;
    kvfx_open(&f, "kv_integrity");
    buf p, on;
    buf_init(&p);
    buf_init(&on);
    kv_op op = put_op("a", "1", 0);
    kv_txn t = {.n_success = 1, .success = &op};
    CHECK(kv_encode_txn(&t, &p) == KV_OK);
    CHECK(kv_encode_alarm(KV_ALARM_ACTIVATE, 1, KV_ALARM_NOSPACE, &on) == KV_OK);
    kv_result r1, r2, r3;
    CHECK(kv_apply_begin(f.k) == KV_OK);
    CHECK(kv_apply_cmd(f.k, p.data, p.len, &r1) == KV_OK && r1.err == KV_OK);
    CHECK(kv_apply_cmd(f.k, on.data, on.len, &r2) == KV_OK && r2.err == KV_OK);
    CHECK(kv_apply_cmd(f.k, p.data, p.len, &r3) == KV_OK && r3.err == KV_ERR_NO_SPACE);
    kv_apply_rollback(f.k); /* and a rolled-back batch takes its alarm back */
    CHECK(kv_alarms_active(f.k) == 0 && kv_revision(f.k) == 1);
    kv_result_free(&r1);
    kv_result_free(&r3);
    buf_free(&p);
    buf_free(&on);
    kvfx_close(&f);
}

/* ---- failpoints ---- */

static void expect_unchanged(kvfx *f, uint64_t idx0, int64_t rev0)
{
    uint64_t idx, term;
    kv_applied(f->k, &idx, &term);
    size_t n;
    CHECK(idx == idx0 && kv_revision(f->k) == rev0);
    CHECK(range_at(f, key_span("new"), 0, false, &n, NULL) == KV_OK && n == 0);
    kv_close(f->k); /* and nothing of it reached the disk */
    CHECK(kvfx_reopen(f));
    kv_applied(f->k, &idx, &term);
    CHECK(idx == idx0 && kv_revision(f->k) == rev0);
}

static void failpoint_case(const char *spec, int want)
{
    kvfx f;
    kvfx_open(&f, "kv_integrity");
    CHECK(put(&f, "a", "1") == KV_OK);
    uint64_t idx0, term;
    kv_applied(f.k, &idx0, &term);
    int64_t rev0 = kv_revision(f.k);
    CHECK(failpoint_init(spec) == 0);
    CHECK_MSG(put(&f, "new", "1") == want, "%s", spec);
    failpoint_init(NULL);
    expect_unchanged(&f, idx0, rev0);
    CHECK(put(&f, "new", "1") == KV_OK && kv_revision(f.k) == rev0 + 1); /* disarmed: goes on */
    kvfx_close(&f);
}

static void test_failpoint_apply(void) { failpoint_case("kv.apply=EIO", KV_ERR_INTERNAL); }

static void test_failpoint_write(void)
{
    failpoint_case("kv.write=EIO", KV_ERR_INTERNAL);
    failpoint_case("kv.write=ENOSPC", KV_ERR_NO_SPACE_DISK);
    failpoint_case("kv.write=EIO@2", KV_ERR_INTERNAL); /* kv_cur written, kv_hist fails */
}

/* kv.commit fails the commit itself: the 2nd batch from arming on. */
static void test_failpoint_commit(void)
{
    kvfx f;
    kvfx_open(&f, "kv_integrity");
    CHECK(failpoint_init("kv.commit=ENOSPC@2") == 0);
    CHECK(put(&f, "a", "1") == KV_OK);
    uint64_t idx0, term;
    kv_applied(f.k, &idx0, &term);
    buf b;
    buf_init(&b);
    kv_op op = put_op("new", "1", 0);
    kv_txn t = {.n_success = 1, .success = &op};
    CHECK(kv_encode_txn(&t, &b) == KV_OK);
    kv_result r;
    CHECK(kv_apply_begin(f.k) == KV_OK);
    CHECK(kv_apply_cmd(f.k, b.data, b.len, &r) == KV_OK && r.err == KV_OK);
    kv_result_free(&r);
    CHECK(kv_apply_commit(f.k, idx0 + 1, 1) == KV_ERR_NO_SPACE_DISK);
    CHECK(kv_apply_commit(f.k, idx0 + 1, 1) == KV_ERR_NO_SPACE_DISK); /* also a bare commit */
    failpoint_init(NULL);
    expect_unchanged(&f, idx0, 2);
    CHECK(failpoint_init("kv.commit=EIO") == 0);
    CHECK(kv_apply_commit(f.k, idx0 + 1, 1) == KV_ERR_INTERNAL);
    failpoint_init(NULL);
    expect_unchanged(&f, idx0, 2);
    buf_free(&b);
    kvfx_close(&f);
}

/* ---- quota, format ---- */

static void test_db_size(void)
{
    kvfx f;
    kvfx_open(&f, "kv_integrity");
    uint64_t size0, used0, size, used;
    CHECK(kv_db_size(f.k, &size0, &used0) == KV_OK && size0 > 0 && used0 <= size0);
    static char big[100001];
    memset(big, 'x', sizeof big - 1);
    for (int i = 0; i < 10; i++) {
        char key[8];
        snprintf(key, sizeof key, "b%d", i);
        CHECK(put(&f, key, big) == KV_OK);
    }
    CHECK(kv_db_size(f.k, &size, &used) == KV_OK && used >= used0 + 1000000 && used <= size);
    kvfx_close(&f);
}

static void test_format1_refused(void)
{
    kvfx f;
    kvfx_open(&f, "kv_integrity");
    char p[200], err[512] = "";
    snprintf(p, sizeof p, "%s/old.db", f.dir);
    sql_on(p, "CREATE TABLE kv_meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
              "CREATE TABLE kv_cur(key BLOB PRIMARY KEY, create_rev INTEGER NOT NULL,"
              " mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL,"
              " value BLOB NOT NULL) WITHOUT ROWID;"
              "INSERT INTO kv_meta VALUES('format', 1), ('revision', 1)");
    kv *k = NULL;
    CHECK(kv_open(p, &k, err, sizeof err) != KV_OK && k == NULL);
    CHECK_MSG(strstr(err, "format 1 is not supported") && strstr(err, "checksums"), "%s", err);
    CHECK(kv_restore(f.k, p, err, sizeof err) == KV_ERR_INVALID && strstr(err, "format 1"));
    kvfx_close(&f);
}

int main(void)
{
    RUN(test_corrupt_reads_refused);
    RUN(test_corrupt_apply_fails_stop);
    RUN(test_corrupt_metadata);
    RUN(test_damaged_snapshot_refused);
    RUN(test_hash);
    RUN(test_alarm_encoding);
    RUN(test_alarms_replicated_state);
    RUN(test_nospace_refusals);
    RUN(test_nospace_within_batch);
    RUN(test_failpoint_apply);
    RUN(test_failpoint_write);
    RUN(test_failpoint_commit);
    RUN(test_db_size);
    RUN(test_format1_refused);
    TEST_MAIN_END();
}
