/* kv_pool: read-only connections for reader threads, opened on demand up
 * to KV_POOL_MAX and reused. A connection keeps its read view (the SQLite
 * read transaction, kv_db.c) between reads until the writer commits, which
 * ends every idle one. Must never hand one connection to two threads at
 * once, never hand out a view older than the last commit, never leave a
 * view open past a commit on an idle connection (it would keep the log
 * from being reset), and never block on the pool: when all are busy,
 * acquire fails (NULL). The one wait is kv_visible.c's, for applied
 * batches to be flushed (a loop turn, bounded). */
#include "kv/kv_internal.h"

#include <stdlib.h>

static kv_conn *conn_open(kv *k)
{
    kv_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    char err[256];
    if (kv_db_open(&c->d, k->path, SQLITE_OPEN_READONLY, err, sizeof err) < 0) {
        log_error("kv: reader: %s", err);
        free(c);
        return NULL;
    }
    c->d.owner = k; /* corruption it finds is the store's to report */
    c->d.reuse = true;
    return c;
}

/* Ends the view a connection kept (no one else uses it meanwhile). */
static void drop_view(kv_conn *c)
{
    c->d.held = false;
    if (!sqlite3_get_autocommit(c->d.db))
        kv_exec(&c->d, KV_ST_ROLLBACK);
}

static bool view_is_old(kv *k, const kv_conn *c)
{
    return c->d.held && c->d.held_gen != atomic_load(&k->commit_gen);
}

kv_conn *kv_reader_acquire(kv *k)
{
    kv_wait_visible(k); /* what this node answered as applied is readable */
    kv_conn *c = NULL;
    pthread_mutex_lock(&k->pool_mu);
    for (size_t i = 0; i < k->n_pool && !c; i++)
        if (!k->pool[i]->in_use)
            c = k->pool[i];
    if (!c && k->n_pool < KV_POOL_MAX) {
        c = conn_open(k);
        if (c)
            k->pool[k->n_pool++] = c;
    }
    if (c)
        c->in_use = true;
    pthread_mutex_unlock(&k->pool_mu);
    if (c && view_is_old(k, c))
        drop_view(c);
    return c;
}

void kv_reader_release(kv *k, kv_conn *c)
{
    if (!c)
        return;
    /* A view kept past a commit would pin an old WAL snapshot: only a
     * current one stays (and kv_pool_committed ends it at the next). */
    if (!c->d.held || view_is_old(k, c))
        drop_view(c);
    pthread_mutex_lock(&k->pool_mu);
    c->in_use = false;
    pthread_mutex_unlock(&k->pool_mu);
}

/* The writer committed: idle connections' views are old and would keep
 * the log from being reset; each is ended now (readers in use end theirs
 * when they release). */
void kv_pool_committed(kv *k)
{
    atomic_fetch_add(&k->commit_gen, 1);
    kv_conn *idle[KV_POOL_MAX];
    size_t n = 0;
    pthread_mutex_lock(&k->pool_mu);
    for (size_t i = 0; i < k->n_pool; i++) {
        if (!k->pool[i]->in_use && k->pool[i]->d.held) {
            k->pool[i]->in_use = true;
            idle[n++] = k->pool[i];
        }
    }
    pthread_mutex_unlock(&k->pool_mu);
    for (size_t i = 0; i < n; i++)
        drop_view(idle[i]);
    pthread_mutex_lock(&k->pool_mu);
    for (size_t i = 0; i < n; i++)
        idle[i]->in_use = false;
    pthread_mutex_unlock(&k->pool_mu);
}

void kv_pool_close(kv *k)
{
    pthread_mutex_lock(&k->pool_mu);
    for (size_t i = 0; i < k->n_pool; i++) {
        if (k->pool[i]->in_use)
            log_warn("kv: closing a reader still in use");
        kv_db_close(&k->pool[i]->d);
        free(k->pool[i]);
    }
    k->n_pool = 0;
    pthread_mutex_unlock(&k->pool_mu);
}
