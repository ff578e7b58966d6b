/* kv_alarm: alarms as replicated state — applying ALARM_ACTIVATE /
 * ALARM_DEACTIVATE to the kv_alarm table (inside kv_apply's savepoint, on
 * the node thread), the in-memory mask of active types that apply and the
 * node read without a query, and listing alarms on a reader.
 *
 * Must never decide when to raise an alarm (the node does, from the
 * quota, ENOSPC or a checksum mismatch) and never let the mask disagree
 * with the table at a batch or command boundary. */
#include "kv/kv_internal.h"

#include <stdlib.h>

/* The mask from the table, on the writer (inside or outside a batch). */
int kv_alarm_load(kv *k)
{
    sqlite3_stmt *st = kv_stmt(&k->w, KV_ST_ALARM_LIST);
    if (!st)
        return -1;
    uint32_t mask = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t type = sqlite3_column_int64(st, 1);
        if (type == KV_ALARM_NOSPACE || type == KV_ALARM_CORRUPT)
            mask |= KV_ALARM_BIT(type);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return -1;
    atomic_store_explicit(&k->alarms, mask, memory_order_relaxed);
    return 0;
}

int kv_alarm_apply(kv *k, const kv_cmd *c, kv_result *res)
{
    bool on = c->kind == KV_CMD_ALARM_ACTIVATE;
    enum kv_stmt_id id = on ? KV_ST_ALARM_PUT
                         : c->alarm_member ? KV_ST_ALARM_DEL
                                           : KV_ST_ALARM_DEL_TYPE;
    sqlite3_stmt *st = kv_stmt(&k->w, id);
    if (!st || sqlite3_bind_int64(st, 1, (int64_t)c->alarm_member) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, c->alarm_type) != SQLITE_OK || kv_step_done(&k->w, st) < 0 ||
        kv_alarm_load(k) < 0)
        return KV_ERR_INTERNAL;
    res->alarms = kv_alarms_active(k);
    if (!on)
        atomic_fetch_add(&k->disarms, 1);
    return KV_OK;
}

uint32_t kv_alarms_active(kv *k)
{
    return atomic_load_explicit(&k->alarms, memory_order_relaxed);
}

uint64_t kv_alarm_disarms(kv *k) { return atomic_load(&k->disarms); }

static void alarm_row(sqlite3_stmt *st, void *item)
{
    *(kv_alarm *)item = (kv_alarm){(uint64_t)sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1)};
}

static int list_in_txn(kv_db *d, kv_alarm **out, size_t *n)
{
    sqlite3_stmt *st = kv_stmt(d, KV_ST_ALARM_LIST);
    if (!st)
        return KV_ERR_INTERNAL;
    int rc = kv_collect_rows(st, (void **)out, n, sizeof **out, alarm_row);
    sqlite3_reset(st);
    return rc;
}

int kv_alarms_list(kv_conn *c, kv_alarm **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (kv_read_begin(&c->d) < 0)
        return KV_ERR_INTERNAL;
    int rc = list_in_txn(&c->d, out, n);
    kv_read_end(&c->d);
    if (rc != KV_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}
