/* h_watch: GET /watch/{key} (DESIGN.md section 6) — long-poll and
 * chunked NDJSON streams over the watch hub. A watcher reads its events
 * from kv history from its cursor on, in bounded chunks, on the MHD thread
 * that serves it; when it has read everything it suspends its connection
 * and parks in the hub, which resumes it on a matching event or at its
 * deadline (long-poll timeout, stream progress tick). The stream machinery
 * also serves other renderings of a watcher's batches (api_watch_stream:
 * the election observe stream).
 *
 * Must never: block an MHD thread, split a revision across answers, move
 * a cursor past an event it did not deliver, or hold more than one chunk
 * of events per stream (a client that stops reading stops being asked
 * for more: its cursor lags and it catches up from history later, or is
 * canceled as compacted). A stream is suspended only while parked in the
 * hub, after checking a->stopping under a->mu, so api_stop can wake it.
 */
#include "api/api_int.h"
#include "api/input.h"

#include <stdlib.h>
#include <string.h>

#define POLL_MAX_EVENTS 1000
#define STREAM_MAX_EVENTS 128
#define STREAM_BLOCK (16 * 1024)
/* History chunks read in one turn when filters hide everything, before
 * the thread is handed back to other connections. */
#define YIELD_CHUNKS 16
#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S 3600
#define DEFAULT_PROGRESS_MS API_PROGRESS_MS_DEFAULT
#define MIN_PROGRESS_MS API_PROGRESS_MS_MIN
#define MAX_PROGRESS_MS API_PROGRESS_MS_MAX

typedef struct {
    bool prev_kv, stream;
    unsigned filters;
    int64_t start;       /* 0: current revision + 1 */
    int64_t timeout_s;
    int64_t progress_ms;
} wparams;

/* One watch: the long-poll's (r->ext) or the stream response's. */
typedef struct {
    api *a;
    watch_hub *hub;
    watch_watcher *w;
    int64_t cursor;       /* the next revision to deliver */
    uint64_t deadline;    /* long-poll: answer empty at this now_ms() */
    /* stream only */
    struct MHD_Connection *conn;
    pthread_mutex_t mu;   /* guards suspended (MHD thread vs hub callback) */
    bool suspended;
    bool ended;           /* nothing more after what is in out */
    bool caught_up;       /* out reached the store's revision when it was read */
    uint64_t progress_ms, last_sent;
    buf out;              /* the line(s) being sent */
    size_t off;
    api_stream_render_fn render; /* a batch of events -> lines */
    void *ud;             /* render's, freed with ud_free */
    void (*ud_free)(void *ud);
} wctx;

static void wctx_free(wctx *c)
{
    if (!c)
        return;
    watch_remove(c->hub, c->w); /* its callback never runs after this */
    if (c->ud_free)
        c->ud_free(c->ud);
    if (c->conn)
        pthread_mutex_destroy(&c->mu);
    buf_free(&c->out);
    free(c);
}

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
    *p = (wparams){.timeout_s = DEFAULT_TIMEOUT_S, .progress_ms = DEFAULT_PROGRESS_MS};
    if (api_query_only(r, allowed) < 0 || api_parse_span(r) < 0 ||
        api_query_bool(r, "prev_kv", &p->prev_kv) < 0 ||
        api_query_bool(r, "stream", &p->stream) < 0 || parse_filters(r, &p->filters) < 0 ||
        api_query_i64(r, "start_revision", 0, &p->start, NULL) < 0 ||
        api_query_i64(r, "timeout", 0, &p->timeout_s, NULL) < 0 ||
        api_query_i64(r, "progress_ms", MIN_PROGRESS_MS, &p->progress_ms, NULL) < 0)
        return -1;
    if (p->timeout_s > MAX_TIMEOUT_S) {
        api_reply_error(r, 400, "invalid_argument", NULL, "timeout: expected 0 to %d seconds",
                        MAX_TIMEOUT_S);
        return -1;
    }
    if (p->progress_ms > MAX_PROGRESS_MS) {
        api_reply_error(r, 400, "invalid_argument", NULL, "progress_ms: expected %d to %d",
                        MIN_PROGRESS_MS, MAX_PROGRESS_MS);
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
    wctx_free(r->ext);
    r->ext = NULL;
}

/* Suspends r until the hub wakes it (at `at`, or at the next client
 * probe, at the latest), then runs poll_step again. */
