/* h_observe: GET /election/{name}/observe — who leads the election, as it
 * changes (see h_election.c for the rest of the election):
 *   long-poll (default) [?start_revision=N][&timeout=S]: answers
 *     {header, kv?, next_revision} as soon as the leader (its key or value)
 *     differs from the leader as of revision N-1, else at the timeout;
 *   ?stream=true [&start_revision=N][&progress_ms=P]: a chunked NDJSON
 *     stream on the stream machinery (stream.c): first
 *     {"created":true, header, kv?, next_revision} — the leader as of N-1
 *     (default: now) — then one {header, kv?, next_revision} line per
 *     revision at which the leader changed, in order, none skipped;
 *     header.revision is that revision, kv absent while nobody leads.
 * The leader is the key directly under {name}/ with the smallest create
 * revision.
 *
 * Must never report a leader that is not committed, answer from a store
 * older than the client's cursor, or skip a change in a stream. */
#include "api/api_int.h"
#include "api/input.h"
#include "api/stream.h"
#include "api/recipes/waitline.h"

#include <stdlib.h>
#include <string.h>

#define OBSERVE_DEFAULT_TIMEOUT_S 30

static bool same_leader(const kv_kv *a, const kv_kv *b)
{
    if (!a || !b)
        return a == b;
    return a->mod_revision == b->mod_revision && a->key_len == b->key_len &&
           memcmp(a->key, b->key, a->key_len) == 0;
}

/* ---- long-poll ---- */

/* The leader as of the cursor's revision - 1: changed is true when it
 * differs from now's; false (wait) when this store has not reached it. */
static int leader_changed(api_req *r, wl *s, const wl_view *now, bool *changed)
{
    *changed = false;
    if (s->cursor == 0) { /* no cursor: the current leader, once there is one */
        *changed = now->lowest != NULL;
        return KV_OK;
    }
    if (s->cursor - 1 > now->header_rev)
        return KV_OK;
    if (s->cursor - 1 < 1) { /* before the first revision: nobody led */
        *changed = now->lowest != NULL;
        return KV_OK;
    }
    wl_view then;
    int rc = api_wl_read(r->a, s, s->cursor - 1, &then);
    if (rc == KV_ERR_COMPACTED) { /* cannot tell: show the current leader */
        *changed = true;
        return KV_OK;
    }
    if (rc == KV_OK) {
        *changed = !same_leader(then.lowest, now->lowest);
        api_wl_view_free(&then);
    }
    return rc;
}

static void observe_check(api_req *r)
{
    wl *s = r->ext;
    wl_view v;
    bool changed = false;
    if (api_client_gone(r)) {
        api_reply_gone(r);
        return;
    }
    int rc = api_wl_read(r->a, s, 0, &v);
    if (rc == KV_OK && (rc = leader_changed(r, s, &v, &changed)) != KV_OK)
        api_wl_view_free(&v);
    if (rc != KV_OK) {
        api_reply_kv_error(r, rc, 0);
        return;
    }
    s->view_rev = v.header_rev;
    if (changed || (s->deadline && now_ms() >= s->deadline))
        api_reply_json(r, 200, api_wl_leader_json(r->a, v.lowest, v.header_rev, true));
    else if (v.lowest) /* only its deletion or a new value changes the leader */
        api_wl_wait(r, v.lowest->key, v.lowest->key_len, false, 0, observe_check);
    else
        api_wl_wait(r, s->prefix, s->prefix_len, true, WATCH_NODELETE, observe_check);
    api_wl_view_free(&v);
}

/* ---- stream ---- */

/* The leader last reported: its key and mod revision (a proclaim changes
 * only the latter). key NULL: nobody. */
typedef struct {
    uint8_t *key;
    uint32_t key_len;
    int64_t mod;
} seen_leader;

typedef struct {
    wl line;          /* only prefix and prefix_len are used */
    seen_leader last;
    api_observe_line_fn shape; /* NULL: the native lines */
} obs_stream;

/* One line for the leader as of rev (NULL leader: nobody); NULL and
 * *skip for a shape that has no line for it (etcd's: nobody leading). */
static json_t *line_for(api *a, const obs_stream *o, const kv_kv *leader, int64_t rev, bool *skip)
{
    *skip = false;
    if (!o->shape)
        return api_wl_leader_json(a, leader, rev, true);
    json_t *j = o->shape(a, leader, rev);
    *skip = !j && !leader;
    return j;
}

static int seen_set(seen_leader *l, const kv_kv *k)
{
    free(l->key);
    *l = (seen_leader){0};
    if (!k)
        return KV_OK;
    if (!(l->key = xmemdup(k->key, k->key_len)))
        return KV_ERR_INTERNAL;
    l->key_len = k->key_len;
    l->mod = k->mod_revision;
    return KV_OK;
}

