/* h_lease: the lease routes (docs/API.md section 10) — POST /lease (grant),
 * GET /lease (list), GET /lease/{id}[?keys=true], DELETE /lease/{id}
 * (revoke), POST /lease/{id}/keepalive. Grant, keepalive and revoke are
 * proposals (a follower's go to the leader through Raft); reads wait for
 * the read barrier, then read kv, and take the remaining TTL from this
 * node's expiry clock.
 *
 * Must never propose a request it refused (every field is checked before
 * encoding), nor hand out a lease id of 2^53 or more. */
#include "api/api_int.h"
#include "api/input.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- ids: (member id << 40) | a counter seeded from the wall clock in
 * ms, so ids from different nodes never collide and a restarted node does
 * not repeat its earlier ids (unless it granted more than one lease per
 * millisecond of its downtime, when the grant answers 409 and the client
 * retries). ---- */

#define ID_LOW_BITS 40
#define ID_LOW_MASK ((UINT64_C(1) << ID_LOW_BITS) - 1)

static atomic_uint_fast64_t id_counter;

int64_t api_new_lease_id(api *a)
{
    uint_fast64_t zero = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    atomic_compare_exchange_strong(&id_counter, &zero, seed | 1);
    uint64_t low = atomic_fetch_add(&id_counter, 1) & ID_LOW_MASK;
    node_info info;
    node_get_info(a->node, &info);
    uint64_t id = ((info.member_id & ((UINT64_C(1) << (53 - ID_LOW_BITS)) - 1)) << ID_LOW_BITS) | low;
    return id ? (int64_t)id : 1;
}

/* ---- answers ---- */

static json_t *id_body(api_req *r, int64_t revision, int64_t id, int64_t ttl)
{
    return json_pack("{s:o,s:I,s:I}", "header", api_json_header(r->a, revision), "id",
                     (json_int_t)id, "ttl", (json_int_t)ttl);
}

/* After a lease proposal: node errors, 404 for an unknown lease, 409 for
 * a granted id; false when r->res holds a success. */
static bool lease_failed(api_req *r)
{
    if (r->status == NODE_OK && r->res && r->res->err == KV_ERR_EXISTS) {
        api_reply_error(r, 409, "lease_exists", NULL, "id: lease %lld already exists",
                        (long long)r->res->lease_id);
        return true;
    }
    if (r->status == NODE_OK && r->res && r->res->err == KV_ERR_NOT_FOUND) {
        api_reply_error(r, 404, "lease_not_found", NULL, "lease %lld: not found",
                        (long long)r->res->lease_id);
        return true;
    }
    return api_write_failed(r);
}

static void finish_id_ttl(api_req *r)
{
    if (!lease_failed(r))
        api_reply_json(r, 200, id_body(r, r->res->revision, r->res->lease_id, r->res->lease_ttl));
}

static void finish_revoke(api_req *r)
{
    if (!lease_failed(r))
        api_reply_json(r, 200, json_pack("{s:o}", "header", api_json_header(r->a, r->res->revision)));
}

/* ---- grant ---- */

static void grant(api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) < 0 || !(r->doc = api_body_json(r)))
        return;
    int64_t ttl = 0, id = 0;
    size_t known = !!json_object_get(r->doc, "ttl") + !!json_object_get(r->doc, "id");
    if (!json_object_get(r->doc, "ttl") || json_object_size(r->doc) != known) {
        api_reply_error(r, 400, "invalid_argument", NULL,
                        "body: expected {\"ttl\": seconds} and optionally \"id\"");
        return;
    }
    if (api_body_int(r, "ttl", 1, KV_LEASE_MAX_TTL, true, &ttl) < 0 ||
        api_body_int(r, "id", 1, KV_LEASE_MAX_ID, false, &id) < 0)
        return;
    int64_t min = node_lease_min_ttl(r->a->node);
    if (ttl < min)
        ttl = min; /* as etcd: a too-short lease would expire in an election */
    if (id == 0)
        id = api_new_lease_id(r->a);
    buf cmd;
    buf_init(&cmd);
    api_propose_encoded(r, kv_encode_lease_grant(id, ttl, &cmd), &cmd, finish_id_ttl);
    buf_free(&cmd);
}

