/* gw_watch: the gateway's POST /v3/watch — one {"create_request": ...} in
 * the body, answered as a chunked stream of {"result": WatchResponse}
 * lines (created first, then events, progress and, from a compacted
 * revision, canceled), on the same watch hub and stream machinery as
 * GET /watch?stream=true, so it resumes and never skips or repeats alike.
 * Must never render a line in the native shapes, or start a stream for a
 * request it refused. */
#include "api/v3/gw.h"
#include "api/stream.h"

#include <stdlib.h>
#include <string.h>

/* etcd's watch progress goes out every 10 minutes unless asked for; asked
 * for, raftkv sends it after 5 s without events. */
#define GW_PROGRESS_MS_QUIET (600 * 1000)
#define GW_PROGRESS_MS_ASKED 5000

static const char *const filter_names[] = {"NOPUT", "NODELETE", NULL};

typedef struct {
    int64_t watch_id;
} gw_watcher;

/* {"result": {"header": ..., "watch_id": id (left out when 0), <rest>}} */
static json_t *result_line(const gw_watcher *w, json_t *header, json_t *rest)
{
    json_t *res = json_object();
    /* json_object_set_new takes header, even when it fails */
    if (!res || !header || json_object_set_new(res, "header", header) < 0 ||
        gw_set_int(res, "watch_id", w->watch_id) < 0 || (rest && json_object_update(res, rest) < 0)) {
        if (!res)
            json_decref(header);
        json_decref(res);
        json_decref(rest);
        return NULL;
    }
    json_decref(rest);
    return json_pack("{s:o}", "result", res);
}

/* The header from the api alone (stream callbacks have no request). */
static json_t *header_of(api *a, int64_t rev)
{
    node_info info;
    node_get_info(a->node, &info);
    json_t *h = json_object();
    if (h && (gw_set_int(h, "cluster_id", (int64_t)info.cluster_id) < 0 ||
              gw_set_int(h, "member_id", (int64_t)info.member_id) < 0 ||
              gw_set_int(h, "revision", rev) < 0 ||
              gw_set_int(h, "raft_term", (int64_t)info.raft_term) < 0)) {
        json_decref(h);
        h = NULL;
    }
    return h;
}

static json_t *event_json(const kv_event *e)
{
    json_t *o = e->type == KV_EVENT_DELETE ? json_pack("{s:s}", "type", "DELETE") : json_object();
    if (o && json_object_set_new(o, "kv", gw_kv(&e->kv, false)) < 0)
        goto fail;
    if (o && e->has_prev && json_object_set_new(o, "prev_kv", gw_kv(&e->prev_kv, false)) < 0)
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

static int render(api *a, void *ud, const watch_batch *b, json_t *lines)
{
    if (b->events.n == 0)
        return KV_OK;
    json_t *events = json_array();
    for (size_t i = 0; events && i < b->events.n; i++) {
        if (json_array_append_new(events, event_json(&b->events.items[i])) < 0) {
            json_decref(events);
            events = NULL;
        }
    }
    json_t *rest = events ? json_pack("{s:o}", "events", events) : NULL;
    json_t *line = result_line(ud, header_of(a, b->header_rev), rest);
    return json_array_append_new(lines, line) < 0 ? KV_ERR_INTERNAL : KV_OK;
}

static json_t *progress(api *a, void *ud, int64_t rev)
{
    return result_line(ud, header_of(a, rev), NULL);
}

/* etcd's words: a compacted start names the compact revision; a record
 * that fails its checksum is its ErrCorrupt, as cancel_reason. */
static json_t *canceled(api *a, void *ud, int rc, int64_t compact_rev)
{
    json_t *rest = rc == KV_ERR_CORRUPT
                       ? json_pack("{s:b,s:s}", "canceled", 1, "cancel_reason",
                                   API_ETCD_CORRUPT_MSG)
                       : json_pack("{s:b,s:o}", "canceled", 1, "compact_revision",
                                   gw_int(compact_rev));
    return result_line(ud, header_of(a, 0), rest);
}

static unsigned parse_filters(api_req *r, json_t *o, bool *ok)
{
    json_t *a = json_object_get(o, "filters");
    unsigned out = 0;
    *ok = true;
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a)) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "invalid value for field filters: expected an array");
        *ok = false;
        return 0;
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *one = json_pack("{s:O}", "f", json_array_get(a, i));
        int f = 0;
        int rc = one ? gw_enum(r, one, "f", filter_names, &f) : -1;
        json_decref(one);
        if (rc < 0) {
            *ok = false;
            return 0;
        }
        out |= f == 0 ? WATCH_NOPUT : WATCH_NODELETE;
    }
    return out;
}

void gw_watch(api_req *r)
{
    json_t *o = gw_body(r), *cr = o ? json_object_get(o, "create_request") : NULL;
    if (!o)
        return;
    if (!json_is_object(cr)) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "raftkv: expected {\"create_request\": {...}}");
        return;
    }
    int64_t start = 0, watch_id = 0;
    bool prev_kv = false, progress_notify = false, ok;
    memset(&r->op, 0, sizeof r->op);
    if (gw_bytes(r, cr, "key", &r->op.span.key, &r->op.span.key_len) < 0 ||
        gw_bytes(r, cr, "range_end", &r->op.span.end, &r->op.span.end_len) < 0 ||
        gw_i64(r, cr, "start_revision", &start) < 0 || gw_i64(r, cr, "watch_id", &watch_id) < 0 ||
        gw_bool(r, cr, "prev_kv", &prev_kv) < 0 ||
        gw_bool(r, cr, "progress_notify", &progress_notify) < 0)
        return;
    unsigned filters = parse_filters(r, cr, &ok);
    if (!ok)
        return;
    r->op.span.has_end = r->op.span.end_len > 0;
    if (r->op.span.key_len == 0) { /* etcd would watch the empty key: nobody can write it */
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: key is not provided");
        return;
    }
    if (!api_auth_read(r, NULL, &r->op.span))
        return;
    gw_watcher *w = calloc(1, sizeof *w);
    kv_conn *kc = w ? kv_reader_acquire(r->a->kv) : NULL;
    int64_t rev = 0, compact = 0;
    int rc = kc ? kv_read_revisions(kc, &rev, &compact) : KV_ERR_INTERNAL;
    kv_reader_release(r->a->kv, kc);
    if (!r->a->hub || rc != KV_OK || start < 0) {
        free(w);
        gw_reply_error(r, start < 0 ? GW_INVALID_ARGUMENT : GW_UNAVAILABLE,
                       start < 0 ? "etcdserver: invalid request" : "etcdserver: watch not available");
        return;
    }
    w->watch_id = watch_id;
    api_stream_spec spec = {
        .span = &r->op.span, .filters = filters, .prev_kv = prev_kv,
        .start = start ? start : rev + 1,
        .progress_ms = progress_notify ? GW_PROGRESS_MS_ASKED : GW_PROGRESS_MS_QUIET,
        .render = render, .ud = w, .ud_free = free, .progress = progress, .canceled = canceled,
        .content_type = "application/json",
    };
    spec.first = result_line(w, header_of(r->a, rev), json_pack("{s:b}", "created", 1));
    api_stream_start(r, &spec);
}
