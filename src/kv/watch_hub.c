/* watch_hub: who is waiting for which keys, and waking them. The node
 * tells the hub each applied revision (watch_notify); the hub's thread
 * reads the new events' keys from history once, finds the parked watchers
 * whose span contains each key (interval tree) and whose cursor is at or
 * before the event, and wakes them (with nobody parked, watch_notify
 * marks the revision matched itself and wakes no thread). It also wakes
 * watchers at their deadlines. Watchers behind the store are never
 * parked here: whoever serves them reads history in bounded chunks
 * (watch_fetch) until caught up, and only then parks — etcd's unsynced
 * and synced watchers.
 *
 * Must never: copy events per watcher, read SQLite or call a wake
 * function on the node thread, hold its lock while reading SQLite, or
 * miss a wake: a watcher parks only with a cursor past every revision the
 * hub has matched, so every later event is matched against it.
 */
#include "kv/watch_int.h"

#include "kv/kv_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Events read per history chunk by the hub's thread. */
#define WATCH_SCAN_CHUNK 1024

/* ---- parking ---- */

/* Caller holds h->mu. */
static void unpark(watch_hub *h, watch_watcher *w)
{
    if (!w->parked)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        w->g->parked = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    watch_heap_remove(&h->heap, w);
    w->parked = false;
    h->n_parked--;
}

/* Caller holds h->mu. */
static void wake(watch_hub *h, watch_watcher *w)
{
    unpark(h, w);
    w->fn(w->ud);
}

void watch_park(watch_hub *h, watch_watcher *w, int64_t cursor, uint64_t deadline_ms)
{
    pthread_mutex_lock(&h->mu);
    unpark(h, w);
    w->cursor = cursor;
    w->deadline = deadline_ms;
    /* Revisions up to `scanned` were matched before this watcher was here:
     * it must read them itself. */
    bool now = cursor <= h->scanned || (deadline_ms && deadline_ms <= now_ms());
    if (!now) {
        w->next = w->g->parked;
        if (w->next)
            w->next->prev = w;
        w->prev = NULL;
        w->g->parked = w;
        w->parked = true;
        h->n_parked++;
        if (deadline_ms) {
            if (watch_heap_push(&h->heap, w) < 0)
                now = true; /* no memory for the timer: let the caller retry */
            else if (watch_heap_top(&h->heap) == w)
                pthread_cond_signal(&h->cv);
        }
    }
    if (now)
        wake(h, w);
    pthread_mutex_unlock(&h->mu);
}

static void wake_group(watch_group *g, watch_hub *h)
{
    while (g->parked)
        wake(h, g->parked);
}

static void wake_subtree(watch_hub *h, watch_group *g)
{
    if (!g)
        return;
    wake_subtree(h, g->left);
    wake_group(g, h);
    wake_subtree(h, g->right);
}

void watch_wake_all(watch_hub *h)
{
    watch_memo_advance(h); /* history may have jumped: re-read it */
    pthread_mutex_lock(&h->mu);
    wake_subtree(h, h->root);
    pthread_mutex_unlock(&h->mu);
}

/* ---- matching applied events ---- */

typedef struct {
    watch_hub *h;
    int64_t rev;
    unsigned filter; /* the filter bit that would hide this event */
} match_ctx;

static void match_group(watch_group *g, void *p)
{
    match_ctx *m = p;
    watch_watcher *w = g->parked;
    while (w) {
        watch_watcher *next = w->next;
        if (w->cursor <= m->rev && !(w->filters & m->filter))
            wake(m->h, w);
        w = next;
    }
}

/* Caller holds h->mu. */
static void match_events(watch_hub *h, const kv_event_list *evs)
{
    for (size_t i = 0; i < evs->n && h->n_parked; i++) {
        const kv_event *e = &evs->items[i];
        match_ctx m = {h, e->kv.mod_revision,
                       e->type == KV_EVENT_PUT ? WATCH_NOPUT : WATCH_NODELETE};
        watch_tree_stab(h->root, e->kv.key, e->kv.key_len, match_group, &m);
    }
}

