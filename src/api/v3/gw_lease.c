/* gw_lease: the gateway's lease/{grant,revoke,keepalive,timetolive,leases}
 * (and the kv/lease/ aliases) — etcd's Lease service onto the same lease
 * commands and table as /lease. Grant, revoke and keepalive are proposals;
 * timetolive and leases read after a read barrier, with the remaining TTL
 * from this member's expiry clock. Must never propose a request it
 * refused, nor grant an id of 2^53 or more (JSON clients lose precision). */
#include "api/v3/gw.h"

#include <stdlib.h>
#include <string.h>

/* Reads "ID" (required > 0 unless allow_zero) into *id; 0 or -1 answered. */
static int lease_id(api_req *r, json_t *o, bool allow_zero, int64_t *id)
{
    *id = 0;
    if (gw_i64(r, o, "ID", id) < 0)
        return -1;
    if (*id < 0 || *id > KV_LEASE_MAX_ID || (!allow_zero && *id == 0)) {
        gw_reply_error(r, *id == 0 ? GW_NOT_FOUND : GW_INVALID_ARGUMENT,
                       *id == 0 ? "etcdserver: requested lease not found"
                                : "raftkv: lease ids are below 2^53");
        return -1;
    }
    return 0;
}

static void finish_grant(api_req *r)
{
    if (gw_write_failed(r))
        return;
    json_t *body = json_pack("{s:o,s:o,s:o}", "header", gw_header(r, r->res->revision), "ID",
                             gw_int(r->res->lease_id), "TTL", gw_int(r->res->lease_ttl));
    gw_reply(r, body);
}

void gw_lease_grant(api_req *r)
{
    json_t *o = gw_body(r);
    int64_t ttl = 0, id = 0;
    if (!o || gw_i64(r, o, "TTL", &ttl) < 0 || lease_id(r, o, true, &id) < 0)
        return;
    if (ttl > KV_LEASE_MAX_TTL) {
        gw_reply_error(r, GW_OUT_OF_RANGE, "etcdserver: too large lease TTL");
        return;
    }
    int64_t min = node_lease_min_ttl(r->a->node);
    if (ttl < min)
        ttl = min; /* as etcd: a shorter lease could expire during an election */
    if (id == 0)
        id = api_new_lease_id(r->a);
    buf cmd;
    buf_init(&cmd);
    api_propose_encoded(r, kv_encode_lease_grant(id, ttl, &cmd), &cmd, finish_grant);
    buf_free(&cmd);
}

/* Revoke and keepalive: the body names one lease ("ID"), and the command
 * encode makes of it is proposed. */
static void propose_for_lease(api_req *r, int (*encode)(int64_t, buf *), api_handler_fn then)
{
    json_t *o = gw_body(r);
    int64_t id;
    if (!o || lease_id(r, o, false, &id) < 0)
        return;
    buf cmd;
    buf_init(&cmd);
    api_propose_encoded(r, encode(id, &cmd), &cmd, then);
    buf_free(&cmd);
}

static void finish_revoke(api_req *r)
{
    if (!gw_write_failed(r))
        gw_reply(r, json_pack("{s:o}", "header", gw_header(r, r->res->revision)));
}

void gw_lease_revoke(api_req *r)
{
    propose_for_lease(r, kv_encode_lease_revoke, finish_revoke);
}

/* The gateway maps the keepalive stream to one request, one
 * {"result": LeaseKeepAliveResponse}; an unknown lease is not an error
 * there: its answer just has no TTL. */
static void finish_keepalive(api_req *r)
{
    json_t *res = NULL;
    if (r->status == NODE_OK && r->res && r->res->err == KV_ERR_NOT_FOUND) {
        res = json_pack("{s:o,s:o}", "header", gw_header(r, -1), "ID", gw_int(r->res->lease_id));
    } else if (gw_write_failed(r)) {
        return;
    } else {
        res = json_pack("{s:o,s:o,s:o}", "header", gw_header(r, r->res->revision), "ID",
                        gw_int(r->res->lease_id), "TTL", gw_int(r->res->lease_ttl));
    }
    gw_reply(r, res ? json_pack("{s:o}", "result", res) : NULL);
}

void gw_lease_keepalive(api_req *r)
{
    propose_for_lease(r, kv_encode_lease_keepalive, finish_keepalive);
}

/* ---- reads ---- */

/* TimeToLive's keys: base64 strings, as bytes are in etcd's JSON. */
static json_t *key_list(const kv_list *keys)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < keys->n; i++) {
        char *k = api_b64_encode(keys->items[i].key, keys->items[i].key_len);
        if (!k || json_array_append_new(a, json_string(k)) < 0) {
            json_decref(a);
            a = NULL;
        }
        free(k);
    }
    return a;
}

static void do_timetolive(api_req *r)
{
    kv_conn *c = gw_reader(r);
    if (!c)
        return;
    int64_t id = r->op.lease, granted = 0, rev = 0;
    kv_list keys = {0};
    int rc = kv_lease_get(c, id, &granted, r->raw ? &keys : NULL, &rev);
    kv_reader_release(r->a->kv, c);
    json_t *body = NULL;
    if (rc == KV_ERR_NOT_FOUND) { /* etcd: TTL -1, nothing else */
        body = json_pack("{s:o,s:o,s:o}", "header", gw_header(r, rev ? rev : -1), "ID",
                         gw_int(id), "TTL", gw_int(-1));
    } else if (rc != KV_OK) {
        gw_reply_kv_error(r, rc);
        return;
    } else {
        /* whole seconds left, truncated as etcd's TimeToLive does */
        int64_t ms = node_lease_remaining_ms(r->a->node, id);
        body = json_pack("{s:o,s:o,s:o,s:o}", "header", gw_header(r, rev), "ID", gw_int(id),
                         "TTL", gw_int(ms < 0 ? -1 : ms / 1000), "grantedTTL",
                         gw_int(granted));
        if (body && r->raw && gw_set_nonempty(body, "keys", key_list(&keys)) < 0) {
            json_decref(body);
            body = NULL;
        }
    }
    kv_list_free(&keys);
    gw_reply(r, body);
}

void gw_lease_timetolive(api_req *r)
{
    json_t *o = gw_body(r);
    int64_t id;
    if (!o || lease_id(r, o, false, &id) < 0 || gw_bool(r, o, "keys", &r->raw) < 0)
        return;
    r->op.lease = id;
    api_wait_barrier(r, do_timetolive);
}

static void do_leases(api_req *r)
{
    kv_conn *c = gw_reader(r);
    if (!c)
        return;
    kv_lease *ls = NULL;
    size_t n = 0;
    int64_t rev = 0;
    int rc = kv_lease_list(c, &ls, &n, &rev);
    kv_reader_release(r->a->kv, c);
    if (rc != KV_OK) {
        gw_reply_kv_error(r, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, json_pack("{s:o}", "ID", gw_int(ls[i].id))) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(ls);
    gw_reply_adding(r, json_pack("{s:o}", "header", gw_header(r, rev)), "leases", arr);
}

void gw_lease_leases(api_req *r)
{
    if (gw_body(r))
        api_wait_barrier(r, do_leases);
}
