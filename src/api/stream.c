/* stream: the chunked NDJSON response behind /watch?stream=true and
 * /election/{name}/observe?stream=true (see stream.h). A stream reads its
 * events from kv history from its cursor on, in bounded chunks, on the
 * MHD thread that serves it; when it has read everything it suspends its
 * connection and parks in the hub, which resumes it on a matching event,
 * at its next progress tick or at its next probe of the client's socket.
 *
 * Must never: block an MHD thread, move a cursor past an event it did not
 * deliver, or hold more than one chunk of events (a client that stops
 * reading stops being asked for more: its cursor lags and it catches up
 * from history later, or is canceled as compacted). A stream is
 * suspended only while parked in the hub, after checking a->stopping
 * under a->mu, so api_stop can wake it.
 */
#include "api/api_int.h"
#include "api/stream.h"

#include <stdlib.h>
#include <string.h>

#define STREAM_MAX_EVENTS 128
#define STREAM_BLOCK (16 * 1024)
/* History chunks read in one turn when filters hide everything, before
 * the thread is handed back to other connections. */
#define YIELD_CHUNKS 16

/* One stream; the MHD response owns it (freed by stream_free). */
typedef struct {
    api *a;
    watch_hub *hub;
    watch_watcher *w;
    int64_t cursor;       /* the next revision to deliver */
    struct MHD_Connection *conn;
    pthread_mutex_t mu;   /* guards suspended (MHD thread vs hub callback) */
    bool mu_ok;
    bool suspended;
    bool ended;           /* nothing more after what is in out */
    bool caught_up;       /* out reached the store's revision when it was read */
    uint64_t progress_ms, last_sent;
    uint64_t probe_at;    /* when to ask next whether the client hung up */
    buf out;              /* the line(s) being sent */
    size_t off;
    api_stream_render_fn render; /* a batch of events -> lines */
    const void *share_tag;
    void *ud;             /* render's, freed with ud_free */
    void (*ud_free)(void *ud);
    json_t *(*progress)(api *a, void *ud, int64_t rev);       /* NULL: native */
    json_t *(*canceled)(api *a, void *ud, int rc, int64_t compact_rev); /* NULL: native */
    const char *content_type;
} stream;

static void stream_destroy(stream *c)
{
    watch_remove(c->hub, c->w); /* its callback never runs after this */
    if (c->ud_free)
        c->ud_free(c->ud);
    if (c->mu_ok)
        pthread_mutex_destroy(&c->mu);
    buf_free(&c->out);
    free(c);
}

static void stream_free(void *cls) { stream_destroy(cls); }

static void stream_wake(void *ud)
{
    stream *c = ud;
    pthread_mutex_lock(&c->mu);
    if (c->suspended) {
        c->suspended = false;
        MHD_resume_connection(c->conn);
    }
    pthread_mutex_unlock(&c->mu);
}

/* Appends one NDJSON line (takes o). */
static int put_line(stream *c, json_t *o)
{
    char *text = json_safe_dump(o);
    json_decref(o);
    int rc = text && buf_append(&c->out, text, strlen(text)) == 0 &&
                     buf_append(&c->out, "\n", 1) == 0 ? 0 : -1;
    free(text);
    c->last_sent = now_ms();
    return rc;
}

/* Suspends the connection and parks until the hub wakes it. False when
 * the api is stopping (then nothing was suspended). */
static bool stream_park(stream *c, uint64_t at)
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

/* Appends the renderer's lines for b. A renderer that fails leaves the
 * cursor at from: the batch is fetched (or found compacted) again. */
static enum fill render_batch(stream *c, const watch_batch *b, int64_t from)
{
    if (c->share_tag && watch_batch_text(b, c->share_tag, &c->out)) {
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
        if (c->share_tag)
            watch_batch_keep_text(b, c->share_tag, c->out.data + start, c->out.len - start);
        return FILL_DATA;
    }
    buf_reset(&c->out);
    c->cursor = from;
    return stream_park(c, now_ms() + API_PROGRESS_MS_MIN) ? FILL_PARKED : FILL_END;
}

/* Nothing to read: a progress line when due, else park until then, or
 * until the next probe of the socket if that comes first. A parked
 * stream writes nothing that would find a client that hung up (for an
 * hour with progress_ms at its maximum, never in etcd's observe, which
 * has no progress lines), so every API_PROBE_MS it asks (api_conn_gone)
 * and ends when the client is gone. */