/* Reads the events after `scanned` (one chunk) without the lock, then
 * matches them with it. Returns with h->mu held. */
static void scan_chunk(watch_hub *h)
{
    static const uint8_t zero[1] = {0};
    const kv_span all = {.key = NULL, .key_len = 0, .has_end = true, .end = zero, .end_len = 1};
    int64_t from = h->scanned + 1, next = from, target = h->target;
    kv_event_list evs = {0};
    pthread_mutex_unlock(&h->mu);
    kv_conn *c = kv_reader_acquire(h->kv);
    int rc = c ? kv_history(c, &all, from, WATCH_SCAN_CHUNK, false, &evs, &next)
               : KV_ERR_INTERNAL;
    kv_reader_release(h->kv, c);
    /* Read past the last notified revision (applied, not yet notified):
     * a batch kept before it is stale for the watchers woken below. */
    if (rc == KV_OK && next - 1 > target)
        watch_memo_advance(h);
    pthread_mutex_lock(&h->mu);
    if (rc == KV_OK) {
        match_events(h, &evs);
        if (next - 1 > h->scanned)
            h->scanned = next - 1;
    } else {
        /* Compacted under us (or unreadable): which keys changed is lost,
         * so wake everyone; each reads (or is canceled) on its own. */
        if (rc != KV_ERR_COMPACTED)
            log_warn("watch: cannot read history from revision %lld", (long long)from);
        wake_subtree(h, h->root);
        if (target > h->scanned)
            h->scanned = target;
    }
    kv_event_list_free(&evs);
}

/* ---- the hub's thread ---- */

static void expire_deadlines(watch_hub *h)
{
    uint64_t now = now_ms();
    watch_watcher *w;
    while ((w = watch_heap_top(&h->heap)) && w->deadline <= now)
        wake(h, w);
}

static void wait_for_work(watch_hub *h)
{
    watch_watcher *top = watch_heap_top(&h->heap);
    if (!top) {
        pthread_cond_wait(&h->cv, &h->mu);
        return;
    }
    /* deadlines are now_ms() values: CLOCK_MONOTONIC, as the condvar's */
    struct timespec ts = {.tv_sec = (time_t)(top->deadline / 1000),
                          .tv_nsec = (long)(top->deadline % 1000) * 1000000L};
    pthread_cond_timedwait(&h->cv, &h->mu, &ts);
}

