/* kv_visible: what readers see. The writer's transaction stays open across
 * applied batches (kv_apply.c) and kv_apply_flush commits them together —
 * one SQLite commit, one set of log pages, for many writes; the Raft log,
 * not kv.db, is what makes a write durable, and kv.db's applied index says
 * where a restart replays from. Readers (the pool's connections) see only
 * what is flushed, so a reader first waits, briefly, until everything the
 * node applied when it asked is flushed: a client that was answered a
 * write then reads it on the same member (kv_wait_visible).
 *
 * Must never let a reader wait on the writer's own thread (it is the one
 * that flushes), never wait without bound, and never mark an index
 * visible before its commit returned. */
#include "kv/kv_internal.h"

#include <errno.h>
#include <time.h>

/* How long a reader waits for a flush at most: the node flushes in the
 * turn after a reader asks, so this is only met when the node cannot
 * (its disk is full); the reader then reads what is there. */
#define KV_VISIBLE_WAIT_MS 1000

void kv_visible_init(kv *k)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&k->vis_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->vis_cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&k->applied_seen, 0);
    atomic_init(&k->visible, 0);
    atomic_init(&k->gate_off, false);
    atomic_init(&k->other_writers, 0);
    atomic_init(&k->commit_gen, 0);
    atomic_init(&k->writer_set, false);
}

void kv_visible_destroy(kv *k)
{
    pthread_cond_destroy(&k->vis_cv);
    pthread_mutex_destroy(&k->vis_mu);
}

static void set_visible(kv *k, uint64_t index)
{
    pthread_mutex_lock(&k->vis_mu);
    atomic_store(&k->visible, index);
    pthread_cond_broadcast(&k->vis_cv);
    pthread_mutex_unlock(&k->vis_mu);
}

/* The applied index moved (a batch ended, or the state was loaded). */
void kv_note_applied(kv *k)
{
    atomic_store(&k->applied_seen, k->applied_index);
    if (!k->tx_open)
        set_visible(k, k->applied_index);
}

void kv_set_flush_hook(kv *k, void (*want_flush)(void *ud), void *ud)
{
    k->want_flush = want_flush;
    k->want_ud = ud;
}

bool kv_unflushed(const kv *k) { return k->tx_open; }

/* Another connection writes kv.db (defrag's steps): holding the write
 * lock across batches would starve it. */
bool kv_defer_ok(kv *k) { return atomic_load(&k->other_writers) == 0; }

void kv_other_writer(kv *k, bool on) { atomic_fetch_add(&k->other_writers, on ? 1 : -1); }

bool kv_take_lost(kv *k)
{
    bool lost = k->lost;
    k->lost = false;
    return lost;
}

void kv_gate_open(kv *k, bool open)
{
    atomic_store(&k->gate_off, open);
    if (open) { /* wake whoever waits: they read what is there */
        pthread_mutex_lock(&k->vis_mu);
        pthread_cond_broadcast(&k->vis_cv);
        pthread_mutex_unlock(&k->vis_mu);
    }
}

int kv_apply_flush(kv *k)
{
    if (!k->tx_open || k->in_batch)
        return KV_OK;
    k->w.fail_code = 0;
    if (kv_failpoint_error(k, "kv.flush") == KV_OK && kv_exec(&k->w, KV_ST_COMMIT) == 0) {
        k->tx_open = false;
        k->flushed_index = k->applied_index;
        k->flushed_term = k->applied_term;
        kv_pool_committed(k); /* before readers pass: no one reads an older view */
        set_visible(k, k->applied_index);
        kv_flusher_note(k->flusher);
        return KV_OK;
    }
    log_error("kv: batches up to index %llu not committed: %s",
              (unsigned long long)k->applied_index, k->w.msg);
    int rc = kv_fail_code(k->w.fail_code);
    return kv_lose_uncommitted(k) < 0 ? KV_ERR_INTERNAL : rc;
}

int kv_lose_uncommitted(kv *k)
{
    /* a failed statement or COMMIT may have rolled it back already */
    bool undone = sqlite3_get_autocommit(k->w.db) || kv_exec(&k->w, KV_ST_ROLLBACK) == 0;
    k->tx_open = false;
    if (k->applied_index != k->flushed_index)
        k->lost = true;
    if (!undone || kv_failpoint_error(k, "kv.reload") != KV_OK || kv_load_state(k) < 0) {
        log_error("kv: cannot read kv.db's state back after a rollback");
        return -1;
    }
    return 0;
}

static bool on_writer(kv *k)
{
    return atomic_load(&k->writer_set) && pthread_equal(pthread_self(), k->writer);
}

void kv_wait_visible(kv *k)
{
    uint64_t want = atomic_load(&k->applied_seen);
    if (want <= atomic_load(&k->visible) || !k->want_flush || on_writer(k) ||
        atomic_load(&k->gate_off))
        return;
    struct timespec ts;
    monotonic_after(KV_VISIBLE_WAIT_MS, &ts);
    pthread_mutex_lock(&k->vis_mu);
    k->want_flush(k->want_ud);
    while (atomic_load(&k->visible) < want && !atomic_load(&k->gate_off))
        if (pthread_cond_timedwait(&k->vis_cv, &k->vis_mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&k->vis_mu);
}
