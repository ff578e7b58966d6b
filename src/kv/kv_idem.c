/* kv_idem: Idempotency-Key as replicated state — an IDEM command runs its
 * inner command once per key and keeps the result (kv_idem table: key,
 * the request's fingerprint, the proposer's time, the result encoded), so
 * a client's retry with the same key gets the first answer again, on any
 * member, without running anything twice.
 *
 * Must never: decide by anything but the command and the table (the
 * window is judged by the commands' own times, the same on every
 * replica), or keep a result of a run that failed internally (the batch
 * does not commit then).
 */
#include "kv/kv_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- the kept result ---- */

static int put_kv(buf *b, const kv_kv *x)
{
    return buf_put_bytes(b, x->key, x->key_len) < 0 || buf_put_bytes(b, x->value, x->value_len) < 0 ||
                   buf_put_u64(b, (uint64_t)x->create_revision) < 0 ||
                   buf_put_u64(b, (uint64_t)x->mod_revision) < 0 ||
                   buf_put_u64(b, (uint64_t)x->version) < 0 || buf_put_u64(b, (uint64_t)x->lease) < 0
               ? -1
               : 0;
}

static int encode_result(const kv_result *r, buf *b)
{
    if (buf_put_u32(b, (uint32_t)r->err) < 0 || buf_put_u64(b, (uint64_t)r->revision) < 0 ||
        buf_put_u64(b, (uint64_t)r->compact_revision) < 0 || buf_put_u8(b, r->succeeded) < 0 ||
        buf_put_u8(b, r->lease_op) < 0 || buf_put_u64(b, (uint64_t)r->lease_id) < 0 ||
        buf_put_u64(b, (uint64_t)r->lease_ttl) < 0 || buf_put_u32(b, r->alarms) < 0 ||
        buf_put_u32(b, (uint32_t)r->n_ops) < 0)
        return -1;
    for (size_t i = 0; i < r->n_ops; i++) {
        const kv_op_result *o = &r->ops[i];
        if (buf_put_u8(b, o->type) < 0 || buf_put_u64(b, (uint64_t)o->count) < 0 ||
            buf_put_u8(b, o->more) < 0 || buf_put_u64(b, (uint64_t)o->deleted) < 0 ||
            buf_put_u32(b, (uint32_t)o->kvs.n) < 0)
            return -1;
        for (size_t j = 0; j < o->kvs.n; j++)
            if (put_kv(b, &o->kvs.items[j]) < 0)
                return -1;
    }
    /* a membership change's member, at the end: results kept before it
     * existed decode unchanged */
    return r->member_id ? buf_put_u64(b, r->member_id) : 0;
}

static bool rd_i64(reader *r, int64_t *v)
{
    uint64_t x;
    if (rd_u64(r, &x) < 0)
        return false;
    *v = (int64_t)x;
    return true;
}

static uint8_t *copy_bytes(const uint8_t *p, uint32_t n)
{
    uint8_t *out = malloc(n ? n : 1);
    if (out && n)
        memcpy(out, p, n);
    return out;
}

static bool rd_kv(reader *r, kv_kv *x)
{
    const uint8_t *k, *v;
    uint32_t kn, vn;
    if (rd_bytes(r, &k, &kn) < 0 || rd_bytes(r, &v, &vn) < 0 || !rd_i64(r, &x->create_revision) ||
        !rd_i64(r, &x->mod_revision) || !rd_i64(r, &x->version) || !rd_i64(r, &x->lease))
        return false;
    x->key = copy_bytes(k, kn);
    x->value = copy_bytes(v, vn);
    x->key_len = kn;
    x->value_len = vn;
    return x->key && x->value;
}

static bool rd_op(reader *r, kv_op_result *o)
{
    uint8_t more;
    uint32_t n;
    if (rd_u8(r, &o->type) < 0 || !rd_i64(r, &o->count) || rd_u8(r, &more) < 0 ||
        !rd_i64(r, &o->deleted) || rd_u32(r, &n) < 0 || n > rd_left(r))
        return false;
    o->more = more;
    o->kvs.items = calloc(n ? n : 1, sizeof *o->kvs.items);
    if (!o->kvs.items)
        return false;
    for (uint32_t j = 0; j < n; j++, o->kvs.n++)
        if (!rd_kv(r, &o->kvs.items[j]))
            return o->kvs.n++, false; /* the half-read one is freed with the rest */
    return true;
}

static int decode_result(const uint8_t *p, size_t len, kv_result *out)
{
    reader r;
    reader_init(&r, p, len);
    uint32_t err, n;
    uint8_t succeeded;
    if (rd_u32(&r, &err) < 0 || !rd_i64(&r, &out->revision) ||
        !rd_i64(&r, &out->compact_revision) || rd_u8(&r, &succeeded) < 0 ||
        rd_u8(&r, &out->lease_op) < 0 || !rd_i64(&r, &out->lease_id) ||
        !rd_i64(&r, &out->lease_ttl) || rd_u32(&r, &out->alarms) < 0 || rd_u32(&r, &n) < 0 ||
        n > KV_MAX_TXN_OPS * 2)
        return KV_ERR_CORRUPT;
    out->err = (int)(int32_t)err;
    out->succeeded = succeeded;
    out->ops = calloc(n ? n : 1, sizeof *out->ops);
    if (!out->ops)
        return KV_ERR_INTERNAL;
    for (uint32_t i = 0; i < n; i++, out->n_ops++)
        if (!rd_op(&r, &out->ops[i]))
            return out->n_ops++, KV_ERR_CORRUPT;
    if (rd_left(&r) == 8 && rd_u64(&r, &out->member_id) < 0)
        return KV_ERR_CORRUPT;
    return rd_left(&r) == 0 ? KV_OK : KV_ERR_CORRUPT;
}