/* ---- reads ---- */

static void reply_list(api_req *r, kv_conn *c)
{
    kv_lease *ls = NULL;
    size_t n = 0;
    int64_t rev = 0;
    if (kv_lease_list(c, &ls, &n, &rev) != KV_OK) {
        api_reply_error(r, 500, "internal", NULL, "storage error");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, json_pack("{s:I}", "id", (json_int_t)ls[i].id)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(ls);
    api_reply_json(r, 200, json_pack("{s:o,s:o}", "header", api_json_header(r->a, rev),
                                     "leases", arr));
}

/* Remaining whole seconds, rounded up (a lease with 10 ms left is alive). */
static int64_t remaining_s(api_req *r, int64_t id)
{
    int64_t ms = node_lease_remaining_ms(r->a->node, id);
    return ms < 0 ? -1 : (ms + 999) / 1000;
}

static void reply_one(api_req *r, kv_conn *c)
{
    int64_t id = (int64_t)r->route.id, granted = 0, rev = 0;
    kv_list keys = {0};
    int rc = kv_lease_get(c, id, &granted, r->raw ? &keys : NULL, &rev);
    if (rc == KV_ERR_NOT_FOUND) {
        api_reply_error(r, 404, "lease_not_found", NULL, "lease %lld: not found", (long long)id);
        return;
    }
    if (rc != KV_OK) {
        api_reply_error(r, 500, "internal", NULL, "storage error");
        return;
    }
    json_t *body = json_pack("{s:o,s:I,s:I,s:I}", "header", api_json_header(r->a, rev), "id",
                             (json_int_t)id, "ttl", (json_int_t)remaining_s(r, id),
                             "granted_ttl", (json_int_t)granted);
    if (body && r->raw && json_object_set_new(body, "keys", api_json_kvs(&keys, true)) < 0) {
        json_decref(body);
        body = NULL;
    }
    kv_list_free(&keys);
    api_reply_json(r, 200, body);
}

static void do_read(api_req *r)
{
    kv_conn *c = api_reader_after_barrier(r);
    if (!c)
        return;
    if (r->route.has_id)
        reply_one(r, c);
    else
        reply_list(r, c);
    kv_reader_release(r->a->kv, c);
}

/* ---- dispatch ---- */

static void on_id(api_req *r)
{
    static const char *const keys_only[] = {"keys", NULL};
    static const char *const none[] = {NULL};
    bool get = strcmp(r->method, "GET") == 0;
    /* r->raw: "?keys=true" (a GET's only option) */
    if (api_query_only(r, get ? keys_only : none) < 0 ||
        (get && api_query_bool(r, "keys", &r->raw) < 0))
        return;
    buf cmd;
    buf_init(&cmd);
    int64_t id = (int64_t)r->route.id;
    if (get)
        api_wait_barrier(r, do_read);
    else if (r->route.sub)
        api_propose_encoded(r, kv_encode_lease_keepalive(id, &cmd), &cmd, finish_id_ttl);
    else
        api_propose_encoded(r, kv_encode_lease_revoke(id, &cmd), &cmd, finish_revoke);
    buf_free(&cmd);
}

void api_h_lease(api_req *r)
{
    static const char *const none[] = {NULL};
    bool has_id = r->route.has_id;
    if (has_id && (!r->route.id_ok || r->route.id > (uint64_t)KV_LEASE_MAX_ID)) {
        api_reply_error(r, 400, "invalid_argument", NULL,
                        "id: expected a lease id from 1 to 2^53-1");
    } else if (has_id) {
        on_id(r);
    } else if (strcmp(r->method, "POST") == 0) {
        grant(r);
    } else if (api_query_only(r, none) == 0) {
        api_wait_barrier(r, do_read);
    }
}
