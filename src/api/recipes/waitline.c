/* waitline: joining, checking and waiting in the ordered line of keys
 * under {name}/ that h_lock.c, h_election.c and h_observe.c share (see
 * waitline.h), and the line's head as JSON.
 * Must never block: a wait suspends the connection, parks a watcher on
 * one key and returns; the hub's callback only resumes the connection. */
#include "api/api_int.h"
#include "api/input.h"
#include "api/recipes/waitline.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest ?timeout a waiter may ask for: a day. */
#define WL_MAX_TIMEOUT_S 86400

static watch_hub *wl_hub(api_req *r) { return r->a->hub; }

static void wl_free(api_req *r)
{
    wl *s = r->ext;
    if (s->w)
        watch_remove(wl_hub(r), s->w); /* the callback never runs after this */
    free(s->prefix);
    free(s->key);
    free(s->watched);
    free(s);
    r->ext = NULL;
}

/* Renders "{name}/{lease hex}" into a malloc'd key. */
static uint8_t *wl_key_for(const uint8_t *name, size_t name_len, int64_t lease, uint32_t *len)
{
    char hex[24];
    int n = snprintf(hex, sizeof hex, "/%" PRIx64, (uint64_t)lease);
    uint8_t *k = malloc(name_len + (size_t)n + 1);
    if (!k)
        return NULL;
    memcpy(k, name, name_len);
    memcpy(k + name_len, hex, (size_t)n);
    *len = (uint32_t)(name_len + (size_t)n);
    return k;
}

