/* kv_defrag: giving kv.db's free pages back to the filesystem — after a
 * compaction or mass delete — in small incremental-vacuum steps on a
 * connection of its own, so the writer waits at most one step (a few
 * milliseconds) at a time and never the whole pass. kv.db is created with
 * auto_vacuum=INCREMENTAL for this (kv_schema_create).
 *
 * Must never: hold the write lock for more than one step, or run on the
 * writer connection (the node thread's).
 */
#include "kv/kv_internal.h"

#include <stdio.h>
#include <unistd.h>

#define STEP_PAGES 64
/* between steps the lock is free: a writer that found it taken (SQLite's
 * busy handler sleeps 1, 2, 5 ms...) gets in before the next step */
#define STEP_PAUSE_US 3000

static int pragma_int(kv_db *d, const char *sql, int64_t *v) { return kv_query_int(d, sql, v); }

static int db_bytes(kv_db *d, uint64_t *bytes, int64_t *free_pages)
{
    int64_t pages, size;
    if (pragma_int(d, "PRAGMA page_count", &pages) < 0 ||
        pragma_int(d, "PRAGMA page_size", &size) < 0 ||
        pragma_int(d, "PRAGMA freelist_count", free_pages) < 0)
        return -1;
    *bytes = (uint64_t)pages * (uint64_t)size;
    return 0;
}

int kv_defrag(kv *k, uint64_t *before, uint64_t *after, char *msg, size_t msglen)
{
    kv_db d;
    kv_other_writer(k, true); /* the node commits each batch: the lock is free between */
    kv_wait_visible(k);       /* and its open transaction ends now */
    if (kv_db_open(&d, k->path, SQLITE_OPEN_READWRITE, msg, msglen) < 0) {
        kv_other_writer(k, false);
        return KV_ERR_INTERNAL;
    }
    int64_t mode = 0, free_pages = 0;
    int rc = KV_ERR_INTERNAL;
    if (pragma_int(&d, "PRAGMA auto_vacuum", &mode) < 0 || db_bytes(&d, before, &free_pages) < 0) {
        kv_errf(msg, msglen, "defrag: %s", sqlite3_errmsg(d.db));
    } else if (mode != 2) {
        kv_errf(msg, msglen, "kv.db was created without incremental vacuum (by a raftkv before "
                "defrag existed); restore it from a backup, or let the member catch up from a "
                "peer's snapshot, to get one that has it");
        rc = KV_ERR_INVALID;
    } else {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%d)", STEP_PAGES);
        rc = KV_OK;
        while (rc == KV_OK && free_pages > 0) {
            usleep(STEP_PAUSE_US);
            if (sqlite3_exec(d.db, sql, NULL, NULL, NULL) != SQLITE_OK ||
                db_bytes(&d, after, &free_pages) < 0) {
                kv_errf(msg, msglen, "defrag: %s", sqlite3_errmsg(d.db));
                rc = KV_ERR_INTERNAL;
            }
        }
        /* the file itself shrinks when the WAL is copied back */
        sqlite3_exec(d.db, "PRAGMA wal_checkpoint(PASSIVE)", NULL, NULL, NULL);
        if (rc == KV_OK && db_bytes(&d, after, &free_pages) < 0)
            rc = KV_ERR_INTERNAL;
    }
    kv_db_close(&d);
    kv_other_writer(k, false);
    return rc;
}