/* ---- the table ---- */

/* 1 with the kept fingerprint and result (malloc'd), 0 none in the
 * window ending at `now` (ms), -1 on failure. */
static int lookup(sqlite3 *db, const char *key, uint64_t now, uint64_t *fp, uint8_t **blob,
                  size_t *len)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT fp, result FROM kv_idem WHERE key = ?1 AND ts >= ?2", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)(now - KV_IDEM_WINDOW_MS));
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) {
        *fp = (uint64_t)sqlite3_column_int64(st, 0);
        *len = (size_t)sqlite3_column_bytes(st, 1);
        *blob = copy_bytes(sqlite3_column_blob(st, 1), (uint32_t)*len);
        found = *blob ? 1 : -1;
    } else if (rc != SQLITE_DONE) {
        found = -1;
    }
    sqlite3_finalize(st);
    return found;
}

static int exec2(kv *k, const char *sql, const kv_cmd *c, const buf *blob)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(k->w.db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (blob) {
        sqlite3_bind_text(st, 1, c->idem_key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)c->idem_fp);
        sqlite3_bind_int64(st, 3, (int64_t)c->idem_ts);
        sqlite3_bind_blob(st, 4, blob->data ? (const void *)blob->data : "", (int)blob->len,
                          SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(st, 1, (int64_t)(c->idem_ts - KV_IDEM_WINDOW_MS));
    }
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        k->w.fail_code = rc;
    return rc == SQLITE_DONE ? 0 : -1;
}

static int keep(kv *k, const kv_cmd *c, const kv_result *res)
{
    buf b;
    buf_init(&b);
    int rc = encode_result(res, &b) < 0 ||
                     exec2(k, "INSERT OR REPLACE INTO kv_idem(key, fp, ts, result)"
                              " VALUES(?1, ?2, ?3, ?4)", c, &b) < 0 ||
                     (c->idem_ts > KV_IDEM_WINDOW_MS &&
                      exec2(k, "DELETE FROM kv_idem WHERE ts < ?1", c, NULL) < 0)
                 ? KV_ERR_INTERNAL
                 : KV_OK;
    buf_free(&b);
    return rc;
}

int kv_idem_run(kv *k, const kv_cmd *c, kv_result *res)
{
    uint64_t fp = 0;
    uint8_t *blob = NULL;
    size_t len = 0;
    int found = lookup(k->w.db, c->idem_key, c->idem_ts, &fp, &blob, &len);
    if (found < 0)
        return KV_ERR_INTERNAL;
    if (found && fp != c->idem_fp) {
        free(blob);
        res->err = KV_ERR_IDEM_REUSED;
        return KV_OK;
    }
    if (found) {
        kv_result_free(res);
        memset(res, 0, sizeof *res);
        int rc = decode_result(blob, len, res);
        free(blob);
        if (rc != KV_OK) {
            kv_result_free(res);
            memset(res, 0, sizeof *res);
            return rc;
        }
        /* a kept refusal is answered, not a new refusal: nothing to undo */
        res->replayed = true;
        return KV_OK;
    }
    /* nothing kept: run it in a savepoint of its own, so that a refusal
     * (a result to keep too) undoes the run but not the keeping */
    if (kv_exec(&k->w, KV_ST_SAVEPOINT) < 0)
        return KV_ERR_INTERNAL;
    int64_t rev = k->rev, compact = k->compact;
    int rc = kv_run_inner(k, c->inner, c->inner_len, NULL, 0, res);
    if (rc == KV_OK && res->err != KV_OK) {
        k->rev = rev;
        k->compact = compact;
        if (kv_exec(&k->w, KV_ST_ROLLBACK_TO) < 0)
            rc = KV_ERR_INTERNAL;
    }
    if (kv_exec(&k->w, KV_ST_RELEASE) < 0 && rc == KV_OK)
        rc = KV_ERR_INTERNAL;
    if (rc != KV_OK)
        return rc;
    res->revision = k->rev;
    res->compact_revision = k->compact;
    res->kept = true;
    return keep(k, c, res);
}

/* ---- membership changes ---- */

int kv_idem_keep_member(kv *k, const uint8_t *stamp, size_t len, uint64_t member_id)
{
    kv_cmd c;
    if (kv_decode_idem_stamp(stamp, len, &c) != KV_OK)
        return KV_OK; /* the same bytes on every replica: kept nowhere */
    kv_result res;
    memset(&res, 0, sizeof res);
    res.revision = k->rev;
    res.compact_revision = k->compact;
    res.member_id = member_id;
    int rc = keep(k, &c, &res);
    kv_cmd_free(&c);
    return rc;
}

int kv_idem_find_member(kv_conn *kc, const char *key, uint64_t fp, uint64_t now_ms,
                        uint64_t *member_id)
{
    uint64_t kept_fp = 0;
    uint8_t *blob = NULL;
    size_t len = 0;
    int found = lookup(kc->d.db, key, now_ms, &kept_fp, &blob, &len);
    if (found <= 0)
        return found < 0 ? KV_ERR_INTERNAL : 0;
    kv_result res;
    memset(&res, 0, sizeof res);
    int rc = kept_fp != fp ? KV_ERR_IDEM_REUSED : decode_result(blob, len, &res);
    free(blob);
    *member_id = res.member_id;
    kv_result_free(&res);
    return rc == KV_OK ? 1 : rc;
}
