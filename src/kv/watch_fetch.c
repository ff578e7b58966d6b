/* watch_fetch: one watcher's next events, read from kv history — whole
 * revisions, in order, with its filters applied — and the cursor to
 * resume from. This is how a watcher that is behind catches up, in
 * bounded chunks, on the thread that serves it. Watchers of one span
 * that ask for the same cursor share one read (watch_memo.c).
 *
 * Must never: hold the hub's lock (it reads SQLite), split a revision, or
 * move a cursor past an event it did not return.
 */
#include "kv/watch_int.h"

#include "kv/kv_internal.h"

#include <string.h>

/* Drops the events the watcher's filters hide (whole events; revisions
 * are never cut, since the cursor already covers them). */
static void apply_filters(kv_event_list *l, unsigned filters)
{
    if (!filters)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < l->n; i++) {
        kv_event *e = &l->items[i];
        unsigned bit = e->type == KV_EVENT_PUT ? WATCH_NOPUT : WATCH_NODELETE;
        if (filters & bit) {
            kv_kv_free(&e->kv);
            kv_kv_free(&e->prev_kv);
        } else {
            l->items[kept++] = *e;
        }
    }
    l->n = kept;
}

/* One read of history for w; KV_OK fills out (owned by the caller). */
static int fetch_read(watch_hub *h, const watch_watcher *w, int64_t cursor, size_t max_events,
                      watch_batch *out)
{
    kv_conn *c = kv_reader_acquire(h->kv);
    if (!c)
        return KV_ERR_INTERNAL;
    int64_t cur = 0, compact = 0;
    int rc = kv_history(c, &w->g->span, cursor, max_events, w->prev_kv, &out->events,
                        &out->next_rev);
    /* Read after the history: the header is then >= every event in it. */
    if ((rc == KV_OK || rc == KV_ERR_COMPACTED) && kv_read_revisions(c, &cur, &compact) != KV_OK)
        rc = KV_ERR_INTERNAL;
    kv_reader_release(h->kv, c);
    if (rc != KV_OK) {
        kv_event_list_free(&out->events);
        out->next_rev = cursor;
        out->compact_rev = compact;
        return rc;
    }
    apply_filters(&out->events, w->filters);
    out->header_rev = cur;
    out->more = out->next_rev <= cur;
    return KV_OK;
}

int watch_fetch(watch_hub *h, const watch_watcher *w, int64_t cursor, size_t max_events,
                watch_batch *out)
{
    memset(out, 0, sizeof *out);
    out->next_rev = cursor;
    uint64_t epoch;
    if (watch_memo_take(h, w, cursor, max_events, out, &epoch))
        return KV_OK;
    int rc = fetch_read(h, w, cursor, max_events, out);
    if (rc == KV_OK)
        watch_memo_offer(h, w, cursor, max_events, epoch, out);
    return rc;
}
