/* gw_lock: the gateway's lock/lock and lock/unlock — etcd's v3lock service
 * on the same ordered line of keys as POST /lock/{name}
 * (recipes/waitline.h): the caller waits, its connection suspended, until
 * its key {name}/{lease hex} is first in line, and gets that key; unlock
 * deletes it. Must never answer "held" before the key is first in line. */
#include "api/v3/gw.h"
#include "api/recipes/waitline.h"

#include <stdlib.h>
#include <string.h>

static void lock_done(api_req *r, int outcome)
{
    wl *s = r->ext;
    if (outcome != WL_FIRST) { /* its key went (lease expired or revoked) */
        gw_reply_error(r, GW_NOT_FOUND, "etcdserver: requested lease not found");
        return;
    }
    json_t *body = json_pack("{s:o}", "header", gw_header(r, s->view_rev));
    if (body && gw_set_bytes(body, "key", s->key, s->key_len) < 0) {
        json_decref(body);
        body = NULL;
    }
    gw_reply(r, body);
}

void gw_lock(api_req *r)
{
    json_t *o = gw_body(r);
    const uint8_t *name;
    uint32_t name_len;
    int64_t lease = 0;
    if (!o || gw_bytes(r, o, "name", &name, &name_len) < 0 || gw_i64(r, o, "lease", &lease) < 0)
        return;
    if (lease <= 0 || lease > KV_LEASE_MAX_ID) {
        gw_reply_error(r, GW_NOT_FOUND, "etcdserver: requested lease not found");
        return;
    }
    if (name_len == 0) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: key is not provided");
        return;
    }
    /* the line's name is the route's key, as for POST /lock/{name} */
    if (!(r->route.key = malloc(name_len))) {
        gw_reply_error(r, GW_INTERNAL, "etcdserver: out of memory");
        return;
    }
    memcpy(r->route.key, name, name_len);
    r->route.key_len = name_len;
    wl *s = api_wl_new(r, lease, -1);
    if (!s)
        return;
    s->done = lock_done;
    api_wl_join(r, NULL, 0);
}

static void finish_unlock(api_req *r)
{
    if (!gw_write_failed(r))
        gw_reply(r, json_pack("{s:o}", "header", gw_header(r, r->res->revision)));
}

void gw_unlock(api_req *r)
{
    json_t *o = gw_body(r);
    if (!o || gw_bytes(r, o, "key", &r->op.span.key, &r->op.span.key_len) < 0)
        return;
    if (r->op.span.key_len == 0) { /* etcd 3.4 answers this one as Unknown */
        gw_reply_error(r, GW_UNKNOWN, "etcdserver: key is not provided");
        return;
    }
    r->op.type = KV_OP_DELETE;
    kv_txn t = {.n_success = 1, .success = &r->op};
    buf cmd;
    buf_init(&cmd);
    api_propose_encoded(r, kv_encode_txn(&t, &cmd), &cmd, finish_unlock);
    buf_free(&cmd);
}