static int seen_copy(seen_leader *to, const seen_leader *from)
{
    *to = *from;
    if (from->key && !(to->key = xmemdup(from->key, from->key_len))) {
        *to = (seen_leader){0};
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

static bool seen_is(const seen_leader *l, const kv_kv *k)
{
    if (!k || !l->key)
        return !k && !l->key;
    return k->mod_revision == l->mod && k->key_len == l->key_len &&
           memcmp(k->key, l->key, k->key_len) == 0;
}

static void obs_free(void *ud)
{
    obs_stream *o = ud;
    free(o->line.prefix);
    free(o->last.key);
    free(o);
}

/* The line as of rev: appends a line to lines if its leader is not cur's
 * (and makes it cur). */
static int obs_at(api *a, const obs_stream *o, seen_leader *cur, int64_t rev, json_t *lines)
{
    wl_view v;
    int rc = api_wl_read(a, &o->line, rev, &v);
    if (rc != KV_OK)
        return rc;
    if (!seen_is(cur, v.lowest)) {
        bool skip;
        json_t *line = line_for(a, o, v.lowest, rev, &skip);
        if (!skip && json_array_append_new(lines, line) < 0)
            rc = KV_ERR_INTERNAL;
        else
            rc = seen_set(cur, v.lowest);
    }
    api_wl_view_free(&v);
    return rc;
}

/* Every revision of the batch that touched the line is looked at on its
 * own, so no change is lost between two wakes. The state moves only when
 * the whole batch is rendered: a failed batch is fetched again. */
static int obs_render(api *a, void *ud, const watch_batch *b, json_t *lines)
{
    obs_stream *o = ud;
    seen_leader cur;
    int rc = seen_copy(&cur, &o->last);
    int64_t done = 0;
    for (size_t i = 0; rc == KV_OK && i < b->events.n; i++) {
        int64_t rev = b->events.items[i].kv.mod_revision; /* a DELETE's too */
        if (rev != done)
            rc = obs_at(a, o, &cur, rev, lines);
        done = rev;
    }
    if (rc == KV_OK) {
        free(o->last.key);
        o->last = cur;
    } else {
        free(cur.key);
    }
    return rc;
}

static int compact_revision(api *a, int64_t *compact)
{
    int64_t rev;
    kv_conn *c = kv_reader_acquire(a->kv);
    int rc = c ? kv_read_revisions(c, &rev, compact) : KV_ERR_INTERNAL;
    kv_reader_release(a->kv, c);
    return rc;
}

/* The first line: the leader as of the cursor - 1 (now, without one, or
 * when the cursor is ahead of this store). */
static json_t *obs_first(api_req *r, obs_stream *o, int64_t cursor, int64_t *start)
{
    wl_view v;
    int rc = api_wl_read(r->a, &o->line, 0, &v);
    int64_t base = v.header_rev;
    if (rc == KV_OK && cursor && cursor - 1 < base) {
        api_wl_view_free(&v);
        base = cursor - 1;
        if (base) /* (revision 0 would read the current state) */
            rc = api_wl_read(r->a, &o->line, base, &v);
        else
            memset(&v, 0, sizeof v); /* before the first revision: nobody led */
    }
    json_t *first = NULL;
    bool skip = false;
    if (rc == KV_OK) {
        first = line_for(r->a, o, v.lowest, base, &skip);
        if (!o->shape)
            rc = first && json_object_set_new(first, "created", json_true()) == 0
                     ? seen_set(&o->last, v.lowest) : KV_ERR_INTERNAL;
        else
            rc = first || skip ? seen_set(&o->last, v.lowest) : KV_ERR_INTERNAL;
        api_wl_view_free(&v);
    }
    int64_t compact = 0;
    if (rc == KV_ERR_COMPACTED && compact_revision(r->a, &compact) != KV_OK)
        rc = KV_ERR_INTERNAL;
    if (rc != KV_OK) {
        json_decref(first);
        api_reply_kv_error(r, rc, compact);
        *start = -1;
        return NULL;
    }
    *start = base + 1;
    return first;
}

static void observe_stream(api_req *r, const wl *s, int64_t progress_ms,
                           api_observe_line_fn shape, const char *ctype)
{
    obs_stream *o = calloc(1, sizeof *o);
    uint8_t *end = malloc(s->prefix_len + 1);
    if (!o || !end || !(o->line.prefix = xmemdup(s->prefix, s->prefix_len))) {
        free(o);
        free(end);
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    o->line.prefix_len = s->prefix_len;
    o->shape = shape;
    kv_span line = {o->line.prefix, o->line.prefix_len, true, end,
                    kv_prefix_end(o->line.prefix, o->line.prefix_len, end)};
    api_stream_spec spec = {.span = &line, .progress_ms = (uint64_t)progress_ms,
                            .render = obs_render, .ud = o, .ud_free = obs_free,
                            .content_type = ctype};
    spec.first = obs_first(r, o, s->cursor, &spec.start);
    if (spec.start < 0)
        obs_free(o);
    else
        api_stream_start(r, &spec); /* the watcher keeps its own copy of the span */
    free(end);
}

void api_observe_stream(api_req *r, api_observe_line_fn shape, const char *ctype)
{
    wl *s = api_wl_new(r, 0, -1);
    if (s) /* etcd's observe sends leaders only: no progress lines */
        observe_stream(r, s, 0, shape, ctype);
}

/* ---- the route ---- */

void api_h_observe(api_req *r)
{
    static const char *const allowed[] = {"start_revision", "timeout", "stream", "progress_ms",
                                          NULL};
    int64_t timeout, cursor = 0, progress_ms = API_PROGRESS_MS_DEFAULT;
    bool stream = false;
    if (api_query_only(r, allowed) < 0 || api_query_i64(r, "start_revision", 1, &cursor, NULL) < 0 ||
        api_wl_query_timeout(r, OBSERVE_DEFAULT_TIMEOUT_S, &timeout) < 0 ||
        api_query_bool(r, "stream", &stream) < 0 ||
        api_query_i64(r, "progress_ms", API_PROGRESS_MS_MIN, &progress_ms, NULL) < 0)
        return;
    if (progress_ms > API_PROGRESS_MS_MAX) {
        api_reply_error(r, 400, "invalid_argument", NULL, "progress_ms: expected %d to %d",
                        API_PROGRESS_MS_MIN, API_PROGRESS_MS_MAX);
        return;
    }
    wl *s = api_wl_new(r, 0, timeout);
    if (!s)
        return;
    s->cursor = cursor;
    if (stream)
        observe_stream(r, s, progress_ms, NULL, NULL);
    else
        observe_check(r);
}