static void *hub_main(void *arg)
{
    watch_hub *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        expire_deadlines(h);
        if (h->target <= h->scanned)
            wait_for_work(h);
        else if (h->n_parked == 0)
            h->scanned = h->target; /* nobody to wake: nothing to read */
        else
            scan_chunk(h);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

void watch_notify(watch_hub *h, int64_t revision)
{
    /* Before any wake for it: a batch read before this apply (a write, a
     * compaction) is not handed out after it. */
    watch_memo_advance(h);
    pthread_mutex_lock(&h->mu);
    if (revision > h->target) {
        h->target = revision;
        /* Nobody parked: nothing to match, so no thread to wake (the hub's
         * thread would only do this same step) — one wake-up less per
         * applied batch on a store without watchers. */
        if (h->n_parked == 0)
            h->scanned = revision;
        else
            pthread_cond_signal(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
}

/* ---- watchers ---- */

static void group_free(watch_group *g)
{
    if (!g)
        return;
    free(g->key);
    free(g->end);
    free(g);
}

/* A group for span, not yet in the tree. */
static watch_group *group_new(const kv_span *s)
{
    watch_group *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->key = xmemdup(s->key, s->key_len);
    g->key_len = s->key_len;
    g->inf = s->has_end && s->end_len == 1 && s->end[0] == 0;
    if (!s->has_end) { /* a single key k is [k, k"\0") */
        g->end_len = s->key_len + 1;
        g->end = calloc(1, g->end_len);
        if (g->end)
            memcpy(g->end, s->key, s->key_len);
    } else {
        g->end_len = s->end_len;
        g->end = xmemdup(s->end, s->end_len);
    }
    if (!g->key || !g->end) {
        group_free(g);
        return NULL;
    }
    g->span = (kv_span){.key = g->key, .key_len = g->key_len, .has_end = s->has_end,
                        .end = s->has_end ? g->end : NULL, .end_len = s->has_end ? g->end_len : 0};
    return g;
}

watch_watcher *watch_add(watch_hub *h, const kv_span *span, unsigned filters, bool prev_kv,
                         watch_wake_fn fn, void *ud)
{
    if (!kv_span_valid(span) || !fn)
        return NULL;
    watch_watcher *w = calloc(1, sizeof *w);
    watch_group *fresh = w ? group_new(span) : NULL;
    if (!fresh) {
        free(w);
        return NULL;
    }
    w->filters = filters;
    w->prev_kv = prev_kv;
    w->fn = fn;
    w->ud = ud;
    w->heap_idx = WATCH_NO_HEAP;
    pthread_mutex_lock(&h->mu);
    watch_group *g = watch_tree_find(h->root, fresh);
    if (!g) {
        g = fresh;
        fresh = NULL;
        h->root = watch_tree_insert(h->root, g);
    }
    g->refs++;
    w->g = g;
    h->n_watchers++;
    pthread_mutex_unlock(&h->mu);
    group_free(fresh);
    return w;
}

void watch_remove(watch_hub *h, watch_watcher *w)
{
    if (!w)
        return;
    watch_group *dead = NULL;
    pthread_mutex_lock(&h->mu);
    unpark(h, w);
    if (--w->g->refs == 0) {
        dead = w->g;
        h->root = watch_tree_remove(h->root, dead);
    }
    h->n_watchers--;
    pthread_mutex_unlock(&h->mu);
    if (dead)
        watch_memo_drop(h, dead);
    group_free(dead);
    free(w);
}

size_t watch_count(watch_hub *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->n_watchers;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* ---- lifecycle ---- */

static int init_sync(watch_hub *h)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return -1;
    if (pthread_mutex_init(&h->mu, NULL) != 0) {
        pthread_cond_destroy(&h->cv);
        return -1;
    }
    if (pthread_mutex_init(&h->memo_mu, NULL) != 0) {
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->cv);
        return -1;
    }
    return 0;
}

watch_hub *watch_hub_create(kv *k)
{
    watch_hub *h = calloc(1, sizeof *h);
    if (!h || init_sync(h) < 0) {
        free(h);
        return NULL;
    }
    h->kv = k;
    int64_t rev = 0, compact = 0;
    kv_conn *c = kv_reader_acquire(k);
    int rc = c ? kv_read_revisions(c, &rev, &compact) : KV_ERR_INTERNAL;
    kv_reader_release(k, c);
    h->target = h->scanned = rev;
    if (rc != KV_OK || pthread_create(&h->thread, NULL, hub_main, h) != 0) {
        watch_hub_destroy(h);
        return NULL;
    }
    h->thread_started = true;
    return h;
}

static void free_subtree(watch_hub *h, watch_group *g)
{
    if (!g)
        return;
    free_subtree(h, g->left);
    free_subtree(h, g->right);
    watch_memo_drop(h, g);
    group_free(g);
}

void watch_hub_destroy(watch_hub *h)
{
    if (!h)
        return;
    if (h->thread_started) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
    }
    if (h->n_watchers)
        log_warn("watch: %zu watchers left at shutdown", h->n_watchers);
    free_subtree(h, h->root); /* their watchers belong to callers that are gone */
    watch_heap_free(&h->heap);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->memo_mu);
    free(h);
}
