/* h_watch: GET /watch/{key} (docs/API.md sections 5 and 9) — long-poll and
 * chunked NDJSON streams over the watch hub. A long-poll reads its events
 * from kv history from its cursor on, in bounded chunks, on the MHD
 * thread that serves it; when it has read everything it suspends its
 * connection and parks in the hub, which resumes it on a matching event
 * or at its deadline. ?stream=true hands the watcher to stream.c with
 * this route's renderer (one {header, events} line per batch).
 *
 * Must never: block an MHD thread, split a revision across answers, or
 * move a cursor past an event it did not deliver.
 */
#include "api/api_int.h"
#include "api/input.h"
#include "api/stream.h"

#include <stdlib.h>
#include <string.h>

#define POLL_MAX_EVENTS 1000
/* History chunks read in one turn when filters hide everything, before
 * the thread is handed back to other connections (as in stream.c). */
#define YIELD_CHUNKS 16
#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S 3600

typedef struct {
    bool prev_kv, stream;
    unsigned filters;
    int64_t start;       /* 0: current revision + 1 */
    int64_t timeout_s;
    int64_t progress_ms;
} wparams;

/* A long-poll's watcher (r->ext). */
typedef struct {
    watch_hub *hub;
    watch_watcher *w;
    int64_t cursor;       /* the next revision to deliver */
    uint64_t deadline;    /* answer empty at this now_ms() */
} wpoll;

/* ---- parameters ---- */

static int parse_filters(api_req *r, unsigned *out)
{
    uint8_t *v;
    size_t n;
    if (api_query_bytes(r, "filters", &v, &n) < 0)
        return -1;
    *out = 0;
    for (size_t i = 0; v && i < n;) {
        size_t j = i;
        while (j < n && v[j] != ',' && v[j] != '|')
            j++;
        if (j - i == 5 && memcmp(v + i, "noput", 5) == 0) {
            *out |= WATCH_NOPUT;
        } else if (j - i == 8 && memcmp(v + i, "nodelete", 8) == 0) {
            *out |= WATCH_NODELETE;
        } else {
            free(v);
            api_reply_error(r, 400, "invalid_argument", NULL,
                            "filters: expected noput and/or nodelete");
            return -1;
        }
        i = j + 1;
    }
    free(v);
    return 0;
}

static int parse_params(api_req *r, wparams *p)
{
    static const char *const allowed[] = {"prefix", "range_end", "start_revision", "prev_kv",
                                          "filters", "timeout", "stream", "progress_ms", NULL};
    *p = (wparams){.timeout_s = DEFAULT_TIMEOUT_S, .progress_ms = API_PROGRESS_MS_DEFAULT};
    if (api_query_only(r, allowed) < 0 || api_parse_span(r) < 0 ||
        api_query_bool(r, "prev_kv", &p->prev_kv) < 0 ||
        api_query_bool(r, "stream", &p->stream) < 0 || parse_filters(r, &p->filters) < 0 ||
        api_query_i64(r, "start_revision", 0, &p->start, NULL) < 0 ||
        api_query_i64(r, "timeout", 0, &p->timeout_s, NULL) < 0 ||
        api_query_i64(r, "progress_ms", API_PROGRESS_MS_MIN, &p->progress_ms, NULL) < 0)
        return -1;
    if (p->timeout_s > MAX_TIMEOUT_S) {
        api_reply_error(r, 400, "invalid_argument", NULL, "timeout: expected 0 to %d seconds",
                        MAX_TIMEOUT_S);
        return -1;
    }
    if (p->progress_ms > API_PROGRESS_MS_MAX) {
        api_reply_error(r, 400, "invalid_argument", NULL, "progress_ms: expected %d to %d",
                        API_PROGRESS_MS_MIN, API_PROGRESS_MS_MAX);
        return -1;
    }
    return 0;
}

/* ---- JSON ---- */

