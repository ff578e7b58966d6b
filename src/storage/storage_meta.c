/* storage_meta: typed access to the meta(k, v) table — hard state, snapshot
 * meta, identity — and the decoding checks for values read back from disk.
 *
 * Must never trust a stored value's type or range: raft.db is outside
 * input, and a damaged value is reported, not used.
 */
#include "storage/storage_int.h"

#include <string.h>

/* Steps ST_META_GET for key; on a row leaves it for the caller to read,
 * who must reset the statement. Returns 1 row, 0 absent, -1 error. */
static int meta_lookup(storage *s, const char *key)
{
    sqlite3_stmt *st = s->st[ST_META_GET];
    if (sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) != SQLITE_OK) {
        storage_sql_fail(s, "read meta");
        sqlite3_clear_bindings(st);
        return -1;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : storage_sql_fail(s, key);
}

static void meta_done(storage *s)
{
    sqlite3_reset(s->st[ST_META_GET]);
    sqlite3_clear_bindings(s->st[ST_META_GET]);
}

int storage_meta_get_u64(storage *s, const char *key, uint64_t *v, bool *found)
{
    *v = 0;
    *found = false;
    int rc = meta_lookup(s, key);
    if (rc <= 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_META_GET];
    bool ok = sqlite3_column_type(st, 0) == SQLITE_INTEGER;
    if (ok)
        *v = (uint64_t)sqlite3_column_int64(st, 0); /* stored as the same bits */
    meta_done(s);
    if (!ok)
        return storage_fail(s, "%s: meta value %s is damaged (not an integer)",
                            s->db_path, key);
    *found = true;
    return 0;
}

int storage_meta_get_blob(storage *s, const char *key, buf *out, bool *found)
{
    buf_reset(out);
    *found = false;
    int rc = meta_lookup(s, key);
    if (rc <= 0)
        return rc;
    sqlite3_stmt *st = s->st[ST_META_GET];
    int type = sqlite3_column_type(st, 0);
    const void *p = sqlite3_column_blob(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    int ret = 0;
    if (type != SQLITE_BLOB)
        ret = storage_fail(s, "%s: meta value %s is damaged (not a blob)", s->db_path, key);
    else if (buf_append(out, p, n) < 0)
        ret = storage_fail(s, "%s: out of memory reading %s", s->db_path, key);
    meta_done(s);
    *found = ret == 0;
    return ret;
}

static int meta_set(storage *s, const char *key, int bind_rc)
{
    sqlite3_stmt *st = s->st[ST_META_SET];
    if (bind_rc != SQLITE_OK ||
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) != SQLITE_OK) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return storage_sql_fail(s, "write meta");
    }
    return storage_exec(s, st, key);
}

int storage_meta_set_u64(storage *s, const char *key, uint64_t v)
{
    return meta_set(s, key, sqlite3_bind_int64(s->st[ST_META_SET], 2, (sqlite3_int64)v));
}

int storage_meta_set_blob(storage *s, const char *key, const void *p, size_t n)
{
    return meta_set(s, key, sqlite3_bind_blob64(s->st[ST_META_SET], 2, n ? p : "", n,
                                                SQLITE_STATIC));
}

/* Absent keys read as 0: a fresh node's hard state is all zero. */
static int get_or_zero(storage *s, const char *key, uint64_t *v)
{
    bool found;
    return storage_meta_get_u64(s, key, v, &found);
}

int storage_read_hard_state(storage *s, raft_hard_state *hs)
{
    memset(hs, 0, sizeof *hs);
    if (get_or_zero(s, "hs_term", &hs->term) < 0 || get_or_zero(s, "hs_vote", &hs->vote) < 0 ||
        get_or_zero(s, "hs_commit", &hs->commit) < 0)
        return -1;
    return 0;
}

int storage_write_hard_state(storage *s, const raft_hard_state *hs)
{
    if (storage_meta_set_u64(s, "hs_term", hs->term) < 0 ||
        storage_meta_set_u64(s, "hs_vote", hs->vote) < 0 ||
        storage_meta_set_u64(s, "hs_commit", hs->commit) < 0)
        return -1;
    return 0;
}

static int read_snap_conf(storage *s, raft_conf *conf)
{
    buf b;
    buf_init(&b);
    bool found;
    int rc = storage_meta_get_blob(s, "snap_conf", &b, &found);
    if (rc == 0 && (!found || storage_conf_decode(b.data, b.len, conf) < 0))
        rc = storage_fail(s, "%s: snapshot membership is damaged", s->db_path);
    buf_free(&b);
    return rc;
}

int storage_read_snapshot(storage *s, storage_snapshot *out)
{
    memset(out, 0, sizeof *out);
    bool found;
    uint64_t crc;
    if (storage_meta_get_u64(s, "snap_index", &out->meta.index, &found) < 0)
        return -1;
    if (!found || out->meta.index == 0)
        return 0;
    if (get_or_zero(s, "snap_term", &out->meta.term) < 0 ||
        get_or_zero(s, "snap_size", &out->size) < 0 || get_or_zero(s, "snap_crc", &crc) < 0 ||
        read_snap_conf(s, &out->meta.conf) < 0)
        return -1;
    if (crc > UINT32_MAX || out->meta.term == 0)
        return storage_fail(s, "%s: snapshot meta is damaged", s->db_path);
    out->crc = (uint32_t)crc;
    return 0;
}

int storage_write_snapshot(storage *s, const storage_snapshot *snap)
{
    buf b;
    buf_init(&b);
    int rc = storage_conf_encode(&snap->meta.conf, &b);
    if (rc < 0)
        rc = storage_fail(s, "%s: cannot encode snapshot membership (too many members?)",
                          s->db_path);
    if (rc == 0 && (storage_meta_set_u64(s, "snap_index", snap->meta.index) < 0 ||
                    storage_meta_set_u64(s, "snap_term", snap->meta.term) < 0 ||
                    storage_meta_set_u64(s, "snap_size", snap->size) < 0 ||
                    storage_meta_set_u64(s, "snap_crc", snap->crc) < 0 ||
                    storage_meta_set_blob(s, "snap_conf", b.data, b.len) < 0))
        rc = -1;
    buf_free(&b);
    return rc;
}