static enum fill stream_idle(stream *c)
{
    uint64_t now = now_ms();
    if (now >= c->probe_at) {
        if (api_conn_gone(c->conn))
            return FILL_END;
        c->probe_at = now + API_PROBE_MS;
    }
    uint64_t due = c->progress_ms ? c->last_sent + c->progress_ms : UINT64_MAX;
    if (now < due)
        return stream_park(c, due < c->probe_at ? due : c->probe_at) ? FILL_PARKED : FILL_END;
    /* everything up to cursor - 1 is delivered: a resume point */
    json_t *line = c->progress ? c->progress(c->a, c->ud, c->cursor - 1)
                               : json_pack("{s:o,s:[],s:b}", "header",
                                           api_json_header(c->a, c->cursor - 1), "events",
                                           "progress", 1);
    return put_line(c, line) < 0 ? FILL_ERROR : FILL_DATA;
}

/* The last line: history from the cursor is compacted, or a stored record
 * of it failed its checksum (it is never sent; waiting would not heal it,
 * and the client may read from another member). */
static enum fill stream_canceled(stream *c, int rc, int64_t compact_rev)
{
    c->ended = true;
    json_t *line;
    if (c->canceled)
        line = c->canceled(c->a, c->ud, rc, compact_rev);
    else if (rc == KV_ERR_CORRUPT)
        line = json_pack("{s:b,s:s,s:s,s:o}", "canceled", 1, "reason", "corrupt", "error",
                         API_CORRUPT_MSG, "header", api_json_header(c->a, -1));
    else
        line = json_pack("{s:b,s:s,s:I,s:o}", "canceled", 1, "reason", "compacted",
                         "compact_revision", (json_int_t)compact_rev, "header",
                         api_json_header(c->a, -1));
    return put_line(c, line) < 0 ? FILL_ERROR : FILL_DATA;
}

/* Reads the next events into c->out: an events line, a canceled line, a
 * progress line when due, or nothing (parked). */
static enum fill stream_fill(stream *c)
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
        if (rc == KV_ERR_COMPACTED || rc == KV_ERR_CORRUPT)
            return stream_canceled(c, rc, b.compact_rev);
        if (rc != KV_OK) /* no reader free: try again shortly */
            return stream_park(c, now_ms() + API_PROGRESS_MS_MIN) ? FILL_PARKED : FILL_END;
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
    stream *c = cls;
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
static void stream_queue(api_req *r, stream *c, json_t *first)
{
    c->conn = r->conn;
    c->mu_ok = pthread_mutex_init(&c->mu, NULL) == 0;
    if (!c->mu_ok) {
        json_decref(first);
        stream_destroy(c);
        api_reply_error(r, 500, "internal", NULL, "out of resources");
        return;
    }
    if (first && put_line(c, first) < 0) { /* no first line: nothing yet */
        stream_destroy(c);
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                                                  stream_read, c, stream_free);
    if (!resp) {
        stream_destroy(c);
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    r->replied = true;
    const char *ctype = c->content_type ? c->content_type : "application/x-ndjson";
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_YES &&
        MHD_queue_response(r->conn, 200, resp) == MHD_YES)
        api_count_answer(r->a, 200);
    else
        r->queue_failed = true;
    MHD_destroy_response(resp); /* frees c through stream_free if it was not queued */
}

/* A stream with its watcher on spec->span; NULL after a 500. */
static stream *stream_new(api_req *r, watch_hub *hub, const api_stream_spec *sp)
{
    stream *c = calloc(1, sizeof *c);
    if (c) {
        /* The progress clock starts now, first line or not (an observe in
         * etcd's shape has none while nobody leads): else the first idle
         * turn would count from the clock's zero and send one at once. */
        *c = (stream){.a = r->a, .hub = hub, .cursor = sp->start, .progress_ms = sp->progress_ms,
                      .last_sent = now_ms(), .probe_at = now_ms() + API_PROBE_MS, .render = sp->render, .share_tag = sp->share_tag,
                      .progress = sp->progress, .canceled = sp->canceled,
                      .content_type = sp->content_type};
        buf_init(&c->out);
        c->w = watch_add(hub, sp->span, sp->filters, sp->prev_kv, stream_wake, c);
    }
    if (!c || !c->w) {
        free(c);
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    c->ud = sp->ud;
    c->ud_free = sp->ud_free;
    return c;
}

void api_stream_start(api_req *r, const api_stream_spec *sp)
{
    watch_hub *hub = r->a->hub;
    stream *c = hub ? stream_new(r, hub, sp) : NULL;
    if (!c) {
        if (!hub)
            api_reply_error(r, 503, "unavailable", NULL, "watch: not available now");
        json_decref(sp->first);
        if (sp->ud_free)
            sp->ud_free(sp->ud);
        return;
    }
    stream_queue(r, c, sp->first);
}
