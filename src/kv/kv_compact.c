/* kv_compact: drops history older than a revision R, keeping for every key
 * its latest record at or below R unless that is a tombstone, so reads at
 * R (and watches after R) still work. Must never touch kv_cur or the
 * revision: compaction is not a write in etcd's sense. */
#include "kv/kv_internal.h"

int kv_compact_apply(kv *k, int64_t revision, kv_result *res)
{
    if (revision > k->rev) {
        res->err = KV_ERR_FUTURE_REV;
        return KV_OK;
    }
    if (revision <= k->compact) {
        res->err = KV_ERR_COMPACTED;
        return KV_OK;
    }
    sqlite3_stmt *st = kv_stmt(&k->w, KV_ST_COMPACT);
    if (!st || sqlite3_bind_int64(st, 1, revision) != SQLITE_OK ||
        kv_step_done(&k->w, st) < 0 || kv_meta_set(&k->w, "compact_revision", revision) < 0)
        return KV_ERR_INTERNAL;
    k->compact = revision;
    return KV_OK;
}