static void poll_wait(api_req *r, uint64_t at)
{
    wctx *c = r->ext;
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
    wctx *c = r->ext;
    if (api_client_gone(r)) { /* closes the request: its watcher goes with it */
        api_reply_gone(r);
        return;
    }
    for (int i = 0; i < YIELD_CHUNKS; i++) {
        watch_batch b;
        int rc = watch_fetch(c->hub, c->w, c->cursor, POLL_MAX_EVENTS, &b);
        if (rc == KV_ERR_COMPACTED) {
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

/* ---- stream ---- */

static void stream_wake(void *ud)
{
    wctx *c = ud;
    pthread_mutex_lock(&c->mu);
    if (c->suspended) {
        c->suspended = false;
        MHD_resume_connection(c->conn);
    }
    pthread_mutex_unlock(&c->mu);
}

static void stream_free(void *cls) { wctx_free(cls); }

/* Appends one NDJSON line (takes o). */
static int put_line(wctx *c, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = text && buf_append(&c->out, text, strlen(text)) == 0 &&
                     buf_append(&c->out, "\n", 1) == 0 ? 0 : -1;
    free(text);
    c->last_sent = now_ms();
    return rc;
}

/* Suspends the connection and parks until the hub wakes it. False when
 * the api is stopping (then nothing was suspended). */
static bool stream_park(wctx *c, uint64_t at)
{
    api *a = c->a;
    pthread_mutex_lock(&a->mu);
    bool ok = !a->stopping;
    if (ok) {
        pthread_mutex_lock(&c->mu);
        c->suspended = true;
        MHD_suspend_connection(c->conn);
        pthread_mutex_unlock(&c->mu);
        watch_park(c->hub, c->w, c->cursor, at);
    }
    pthread_mutex_unlock(&a->mu);
    return ok;
}

enum fill { FILL_DATA, FILL_PARKED, FILL_END, FILL_ERROR };

/* The tag under which render_events' text is shared by the watchers
 * that fetched the same batch (its lines depend on the batch alone). */
static const char events_tag;

/* Appends the renderer's lines for b. A renderer that fails leaves the
 * cursor at from: the batch is fetched (or found compacted) again. */
static enum fill render_batch(wctx *c, const watch_batch *b, int64_t from)
{
    bool shared = c->render == render_events;
    if (shared && watch_batch_text(b, &events_tag, &c->out)) {
        c->last_sent = now_ms();
        return FILL_DATA;
    }
    size_t start = c->out.len;
    json_t *lines = json_array();
    int rc = lines ? c->render(c->a, c->ud, b, lines) : KV_ERR_INTERNAL;
    size_t i;
    json_t *line;
    json_array_foreach(lines, i, line) {
        if (rc == KV_OK && put_line(c, json_incref(line)) < 0)
            rc = KV_ERR_INTERNAL;
    }
    json_decref(lines);
    if (rc == KV_OK) {
        if (shared)
            watch_batch_keep_text(b, &events_tag, c->out.data + start, c->out.len - start);
        return FILL_DATA;
    }
    buf_reset(&c->out);
    c->cursor = from;
    return stream_park(c, now_ms() + MIN_PROGRESS_MS) ? FILL_PARKED : FILL_END;
}

/* Nothing to read: a progress line when due, else park until then. */
static enum fill stream_idle(wctx *c)
{
    uint64_t due = c->last_sent + c->progress_ms;
    if (now_ms() < due)
        return stream_park(c, due) ? FILL_PARKED : FILL_END;
    /* everything up to cursor - 1 is delivered: a resume point */
    return put_line(c, json_pack("{s:o,s:[],s:b}", "header", api_json_header(c->a, c->cursor - 1),
                                 "events", "progress", 1)) < 0 ? FILL_ERROR : FILL_DATA;
}

/* Reads the next events into c->out: an events line, a canceled line, a
 * progress line when due, or nothing (parked). */
static enum fill stream_fill(wctx *c)
{
    if (c->caught_up) {
        /* The last read reached the store's revision: park without reading
         * again. The hub wakes at once if it has matched past the cursor. */
        c->caught_up = false;
        return stream_idle(c);
    }
    for (int i = 0; i < YIELD_CHUNKS; i++) {
        watch_batch b;
        int rc = watch_fetch(c->hub, c->w, c->cursor, STREAM_MAX_EVENTS, &b);
        if (rc == KV_ERR_COMPACTED) {
            c->ended = true;
            return put_line(c, json_pack("{s:b,s:s,s:I,s:o}", "canceled", 1, "reason", "compacted",
                                         "compact_revision", (json_int_t)b.compact_rev,
                                         "header", api_json_header(c->a, -1))) < 0
                       ? FILL_ERROR : FILL_DATA;
        }
        if (rc != KV_OK) /* no reader free: try again shortly */
            return stream_park(c, now_ms() + MIN_PROGRESS_MS) ? FILL_PARKED : FILL_END;
        int64_t from = c->cursor;
        c->cursor = b.next_rev;
        bool more = b.more;
        enum fill f = b.events.n ? render_batch(c, &b, from) : FILL_DATA;
        watch_batch_free(&b);
        if (f != FILL_DATA || c->out.len) { /* a renderer may have nothing to say */
            c->caught_up = f == FILL_DATA && !more;
            return f;
        }
        if (!more)
            return stream_idle(c);
    }
    return stream_park(c, now_ms()) ? FILL_PARKED : FILL_END; /* all filtered: yield */
}

static bool stopping(api *a)
{
    pthread_mutex_lock(&a->mu);
    bool s = a->stopping;
    pthread_mutex_unlock(&a->mu);
    return s;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    wctx *c = cls;
    for (;;) {
        if (c->off < c->out.len) {
            size_t n = c->out.len - c->off < max ? c->out.len - c->off : max;
            memcpy(out, c->out.data + c->off, n);
            c->off += n;
            return (ssize_t)n;
        }
        if (c->ended || stopping(c->a))
            return MHD_CONTENT_READER_END_OF_STREAM;
        buf_reset(&c->out);
        c->off = 0;
        switch (stream_fill(c)) {
        case FILL_DATA: break;
        case FILL_PARKED: return 0; /* suspended: MHD asks again once resumed */
        case FILL_END: return MHD_CONTENT_READER_END_OF_STREAM;
        default: return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* Queues the stream response, first line first (taken); it owns c from
 * here on. */
static void stream_start(api_req *r, wctx *c, json_t *first)
{
    c->conn = r->conn;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        c->conn = NULL;
        json_decref(first);
        wctx_free(c);
        api_reply_error(r, 500, "internal", NULL, "out of resources");
        return;
    }
    if (put_line(c, first) < 0) {
        wctx_free(c);
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                                                  stream_read, c, stream_free);
    if (!resp) {
        wctx_free(c);
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    r->replied = true;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson") ==
            MHD_YES &&
        MHD_queue_response(r->conn, 200, resp) == MHD_YES)
        api_count_answer(r->a, 200);
    else
        r->queue_failed = true;
    MHD_destroy_response(resp); /* frees c through stream_free if it was not queued */
}

/* ---- the route ---- */

/* A watcher on span for a stream or (r) a long-poll; NULL after a 500. */
static wctx *wctx_new(api_req *r, watch_hub *hub, const kv_span *span, unsigned filters,
                      bool prev_kv, bool stream)
{
    wctx *c = calloc(1, sizeof *c);
    if (c) {
        c->a = r->a;
        c->hub = hub;
        buf_init(&c->out);
        c->w = watch_add(hub, span, filters, prev_kv, stream ? stream_wake : poll_wake,
                         stream ? (void *)c : (void *)r);
    }
    if (!c || !c->w) {
        free(c);
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    return c;
}

void api_watch_stream(api_req *r, const api_stream_spec *sp)
{
    watch_hub *hub = node_watch_hub(r->a->node);
    wctx *c = hub ? wctx_new(r, hub, sp->span, 0, false, true) : NULL;
    if (!c) {
        if (!hub)
            api_reply_error(r, 503, "unavailable", NULL, "watch: not available now");
        json_decref(sp->first);
        if (sp->ud_free)
            sp->ud_free(sp->ud);
        return;
    }
    c->cursor = sp->start;
    c->progress_ms = sp->progress_ms;
    c->render = sp->render;
    c->ud = sp->ud;
    c->ud_free = sp->ud_free;
    stream_start(r, c, sp->first);
}

void api_h_watch(api_req *r)
{
    wparams p;
    if (parse_params(r, &p) < 0)
        return;
    watch_hub *hub = node_watch_hub(r->a->node);
    kv_conn *kc = kv_reader_acquire(r->a->kv);
    int64_t rev = 0, compact = 0;
    int rc = kc ? kv_read_revisions(kc, &rev, &compact) : KV_ERR_INTERNAL;
    kv_reader_release(r->a->kv, kc);
    if (!hub || rc != KV_OK) {
        api_reply_error(r, 503, "unavailable", NULL, "watch: not available now");
        return;
    }
    wctx *c = wctx_new(r, hub, &r->op.span, p.filters, p.prev_kv, p.stream);
    if (!c)
        return;
    c->cursor = p.start ? p.start : rev + 1;
    c->progress_ms = (uint64_t)p.progress_ms;
    c->deadline = now_ms() + (uint64_t)p.timeout_s * 1000;
    if (p.stream) {
        c->render = render_events;
        stream_start(r, c, json_pack("{s:b,s:o}", "created", 1, "header",
                                     api_json_header(r->a, rev)));
        return;
    }
    r->ext = c;
    r->ext_free = poll_free;
    poll_step(r);
}
