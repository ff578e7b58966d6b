/* kv_read: range reads, at the current revision (kv_cur) or at an old one
 * (each key's latest record in kv_hist), with etcd's limit/count/more/
 * keys_only/count_only. Used by readers and by RANGE ops inside a txn on
 * the writer. Every returned row is checked against its checksum
 * (KV_ERR_CORRUPT, and no rows, on a mismatch). Must never write. */
#include "kv/kv_internal.h"

#include <string.h>

/* Walks the rows of an ordered scan that starts at span->key, stopping in C
 * at the span's end: the seek is an index seek and nothing past the end is
 * visited. */
static int scan_rows(kv_db *d, sqlite3_stmt *st, bool hist, const kv_op *req,
                     kv_op_result *out)
{
    int rc, pushed;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const uint8_t *key = sqlite3_column_blob(st, KV_COL_KEY);
        int n = sqlite3_column_bytes(st, KV_COL_KEY);
        if (kv_span_past(&req->span, key, (uint32_t)n))
            break;
        if (hist && sqlite3_column_int64(st, KV_COL_TOMB) != 0)
            continue;
        out->count++;
        if (req->count_only || (req->limit > 0 && (int64_t)out->kvs.n >= req->limit))
            continue;
        if ((pushed = kv_list_push_row(d, &out->kvs, st, !req->keys_only)) != KV_OK)
            return pushed;
    }
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? KV_OK : KV_ERR_INTERNAL;
}

int kv_range_view(kv_db *d, const kv_op *req, int64_t cur, int64_t compact, kv_op_result *out)
{
    memset(out, 0, sizeof *out);
    out->type = KV_OP_RANGE;
    int64_t rev = req->rev ? req->rev : cur;
    if (rev < compact)
        return KV_ERR_COMPACTED;
    if (rev > cur)
        return KV_ERR_FUTURE_REV;
    bool hist = rev < cur;
    sqlite3_stmt *st = kv_stmt(d, hist ? KV_ST_HIST_AT : KV_ST_CUR_SCAN);
    if (!st || kv_bind_bytes(st, 1, req->span.key, req->span.key_len) < 0 ||
        (hist && sqlite3_bind_int64(st, 2, rev) != SQLITE_OK))
        return KV_ERR_INTERNAL;
    int rc = scan_rows(d, st, hist, req, out);
    sqlite3_reset(st);
    if (rc != KV_OK) {
        int sql = sqlite3_errcode(d->db);
        if (rc == KV_ERR_INTERNAL) /* SQLite did not fail: copying a row did */
            log_error("kv: range: %s", sql == SQLITE_OK || sql == SQLITE_ROW || sql == SQLITE_DONE
                                           ? "out of memory copying a row"
                                           : sqlite3_errmsg(d->db));
        kv_list_free(&out->kvs);
        return rc;
    }
    out->more = !req->count_only && req->limit > 0 && out->count > req->limit;
    return KV_OK;
}

int kv_cur_get(kv_db *d, const uint8_t *key, uint32_t len, kv_kv *out, bool *found)
{
    *found = false;
    sqlite3_stmt *st = kv_stmt(d, KV_ST_CUR_GET);
    if (!st || kv_bind_bytes(st, 1, key, len) < 0)
        return KV_ERR_INTERNAL;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        rc = kv_kv_from_row(d, st, out, true);
        *found = rc == KV_OK;
    } else {
        rc = rc == SQLITE_DONE ? KV_OK : KV_ERR_INTERNAL;
    }
    sqlite3_reset(st);
    return rc;
}

int kv_range(kv_conn *c, const kv_op *req, kv_op_result *out, int64_t *header_rev)
{
    memset(out, 0, sizeof *out);
    *header_rev = 0;
    if (req->type != KV_OP_RANGE || kv_op_validate(req) != KV_OK)
        return KV_ERR_INVALID;
    if (kv_read_begin(&c->d) < 0)
        return KV_ERR_INTERNAL;
    int64_t cur = 0, compact = 0;
    int rc = kv_load_revs(&c->d, &cur, &compact) < 0
                 ? KV_ERR_INTERNAL
                 : kv_range_view(&c->d, req, cur, compact, out);
    kv_read_end(&c->d);
    *header_rev = cur; /* also on COMPACTED / FUTURE_REV, for the answer's header */
    return rc;
}

int kv_read_revisions(kv_conn *c, int64_t *revision, int64_t *compact_revision)
{
    if (kv_read_begin(&c->d) < 0)
        return KV_ERR_INTERNAL;
    int rc = kv_load_revs(&c->d, revision, compact_revision) < 0 ? KV_ERR_INTERNAL : KV_OK;
    kv_read_end(&c->d);
    return rc;
}
