/* kv_store: opening and closing kv.db (refusing a damaged or foreign one)
 * and the cached revision / applied state the node thread reads without a
 * query. Must never serve from a database that failed its checks. */
#include "kv/kv_internal.h"

#include <stdlib.h>
#include <string.h>

/* Reloads the cache from the database (after open or restore). */
int kv_load_state(kv *k)
{
    int64_t idx, term;
    if (kv_load_revs(&k->w, &k->rev, &k->compact) < 0 ||
        kv_meta_get(&k->w, "applied_index", &idx) < 0 ||
        kv_meta_get(&k->w, "applied_term", &term) < 0 || kv_alarm_load(k) < 0 ||
        kv_auth_load(k) < 0)
        return -1;
    k->applied_index = k->flushed_index = (uint64_t)idx;
    k->applied_term = k->flushed_term = (uint64_t)term;
    kv_note_applied(k);
    return 0;
}

static int set_pragmas(kv_db *d, char *err, size_t errlen)
{
    /* WAL: readers never block the writer. synchronous=NORMAL may lose the
     * last batches on power loss, but the applied index goes back with
     * them and Raft replays those entries. */
    char *msg = NULL;
    if (sqlite3_exec(d->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL,
                     &msg) != SQLITE_OK) {
        kv_errf(err, errlen, "kv database: %s", msg ? msg : "cannot set WAL mode");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int open_checked(kv *k, const char *path, char *err, size_t errlen)
{
    if (kv_db_open(&k->w, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err, errlen) < 0)
        return -1;
    k->w.owner = k;
    int v = kv_schema_verify(&k->w, false, err, errlen);
    if (v < 0)
        return -1;
    /* a new file's schema first: auto_vacuum can only be chosen before
     * WAL mode writes the header */
    if (v == 1 && kv_schema_create(&k->w) < 0) {
        kv_errf(err, errlen, "%s: cannot create the kv schema", path);
        return -1;
    }
    if (set_pragmas(&k->w, err, errlen) < 0)
        return -1;
    if (kv_schema_upgrade(&k->w) < 0 || kv_load_state(k) < 0) {
        kv_errf(err, errlen, "%s: cannot read kv metadata", path);
        return -1;
    }
    return 0;
}

int kv_open(const char *path, kv **out, char *err, size_t errlen)
{
    *out = NULL;
    kv *k = calloc(1, sizeof *k);
    if (!k || !(k->path = xstrdup(path))) {
        kv_errf(err, errlen, "out of memory");
        free(k);
        return KV_ERR_INTERNAL;
    }
    if (pthread_mutex_init(&k->pool_mu, NULL) != 0) {
        kv_errf(err, errlen, "cannot create a mutex");
        free(k->path);
        free(k);
        return KV_ERR_INTERNAL;
    }
    kv_visible_init(k);
    if (open_checked(k, path, err, errlen) < 0) {
        kv_close(k);
        return KV_ERR_INTERNAL;
    }
    *out = k;
    return KV_OK;
}

void kv_close(kv *k)
{
    if (!k)
        return;
    kv_apply_rollback(k);
    if (kv_apply_flush(k) != KV_OK) /* what was applied is in the Raft log too */
        log_warn("kv: closing without the last applied batches; the log has them");
    kv_flusher_stop(k->flusher);
    kv_pool_close(k);
    kv_db_close(&k->w);
    pthread_mutex_destroy(&k->pool_mu);
    kv_visible_destroy(k);
    free(k->path);
    free(k);
}

int kv_start_wal_flusher(kv *k)
{
    if (!k->flusher)
        k->flusher = kv_flusher_start(k->path);
    return k->flusher ? 0 : -1;
}

uint64_t kv_wal_flushes(const kv *k) { return kv_flusher_passes(k->flusher); }

void kv_applied(kv *k, uint64_t *index, uint64_t *term)
{
    *index = k->applied_index;
    *term = k->applied_term;
}

int64_t kv_revision(kv *k) { return k->rev; }

int kv_db_size(kv *k, uint64_t *size, uint64_t *in_use)
{
    int64_t pages, free_pages, page_size;
    if (kv_query_int(&k->w, "PRAGMA page_count", &pages) < 0 ||
        kv_query_int(&k->w, "PRAGMA freelist_count", &free_pages) < 0 ||
        kv_query_int(&k->w, "PRAGMA page_size", &page_size) < 0 || pages < free_pages)
        return KV_ERR_INTERNAL;
    *size = (uint64_t)pages * (uint64_t)page_size;
    *in_use = (uint64_t)(pages - free_pages) * (uint64_t)page_size;
    return KV_OK;
}
int64_t kv_compact_revision(kv *k) { return k->compact; }
