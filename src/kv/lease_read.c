/* lease_read: reading the lease table on a reader connection — one lease
 * with its keys, or all of them. Must never write, and never answer from
 * two snapshots: every read here is one read transaction. */
#include "kv/kv_internal.h"

#include <stdlib.h>
#include <string.h>

/* KV_OK, KV_ERR_CORRUPT (a key failed its checksum) or KV_ERR_INTERNAL. */
int kv_lease_keys(kv_db *d, int64_t id, kv_list *keys)
{
    sqlite3_stmt *st = kv_stmt(d, KV_ST_LEASE_KEYS);
    if (!st || sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
        return KV_ERR_INTERNAL;
    int rc, pushed = KV_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((pushed = kv_list_push_row(d, keys, st, false)) != KV_OK)
            break;
    sqlite3_reset(st);
    return pushed != KV_OK ? pushed : rc == SQLITE_DONE ? KV_OK : KV_ERR_INTERNAL;
}

static int get_in_txn(kv_db *d, int64_t id, int64_t *ttl, kv_list *keys, int64_t *header_rev)
{
    int64_t compact;
    if (kv_load_revs(d, header_rev, &compact) < 0)
        return KV_ERR_INTERNAL;
    sqlite3_stmt *st = kv_stmt(d, KV_ST_LEASE_GET);
    if (!st || sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
        return KV_ERR_INTERNAL;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *ttl = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return KV_ERR_NOT_FOUND;
    if (rc != SQLITE_ROW)
        return KV_ERR_INTERNAL;
    return keys ? kv_lease_keys(d, id, keys) : KV_OK;
}

int kv_lease_get(kv_conn *c, int64_t id, int64_t *ttl, kv_list *keys, int64_t *header_rev)
{
    *ttl = 0;
    *header_rev = 0;
    if (keys)
        memset(keys, 0, sizeof *keys);
    if (kv_read_begin(&c->d) < 0)
        return KV_ERR_INTERNAL;
    int rc = get_in_txn(&c->d, id, ttl, keys, header_rev);
    kv_read_end(&c->d);
    if (rc != KV_OK && keys)
        kv_list_free(keys);
    return rc;
}

static void lease_row(sqlite3_stmt *st, void *item)
{
    *(kv_lease *)item = (kv_lease){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1)};
}

static int list_in_txn(kv_db *d, kv_lease **out, size_t *n, int64_t *header_rev)
{
    int64_t compact;
    if (kv_load_revs(d, header_rev, &compact) < 0)
        return KV_ERR_INTERNAL;
    sqlite3_stmt *st = kv_stmt(d, KV_ST_LEASE_LIST);
    if (!st)
        return KV_ERR_INTERNAL;
    int rc = kv_collect_rows(st, (void **)out, n, sizeof **out, lease_row);
    sqlite3_reset(st);
    return rc;
}

int kv_lease_list(kv_conn *c, kv_lease **out, size_t *n, int64_t *header_rev)
{
    *out = NULL;
    *n = 0;
    *header_rev = 0;
    if (kv_read_begin(&c->d) < 0)
        return KV_ERR_INTERNAL;
    int rc = list_in_txn(&c->d, out, n, header_rev);
    kv_read_end(&c->d);
    if (rc != KV_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}
