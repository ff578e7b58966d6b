/* kv_row: the integrity of stored key-value rows — each row's CRC-32C
 * (computed on insert, verified on every read that returns the row), the
 * check of every row of a database file (restore, snapshots), kv_hash over
 * the history, and where corruption is reported (the connection's message
 * and the store's sticky flag).
 *
 * Must never hand a row that failed its check to a caller, and never
 * "repair" one: a mismatch is reported, the data stays as found. */
#include "kv/kv_internal.h"

#include <stdio.h>
#include <string.h>

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Over a fixed little-endian header (create, mod, version, lease, tomb,
 * key length, value length), then the key and the value. */
uint32_t kv_row_crc(const kv_row *r)
{
    uint8_t h[41];
    put_le(h, (uint64_t)r->create, 8);
    put_le(h + 8, (uint64_t)r->mod, 8);
    put_le(h + 16, (uint64_t)r->version, 8);
    put_le(h + 24, (uint64_t)r->lease, 8);
    h[32] = r->tomb ? 1 : 0;
    put_le(h + 33, r->key_len, 4);
    put_le(h + 37, r->value_len, 4);
    uint32_t crc = crc32c(0, h, sizeof h);
    if (r->key_len)
        crc = crc32c(crc, r->key, r->key_len);
    return r->value_len ? crc32c(crc, r->value, r->value_len) : crc;
}

/* The key as text for a message: printable bytes as they are, others as
 * \xNN, cut at 48 bytes. */
static void key_text(const uint8_t *key, uint32_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (uint32_t i = 0; i < len && i < 48 && o + 5 < cap; i++) {
        if (key[i] >= 0x20 && key[i] < 0x7f && key[i] != '"' && key[i] != '\\')
            out[o++] = (char)key[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", key[i]);
    }
    snprintf(out + o, cap - o, "%s", len > 48 ? "..." : "");
}

void kv_note_corrupt(kv *k, const char *msg)
{
    log_error("kv: %s", msg);
    if (!k)
        return;
    pthread_mutex_lock(&k->pool_mu);
    if (!atomic_load(&k->corrupt_seen))
        snprintf(k->corrupt_msg, sizeof k->corrupt_msg, "%s", msg);
    atomic_store(&k->corrupt_seen, true);
    pthread_mutex_unlock(&k->pool_mu);
}

static void read_row(sqlite3_stmt *st, kv_row *r)
{
    r->key = sqlite3_column_blob(st, KV_COL_KEY);
    r->key_len = (uint32_t)sqlite3_column_bytes(st, KV_COL_KEY);
    r->value = sqlite3_column_blob(st, KV_COL_VALUE);
    r->value_len = (uint32_t)sqlite3_column_bytes(st, KV_COL_VALUE);
    r->create = sqlite3_column_int64(st, KV_COL_CREATE);
    r->mod = sqlite3_column_int64(st, KV_COL_MOD);
    r->version = sqlite3_column_int64(st, KV_COL_VERSION);
    r->lease = sqlite3_column_int64(st, KV_COL_LEASE);
    r->tomb = sqlite3_column_int64(st, KV_COL_TOMB) != 0;
}

int kv_row_check(kv_db *d, sqlite3_stmt *st)
{
    kv_row r;
    read_row(st, &r);
    int64_t stored = sqlite3_column_int64(st, KV_COL_CRC);
    if ((!r.key && r.key_len) || (!r.value && r.value_len))
        return KV_ERR_INTERNAL; /* out of memory reading the blobs */
    if (stored == (int64_t)kv_row_crc(&r))
        return KV_OK;
    char key[200];
    key_text(r.key, r.key_len, key, sizeof key);
    snprintf(d->msg, sizeof d->msg, "checksum mismatch: key \"%s\" revision %lld", key,
             (long long)r.mod);
    kv_note_corrupt(d->owner, d->msg);
    return KV_ERR_CORRUPT;
}

/* Checks every row a statement yields (kv-shaped). */
static int verify_query(kv_db *d, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        return KV_ERR_INTERNAL;
    int rc = KV_OK, step;
    while (rc == KV_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = kv_row_check(d, st);
    if (rc == KV_OK && step != SQLITE_DONE)
        rc = KV_ERR_INTERNAL;
    sqlite3_finalize(st);
    return rc;
}

int kv_verify_rows(kv_db *d, char *err, size_t errlen)
{
    int rc = verify_query(d, "SELECT key, create_rev, mod_rev, version, lease, value, 0, crc"
                             " FROM kv_cur");
    if (rc == KV_OK)
        rc = verify_query(d, "SELECT key, create_rev, rev, version, lease, value, tomb, crc"
                             " FROM kv_hist");
    if (rc == KV_ERR_CORRUPT)
        kv_errf(err, errlen, "kv database is damaged: %s", d->msg);
    else if (rc != KV_OK)
        kv_errf(err, errlen, "checking rows: %s", sqlite3_errmsg(d->db));
    return rc;
}

/* Folds the rows with revision <= R in (rev, sub) order: each row's rev,
 * sub and verified checksum. */
static int hash_rows(kv_db *d, int64_t R, uint32_t *hash)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "SELECT key, create_rev, rev, version, lease, value, tomb,"
                                  " crc, sub FROM kv_hist WHERE rev <= ?1 ORDER BY rev, sub",
                           -1, &st, NULL) != SQLITE_OK)
        return KV_ERR_INTERNAL;
    int rc = sqlite3_bind_int64(st, 1, R) == SQLITE_OK ? KV_OK : KV_ERR_INTERNAL, step = 0;
    uint32_t h = 0;
    while (rc == KV_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = kv_row_check(d, st);
        uint8_t b[20];
        put_le(b, (uint64_t)sqlite3_column_int64(st, KV_COL_MOD), 8);
        put_le(b + 8, (uint64_t)sqlite3_column_int64(st, 8), 8);
        put_le(b + 16, (uint64_t)sqlite3_column_int64(st, KV_COL_CRC), 4);
        h = crc32c(h, b, sizeof b);
    }
    if (rc == KV_OK && step != SQLITE_DONE)
        rc = KV_ERR_INTERNAL;
    sqlite3_finalize(st);
    *hash = h;
    return rc;
}

