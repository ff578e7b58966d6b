/* watch_memo: one read of history shared by the watchers of one span.
 * When an event wakes a thousand watchers of the same key, each would
 * read the same events from SQLite and render the same line; instead the
 * first one's batch (and its rendering) is kept on the span's group and
 * handed to the others that ask for the same cursor with the same
 * options, as long as nothing was applied since it was read (the hub's
 * epoch moves on every watch_notify and watch_wake_all, so a write, a
 * compaction or a snapshot install retires it).
 *
 * Must never: hand out a batch read before the last applied entry was
 * notified (then it could show history a compaction has dropped), let a
 * holder change a shared batch, or keep more than one bounded batch per
 * span: a lone watcher's batches and big ones are not kept at all.
 */
#include "kv/watch_int.h"

#include <stdlib.h>
#include <string.h>

/* A bigger batch is not kept (it is read again by whoever needs it). */
#define WATCH_MEMO_MAX_BYTES (256 * 1024)

struct watch_shared {
    watch_hub *h;
    size_t refs;          /* the group's and each holder's; under h->memo_mu */
    uint64_t epoch;       /* h->epoch when the read began */
    int64_t cursor;
    size_t max_events;
    bool prev_kv;
    unsigned filters;
    watch_batch b;        /* b.shared is NULL here: this owns the events */
    const void *tag;      /* whose rendering text is, or NULL */
    char *text;
    size_t text_len;
};

static size_t batch_bytes(const watch_batch *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->events.n; i++) {
        const kv_event *e = &b->events.items[i];
        n += sizeof *e + e->kv.key_len + e->kv.value_len + e->prev_kv.key_len +
             e->prev_kv.value_len;
    }
    return n;
}

/* Caller holds h->memo_mu; returns the object to free after unlocking. */
static watch_shared *unref_locked(watch_shared *s)
{
    return s && --s->refs == 0 ? s : NULL;
}

static void shared_free(watch_shared *s)
{
    if (!s)
        return;
    kv_event_list_free(&s->b.events);
    free(s->text);
    free(s);
}

static bool matches(const watch_shared *s, const watch_watcher *w, int64_t cursor,
                    size_t max_events, uint64_t epoch)
{
    return s && s->epoch == epoch && s->cursor == cursor && s->max_events == max_events &&
           s->prev_kv == w->prev_kv && s->filters == w->filters;
}

bool watch_memo_take(watch_hub *h, const watch_watcher *w, int64_t cursor, size_t max_events,
                     watch_batch *out, uint64_t *epoch)
{
    pthread_mutex_lock(&h->memo_mu);
    watch_shared *s = w->g->memo;
    bool hit = matches(s, w, cursor, max_events, h->epoch);
    if (hit) {
        s->refs++;
        *out = s->b;
        out->shared = s;
    }
    *epoch = h->epoch;
    pthread_mutex_unlock(&h->memo_mu);
    return hit;
}

void watch_memo_offer(watch_hub *h, const watch_watcher *w, int64_t cursor, size_t max_events,
                      uint64_t epoch, watch_batch *b)
{
    pthread_mutex_lock(&h->mu);
    bool crowd = w->g->refs > 1;
    pthread_mutex_unlock(&h->mu);
    if (!crowd || b->shared || batch_bytes(b) > WATCH_MEMO_MAX_BYTES)
        return;
    watch_shared *s = calloc(1, sizeof *s);
    if (!s)
        return; /* the caller keeps its own batch: nothing is lost */
    *s = (watch_shared){.h = h, .refs = 2, .epoch = epoch, .cursor = cursor,
                        .max_events = max_events, .prev_kv = w->prev_kv, .filters = w->filters,
                        .b = *b};
    b->shared = s;
    watch_shared *old = NULL;
    pthread_mutex_lock(&h->memo_mu);
    if (h->epoch == epoch) { /* nothing applied since the read began */
        old = unref_locked(w->g->memo);
        w->g->memo = s;
    } else {
        s->refs = 1;
    }
    pthread_mutex_unlock(&h->memo_mu);
    shared_free(old);
}

void watch_memo_drop(watch_hub *h, watch_group *g)
{
    pthread_mutex_lock(&h->memo_mu);
    watch_shared *s = unref_locked(g->memo);
    g->memo = NULL;
    pthread_mutex_unlock(&h->memo_mu);
    shared_free(s);
}

void watch_memo_advance(watch_hub *h)
{
    pthread_mutex_lock(&h->memo_mu);
    h->epoch++;
    pthread_mutex_unlock(&h->memo_mu);
}

void watch_batch_free(watch_batch *b)
{
    watch_shared *s = b->shared;
    if (!s) {
        kv_event_list_free(&b->events);
        return;
    }
    watch_hub *h = s->h;
    pthread_mutex_lock(&h->memo_mu);
    s = unref_locked(s);
    pthread_mutex_unlock(&h->memo_mu);
    shared_free(s);
    memset(b, 0, sizeof *b);
}

bool watch_batch_text(const watch_batch *b, const void *tag, buf *out)
{
    watch_shared *s = b->shared;
    if (!s)
        return false;
    pthread_mutex_lock(&s->h->memo_mu);
    bool ok = s->tag == tag && s->text && buf_append(out, s->text, s->text_len) == 0;
    pthread_mutex_unlock(&s->h->memo_mu);
    return ok;
}

void watch_batch_keep_text(const watch_batch *b, const void *tag, const void *text, size_t len)
{
    watch_shared *s = b->shared;
    if (!s || !tag || len > WATCH_MEMO_MAX_BYTES)
        return;
    char *copy = xmemdup(text, len);
    if (!copy)
        return;
    pthread_mutex_lock(&s->h->memo_mu);
    if (!s->text) {
        s->tag = tag;
        s->text = copy;
        s->text_len = len;
        copy = NULL;
    }
    pthread_mutex_unlock(&s->h->memo_mu);
    free(copy);
}
