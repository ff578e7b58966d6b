/* watch_fetch: one watcher's next events, read from kv history — whole
 * revisions, in order, with its filters applied — and the cursor to
 * resume from. This is how a watcher that is behind catches up, in
 * bounded chunks, on the thread that serves it.
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

int watch_fetch(watch_hub *h, const watch_watcher *w, int64_t cursor, size_t max_events,
                watch_batch *out)
{
    memset(out, 0, sizeof *out);
    out->next_rev = cursor;
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
        watch_batch_free(out);
        out->next_rev = cursor;
        out->compact_rev = compact;
        return rc;
    }
    apply_filters(&out->events, w->filters);
    out->header_rev = cur;
    out->more = out->next_rev <= cur;
    return KV_OK;
}

void watch_batch_free(watch_batch *b) { kv_event_list_free(&b->events); }
