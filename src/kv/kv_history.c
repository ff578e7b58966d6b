/* kv_history: the changes of a key range from a revision on, as watch
 * events — a seek on kv_hist's (rev, sub) key for a range, on kv_hist_key
 * (key, rev) for a single key, in revision order, cut (by count or by
 * bytes) only at revision boundaries. Every returned record (and prev_kv)
 * is checked against its checksum: KV_ERR_CORRUPT, no events, on a
 * mismatch. Must never write, and never return part of a revision: a
 * watcher resuming from next_rev must neither miss nor repeat an event. */
#include "kv/kv_internal.h"

#include <string.h>

/* The key's record just before rev, as prev_kv (absent if none or if it is
 * a tombstone). KV_OK, KV_ERR_CORRUPT or KV_ERR_INTERNAL. */
static int fill_prev(kv_db *d, kv_event *ev)
{
    sqlite3_stmt *st = kv_stmt(d, KV_ST_HIST_PREV);
    if (!st || kv_bind_bytes(st, 1, ev->kv.key, ev->kv.key_len) < 0 ||
        sqlite3_bind_int64(st, 2, ev->kv.mod_revision) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_int64(st, KV_COL_TOMB) == 0) {
        rc = kv_kv_from_row(d, st, &ev->prev_kv, true);
        ev->has_prev = rc == KV_OK;
    } else {
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? KV_OK : KV_ERR_INTERNAL;
    }
    sqlite3_reset(st);
    return rc;
}

static int push_event(kv_db *d, kv_event_list *out, sqlite3_stmt *st, bool with_prev)
{
    if (kv_grow((void **)&out->items, out->n, sizeof *out->items) < 0)
        return KV_ERR_INTERNAL;
    kv_event *ev = &out->items[out->n];
    memset(ev, 0, sizeof *ev);
    bool tomb = sqlite3_column_int64(st, KV_COL_TOMB) != 0;
    ev->type = tomb ? KV_EVENT_DELETE : KV_EVENT_PUT;
    int rc = kv_kv_from_row(d, st, &ev->kv, !tomb);
    if (rc != KV_OK)
        return rc;
    out->n++;
    return with_prev ? fill_prev(d, ev) : KV_OK;
}

typedef struct {
    const kv_span *span;
    size_t max_events;
    bool with_prev;
} hist_req;

/* The bytes an event holds for its reader: keys and values. */
static size_t event_bytes(const kv_event *ev)
{
    size_t n = (size_t)ev->kv.key_len + ev->kv.value_len;
    return ev->has_prev ? n + ev->prev_kv.key_len + ev->prev_kv.value_len : n;
}

/* Scans from `from`; returns KV_OK with *cut set when max_events or
 * KV_HISTORY_MAX_BYTES stopped it at a revision boundary, *last the last
 * returned revision. */
static int scan(kv_db *d, const hist_req *q, int64_t from, kv_event_list *out, bool *cut,
                int64_t *last)
{
    /* A single key seeks its own records; a range reads every change from
     * `from` in revision order and keeps those in the span. */
    bool one_key = !q->span->has_end;
    sqlite3_stmt *st = kv_stmt(d, one_key ? KV_ST_HIST_KEY_FROM : KV_ST_HIST_FROM);
    if (!st || sqlite3_bind_int64(st, 1, from) != SQLITE_OK ||
        (one_key && kv_bind_bytes(st, 2, q->span->key, q->span->key_len) < 0))
        return KV_ERR_INTERNAL;
    int rc, pushed = KV_OK;
    size_t bytes = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const uint8_t *key = sqlite3_column_blob(st, KV_COL_KEY);
        int n = sqlite3_column_bytes(st, KV_COL_KEY);
        if (!kv_span_contains(q->span, key, (uint32_t)n))
            continue;
        int64_t rev = sqlite3_column_int64(st, KV_COL_MOD);
        if (rev != *last && out->n > 0 &&
            (out->n >= q->max_events || bytes >= KV_HISTORY_MAX_BYTES)) {
            *cut = true;
            break;
        }
        if ((pushed = push_event(d, out, st, q->with_prev)) != KV_OK)
            break;
        bytes += event_bytes(&out->items[out->n - 1]);
        *last = rev;
    }
    sqlite3_reset(st);
    if (pushed != KV_OK)
        return pushed;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? KV_OK : KV_ERR_INTERNAL;
}

int kv_history(kv_conn *c, const kv_span *span, int64_t from_rev, size_t max_events,
               bool with_prev, kv_event_list *out, int64_t *next_rev)
{
    memset(out, 0, sizeof *out);
    *next_rev = from_rev;
    if (!kv_span_valid(span))
        return KV_ERR_INVALID;
    if (kv_read_begin(&c->d) < 0)
        return KV_ERR_INTERNAL;
    int64_t cur, compact, last = 0;
    bool cut = false;
    hist_req q = {span, max_events, with_prev};
    int rc = kv_load_revs(&c->d, &cur, &compact) < 0 ? KV_ERR_INTERNAL
             : from_rev <= compact                   ? KV_ERR_COMPACTED
                                   : scan(&c->d, &q, from_rev, out, &cut, &last);
    kv_read_end(&c->d);
    if (rc != KV_OK) {
        kv_event_list_free(out);
        return rc;
    }
    /* Cut: resume right after the last whole revision returned. Scanned to
     * the end: everything up to cur was seen, resume after it (but never
     * move a cursor that is already ahead backwards). */
    if (cut)
        *next_rev = last + 1;
    else
        *next_rev = from_rev > cur + 1 ? from_rev : cur + 1;
    return KV_OK;
}
