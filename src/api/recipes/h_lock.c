/* h_lock: the server-side distributed lock, shaped like etcd's v3lock.
 *   POST /lock/{name} {"lease": ID} [?timeout=S]
 *     waits (suspended) until the caller holds the lock, then answers
 *     {header, key, revision}: key is the owner key {name}/{lease hex},
 *     revision its create revision — the fencing token. Waiters get the
 *     lock in the order they asked (create revision order), each watching
 *     only its predecessor's key. Timeout: 408 lock_timeout, after the
 *     waiter's key is deleted (it holds no place in line).
 *   DELETE /lock/{owner key} unlocks: deletes the owner key.
 * If the holder's lease expires, its key is deleted by the revoke and the
 * next waiter proceeds.
 *
 * Must never answer "held" before the owner key is committed and first in
 * line, nor hold a thread while waiting. */
#include "api/api_int.h"
#include "api/input.h"
#include "api/recipes/waitline.h"

#include <string.h>

static json_t *key_json(const uint8_t *k, uint32_t n)
{
    json_t *o = json_object();
    if (o && api_json_set_bytes(o, "key", k, n) < 0) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static void lock_done(api_req *r, int outcome)
{
    wl *s = r->ext;
    if (outcome == WL_TIMEOUT) {
        api_reply_error(r, 408, "lock_timeout", NULL,
                        "timeout: the lock was not free in time; left the line");
    } else if (outcome == WL_LOST) {
        api_reply_error(r, 409, "lock_lost", NULL,
                        "the waiter's key was deleted (lease expired or revoked?)");
    } else {
        json_t *body = api_json_with_header(r->a, key_json(s->key, s->key_len), s->view_rev);
        if (body && json_object_set_new(body, "revision", json_integer(s->rev)) < 0) {
            json_decref(body);
            body = NULL;
        }
        api_reply_json(r, 200, body);
    }
}

static void lock(api_req *r)
{
    static const char *const allowed[] = {"timeout", NULL};
    int64_t timeout = -1, lease = 0;
    if (api_query_only(r, allowed) < 0 || api_wl_query_timeout(r, -1, &timeout) < 0 ||
        !(r->doc = api_body_json(r)))
        return;
    if (json_object_size(r->doc) != 1 ||
        api_body_int(r, "lease", 1, KV_LEASE_MAX_ID, true, &lease) < 0) {
        if (!r->replied)
            api_reply_error(r, 400, "invalid_argument", NULL, "body: expected {\"lease\": ID}");
        return;
    }
    wl *s = api_wl_new(r, lease, timeout);
    if (!s)
        return;
    s->done = lock_done;
    api_wl_join(r, NULL, 0);
}

static void finish_unlock(api_req *r)
{
    if (api_write_failed(r))
        return;
    api_reply_json(r, 200, api_json_with_header(r->a, api_json_op_result(&r->res->ops[0], NULL),
                                                r->res->revision));
}

static void unlock(api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) < 0)
        return;
    if (r->route.key_len == 0) {
        api_reply_error(r, 400, "invalid_argument", NULL, "key: the owner key is missing");
        return;
    }
    kv_op del = {.type = KV_OP_DELETE,
                 .span = {r->route.key, (uint32_t)r->route.key_len, false, NULL, 0}};
    kv_txn t = {.n_success = 1, .success = &del};
    buf cmd;
    buf_init(&cmd);
    api_propose_encoded(r, kv_encode_txn(&t, &cmd), &cmd, finish_unlock);
    buf_free(&cmd);
}

void api_h_lock(api_req *r)
{
    if (strcmp(r->method, "POST") == 0)
        lock(r);
    else
        unlock(r);
}