wl *api_wl_new(api_req *r, int64_t lease, int64_t timeout_s)
{
    if (r->route.key_len == 0 || r->route.key_len > KV_MAX_KEY_LEN - 32) {
        api_reply_error(r, 400, "invalid_argument", NULL, "name: must be 1 to %u bytes",
                        KV_MAX_KEY_LEN - 32);
        return NULL;
    }
    wl *s = calloc(1, sizeof *s);
    if (s) {
        s->lease = lease;
        s->deadline = timeout_s < 0 ? 0 : now_ms() + (uint64_t)timeout_s * 1000u;
        s->key = lease ? wl_key_for(r->route.key, r->route.key_len, lease, &s->key_len) : NULL;
        s->prefix = malloc(r->route.key_len + 1);
    }
    if (!s || !s->prefix || (lease && !s->key)) {
        if (s) {
            free(s->key);
            free(s->prefix);
        }
        free(s);
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    memcpy(s->prefix, r->route.key, r->route.key_len);
    s->prefix[r->route.key_len] = '/';
    s->prefix_len = (uint32_t)r->route.key_len + 1;
    r->ext = s;
    r->ext_free = wl_free;
    return s;
}

int api_wl_query_timeout(api_req *r, int64_t dflt, int64_t *timeout)
{
    *timeout = dflt;
    if (api_query_i64(r, "timeout", 0, timeout, NULL) < 0)
        return -1;
    if (*timeout > WL_MAX_TIMEOUT_S) {
        api_reply_error(r, 400, "invalid_argument", NULL, "timeout: at most %d seconds",
                        WL_MAX_TIMEOUT_S);
        return -1;
    }
    return 0;
}

/* ---- reading the line ---- */

void api_wl_view_free(wl_view *v) { kv_list_free(&v->all); }

/* Only keys directly under the prefix stand in the line: lock "a" must
 * not see the keys of lock "a/b". */
static bool direct_child(const wl *s, const kv_kv *x)
{
    return memchr(x->key + s->prefix_len, '/', x->key_len - s->prefix_len) == NULL;
}

static void classify(const wl *s, wl_view *v)
{
    for (size_t i = 0; i < v->all.n; i++) {
        const kv_kv *x = &v->all.items[i];
        if (!direct_child(s, x))
            continue;
        if (x->create_revision == s->rev)
            v->mine = x;
        if (x->create_revision < s->rev &&
            (!v->pred || x->create_revision > v->pred->create_revision))
            v->pred = x;
        if (!v->lowest || x->create_revision < v->lowest->create_revision)
            v->lowest = x;
    }
}

int api_wl_read(api *a, const wl *s, int64_t rev, wl_view *v)
{
    memset(v, 0, sizeof *v);
    uint8_t *end = malloc(s->prefix_len + 1);
    kv_conn *c = end ? kv_reader_acquire(a->kv) : NULL;
    if (!c) {
        free(end);
        return KV_ERR_INTERNAL;
    }
    kv_op q = {.type = KV_OP_RANGE, .rev = rev,
               .span = {s->prefix, s->prefix_len, true, end,
                        kv_prefix_end(s->prefix, s->prefix_len, end)}};
    kv_op_result res;
    int rc = kv_range(c, &q, &res, &v->header_rev);
    kv_reader_release(a->kv, c);
    free(end);
    if (rc != KV_OK)
        return rc;
    v->all = res.kvs;
    classify(s, v);
    return KV_OK;
}

/* The head of the line as an answer (the election's leader). */
json_t *api_wl_leader_json(api *a, const kv_kv *leader, int64_t rev, bool next)
{
    json_t *body = json_pack("{s:o}", "header", api_json_header(a, rev));
    if (body && ((leader && json_object_set_new(body, "kv", api_json_kv(leader, false)) < 0) ||
                 (next && json_object_set_new(body, "next_revision", json_integer(rev + 1)) < 0))) {
        json_decref(body);
        body = NULL;
    }
    return body;
}

/* ---- waiting ---- */

static void on_wake(void *ud) { api_wake(ud); }

/* Points the watcher at key (or prefix), reusing it if it is there. */
static int watch_on(api_req *r, wl *s, const uint8_t *key, uint32_t len, bool prefix,
                    unsigned filters)
{
    if (s->w && s->watched_prefix == prefix && s->watched_len == len &&
        memcmp(s->watched, key, len) == 0)
        return 0;
    watch_remove(wl_hub(r), s->w);
    s->w = NULL;
    free(s->watched);
    s->watched = xmemdup(key, len);
    uint8_t *end = malloc((size_t)len + 1);
    if (!s->watched || !end) {
        free(end);
        return -1;
    }
    s->watched_len = len;
    s->watched_prefix = prefix;
    kv_span sp = {s->watched, len, prefix, prefix ? end : NULL,
                  prefix ? kv_prefix_end(key, len, end) : 0};
    s->w = watch_add(wl_hub(r), &sp, filters, false, on_wake, r);
    free(end);
    return s->w ? 0 : -1;
}

void api_wl_wait(api_req *r, const uint8_t *key, uint32_t len, bool prefix, unsigned filters,
             api_handler_fn then)
{
    wl *s = r->ext;
    if (watch_on(r, s, key, len, prefix, filters) < 0) {
        api_reply_error(r, 500, "internal", NULL, "cannot watch %s", prefix ? "the line" : "a key");
        return;
    }
    uint64_t at = now_ms() + API_PROBE_MS;
    if (s->deadline && s->deadline < at)
        at = s->deadline;
    /* suspend first: the park may wake it at once, from inside the call */
    if (api_wait_external(r, then))
        watch_park(wl_hub(r), s->w, s->view_rev + 1, at);
}

/* ---- proposals ---- */

void api_wl_guarded(api_req *r, const uint8_t *key, uint32_t key_len, int64_t rev, const kv_op *ops,
                size_t n_ops, api_handler_fn then)
{
    kv_compare cmp = {key, key_len, KV_CMP_CREATE, rev ? KV_CMP_EQUAL : KV_CMP_GREATER, rev,
                      NULL, 0};
    kv_txn t = {1, &cmp, n_ops, ops, 0, NULL};
    buf cmd;
    buf_init(&cmd);
    api_propose_encoded(r, kv_encode_txn(&t, &cmd), &cmd, then);
    buf_free(&cmd);
}

static void check(api_req *r);

static void after_leave(api_req *r)
{
    wl *s = r->ext;
    if (api_write_failed(r))
        return;
    if (s->gone)
        api_reply_gone(r);
    else
        s->done(r, WL_TIMEOUT);
}

/* Gives up a place in line: deletes the key, if it is still ours. */
static void leave(api_req *r, wl *s, bool gone)
{
    kv_op del = {.type = KV_OP_DELETE, .span = {s->key, s->key_len, false, NULL, 0}};
    s->gone = gone;
    api_wl_guarded(r, s->key, s->key_len, s->rev, &del, 1, after_leave);
}

/* Runs after joining and after every wake. */
static void check(api_req *r)
{
    wl *s = r->ext;
    wl_view v;
    int rc = api_wl_read(r->a, s, 0, &v);
    if (rc != KV_OK) {
        api_reply_kv_error(r, rc, 0);
        return;
    }
    s->view_rev = v.header_rev;
    if (!v.mine)
        s->done(r, WL_LOST);
    else if (api_client_gone(r)) /* before "first": a gone client must not hold it */
        leave(r, s, true);
    else if (!v.pred)
        s->done(r, WL_FIRST);
    else if (s->deadline && now_ms() >= s->deadline)
        leave(r, s, false);
    else /* only the predecessor's deletion can make us first */
        api_wl_wait(r, v.pred->key, v.pred->key_len, false, WATCH_NOPUT, check);
    api_wl_view_free(&v);
}

static void joined(api_req *r)
{
    wl *s = r->ext;
    if (api_write_failed(r))
        return;
    const kv_result *res = r->res;
    const kv_op_result *last = res->n_ops ? &res->ops[res->n_ops - 1] : NULL;
    if (!last || last->kvs.n != 1) {
        api_reply_error(r, 500, "internal", NULL, "join without its key");
        return;
    }
    s->rev = last->kvs.items[0].create_revision;
    check(r);
}

void api_wl_join(api_req *r, const uint8_t *value, uint32_t value_len)
{
    wl *s = r->ext;
    kv_span one = {s->key, s->key_len, false, NULL, 0};
    kv_compare absent = {s->key, s->key_len, KV_CMP_CREATE, KV_CMP_EQUAL, 0, NULL, 0};
    kv_op put[2] = {{.type = KV_OP_PUT, .span = one, .value = value, .value_len = value_len,
                     .lease = s->lease},
                    {.type = KV_OP_RANGE, .span = one}};
    kv_txn t = {1, &absent, 2, put, 1, &put[1]};
    buf cmd;
    buf_init(&cmd);
    api_propose_encoded(r, kv_encode_txn(&t, &cmd), &cmd, joined);
    buf_free(&cmd);
}