int kv_hash(kv_conn *c, int64_t rev, uint32_t *hash, int64_t *compact_rev, int64_t *hash_rev)
{
    *hash = 0;
    *compact_rev = 0;
    *hash_rev = 0;
    if (rev < 0)
        return KV_ERR_INVALID;
    if (kv_read_begin(&c->d) < 0)
        return KV_ERR_INTERNAL;
    int64_t cur = 0, compact = 0;
    int rc = kv_load_revs(&c->d, &cur, &compact) < 0 ? KV_ERR_INTERNAL : KV_OK;
    int64_t R = rev ? rev : cur;
    if (rc == KV_OK)
        rc = R < compact ? KV_ERR_COMPACTED : R > cur ? KV_ERR_FUTURE_REV : hash_rows(&c->d, R, hash);
    kv_read_end(&c->d);
    *compact_rev = compact;
    *hash_rev = R;
    if (rc != KV_OK)
        *hash = 0;
    return rc;
}

const char *kv_conn_errmsg(kv_conn *c) { return c->d.msg; }

const char *kv_errmsg(kv *k) { return k->w.msg; }

bool kv_corruption_seen(kv *k, char *msg, size_t msglen)
{
    if (!atomic_load(&k->corrupt_seen))
        return false;
    if (msg && msglen) {
        pthread_mutex_lock(&k->pool_mu);
        snprintf(msg, msglen, "%s", k->corrupt_msg);
        pthread_mutex_unlock(&k->pool_mu);
    }
    return true;
}