/* A DELETE's kv has no value (as in etcd): key and mod_revision matter. */
static json_t *event_json(const kv_event *e)
{
    bool put = e->type == KV_EVENT_PUT;
    json_t *o = json_pack("{s:s,s:o}", "type", put ? "PUT" : "DELETE", "kv",
                          api_json_kv(&e->kv, !put));
    if (o && e->has_prev && json_object_set_new(o, "prev_kv", api_json_kv(&e->prev_kv, false)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *events_json(const kv_event_list *l)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l->n; i++) {
        if (json_array_append_new(arr, event_json(&l->items[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* The /watch stream's renderer: one {header, events} line per batch. */
static int render_events(api *a, void *ud, const watch_batch *b, json_t *lines)
{
    (void)ud;
    return json_array_append_new(lines, json_pack("{s:o,s:o}", "header",
                                                  api_json_header(a, b->header_rev), "events",
                                                  events_json(&b->events))) < 0
               ? KV_ERR_INTERNAL : KV_OK;
}

/* ---- long-poll ---- */

static void poll_step(api_req *r);

static void poll_wake(void *ud) { api_wake(ud); }

static void poll_free(api_req *r)
{
    wpoll *c = r->ext;
    watch_remove(c->hub, c->w); /* its callback never runs after this */
    free(c);
    r->ext = NULL;
}

/* Suspends r until the hub wakes it (at `at`, or at the next client
 * probe, at the latest), then runs poll_step again. */
static void poll_wait(api_req *r, uint64_t at)
{
    wpoll *c = r->ext;
    uint64_t probe = now_ms() + API_PROBE_MS; /* see api_client_gone */
    if (at > probe)
        at = probe;
    /* suspend first: the park may wake it at once, from inside the call */
    if (api_wait_external(r, poll_step))
        watch_park(c->hub, c->w, c->cursor, at);
}

static void poll_answer(api_req *r, const watch_batch *b)
{
    api_reply_json(r, 200, json_pack("{s:o,s:o,s:I}", "header", api_json_header(r->a, b->header_rev),
                                     "events", events_json(&b->events), "next_revision",
                                     (json_int_t)b->next_rev));
}

static void poll_step(api_req *r)
{
    wpoll *c = r->ext;
    if (api_client_gone(r)) { /* closes the request: its watcher goes with it */
        api_reply_gone(r);
        return;
    }
    for (int i = 0; i < YIELD_CHUNKS; i++) {
        watch_batch b;
        int rc = watch_fetch(c->hub, c->w, c->cursor, POLL_MAX_EVENTS, &b);
        if (rc == KV_ERR_COMPACTED || rc == KV_ERR_CORRUPT) {
            api_reply_kv_error(r, rc, b.compact_rev);
            return;
        }
        if (rc != KV_OK) {
            api_reply_error(r, 503, "unavailable", NULL, "watch: cannot read history now");
            return;
        }
        c->cursor = b.next_rev;
        bool more = b.more;
        if (b.events.n || (!more && now_ms() >= c->deadline)) {
            poll_answer(r, &b);
            watch_batch_free(&b);
            return;
        }
        watch_batch_free(&b);
        if (!more) {
            poll_wait(r, c->deadline);
            return;
        }
    }
    poll_wait(r, now_ms()); /* all filtered so far: let others run, then go on */
}

/* Parks r's long-poll on span from cursor; answers a 500 itself. */
static void poll_start(api_req *r, watch_hub *hub, const wparams *p, int64_t cursor)
{
    wpoll *c = calloc(1, sizeof *c);
    if (c)
        c->w = watch_add(hub, &r->op.span, p->filters, p->prev_kv, poll_wake, r);
    if (!c || !c->w) {
        free(c);
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    c->hub = hub;
    c->cursor = cursor;
    c->deadline = now_ms() + (uint64_t)p->timeout_s * 1000;
    r->ext = c;
    r->ext_free = poll_free;
    poll_step(r);
}

/* The tag under which render_events' text is shared by the streams that
 * fetched the same batch (its lines depend on the batch alone). */
static const char events_tag;

void api_h_watch(api_req *r)
{
    wparams p;
    if (parse_params(r, &p) < 0 || !api_auth_read(r, NULL, &r->op.span))
        return;
    watch_hub *hub = r->a->hub;
    kv_conn *kc = kv_reader_acquire(r->a->kv);
    int64_t rev = 0, compact = 0;
    int rc = kc ? kv_read_revisions(kc, &rev, &compact) : KV_ERR_INTERNAL;
    kv_reader_release(r->a->kv, kc);
    if (!hub || rc != KV_OK) {
        api_reply_error(r, 503, "unavailable", NULL, "watch: not available now");
        return;
    }
    int64_t cursor = p.start ? p.start : rev + 1;
    if (!p.stream) {
        poll_start(r, hub, &p, cursor);
        return;
    }
    api_stream_spec spec = {.span = &r->op.span, .filters = p.filters, .prev_kv = p.prev_kv,
                            .start = cursor, .progress_ms = (uint64_t)p.progress_ms,
                            .render = render_events, .share_tag = &events_tag};
    spec.first = json_pack("{s:b,s:o}", "created", 1, "header", api_json_header(r->a, rev));
    api_stream_start(r, &spec);
}
