/* h_election: server-side leader election, shaped like etcd's
 * v3election, on the same ordered line of keys as the lock (waitline.h):
 *   POST /election/{name}/campaign {"lease":ID,"value":"..."} [?timeout=S]
 *     waits until the caller leads, then {header, leader:{name,key,rev,lease}}
 *   POST /election/{name}/proclaim {"lease":ID,"value":"...","rev"?:R}
 *     updates the leader's value (guarded by its key's create revision)
 *   GET  /election/{name}/leader    {header, kv} or 404 no_leader
 *   GET  /election/{name}/observe: long-poll or stream (h_observe.c, its
 *     own route)
 *   POST /election/{name}/resign {"lease":ID,"rev"?:R}
 * The leader is the key directly under {name}/ with the smallest create
 * revision.
 *
 * Must never report a leader that is not committed, nor answer an observe
 * from a store older than the client's cursor. */
#include "api/api_int.h"
#include "api/input.h"
#include "api/recipes/waitline.h"

#include <string.h>

/* ---- shared ---- */

/* {"lease": ID} plus the named optional fields; NULL after a 400. */
static wl *parse_body(api_req *r, const char *const *extra, int64_t timeout)
{
    int64_t lease = 0;
    if (!(r->doc = api_body_json(r)))
        return NULL;
    const char *k;
    json_t *v;
    json_object_foreach(r->doc, k, v) {
        bool known = strcmp(k, "lease") == 0;
        for (size_t i = 0; extra[i] && !known; i++)
            known = strcmp(k, extra[i]) == 0;
        if (!known) {
            api_reply_error(r, 400, "invalid_argument", NULL, "%.64s: unknown field", k);
            return NULL;
        }
    }
    if (api_body_int(r, "lease", 1, KV_LEASE_MAX_ID, true, &lease) < 0)
        return NULL;
    return api_wl_new(r, lease, timeout);
}

/* The "value" field: a string (may be absent: empty). -1 after a 400. */
static int value_field(api_req *r, const uint8_t **v, uint32_t *n)
{
    json_t *j = json_object_get(r->doc, "value");
    *v = NULL;
    *n = 0;
    if (!j)
        return 0;
    if (!json_is_string(j) || json_string_length(j) > KV_MAX_VALUE_LEN) {
        api_reply_error(r, 400, "invalid_argument", NULL, "value: expected a string");
        return -1;
    }
    *v = (const uint8_t *)json_string_value(j);
    *n = (uint32_t)json_string_length(j);
    return 0;
}

/* ---- campaign ---- */

static void campaign_done(api_req *r, int outcome)
{
    wl *s = r->ext;
    if (outcome == WL_TIMEOUT) {
        api_reply_error(r, 408, "campaign_timeout", NULL,
                        "timeout: not elected in time; left the line");
        return;
    }
    if (outcome == WL_LOST) {
        api_reply_error(r, 409, "campaign_lost", NULL,
                        "the candidate's key was deleted (lease expired or revoked?)");
        return;
    }
    json_t *leader = json_pack("{s:I,s:I}", "rev", (json_int_t)s->rev, "lease",
                               (json_int_t)s->lease);
    if (leader && (api_json_set_bytes(leader, "name", r->route.key, r->route.key_len) < 0 ||
                   api_json_set_bytes(leader, "key", s->key, s->key_len) < 0)) {
        json_decref(leader);
        leader = NULL;
    }
    api_reply_json(r, 200, api_json_with_header(r->a, json_pack("{s:o}", "leader", leader), s->view_rev));
}

static void campaign(api_req *r)
{
    static const char *const allowed[] = {"timeout", NULL};
    static const char *const fields[] = {"value", NULL};
    int64_t timeout;
    const uint8_t *v;
    uint32_t n;
    if (api_query_only(r, allowed) < 0 || api_wl_query_timeout(r, -1, &timeout) < 0)
        return;
    wl *s = parse_body(r, fields, timeout);
    if (!s || value_field(r, &v, &n) < 0)
        return;
    s->done = campaign_done;
    api_wl_join(r, v, n);
}

/* ---- proclaim, resign ---- */

static void finish_guarded(api_req *r)
{
    if (api_write_failed(r))
        return;
    if (!r->res->succeeded)
        api_reply_error(r, 412, "not_leader", NULL,
                        "lease: its key does not exist or has another create revision");
    else
        api_reply_json(r, 200, api_json_with_header(r->a, json_object(), r->res->revision));
}

static void proclaim_or_resign(api_req *r, bool proclaim)
{
    static const char *const none[] = {NULL};
    static const char *const proclaim_fields[] = {"rev", "value", NULL};
    static const char *const resign_fields[] = {"rev", NULL};
    int64_t rev = 0;
    const uint8_t *v = NULL;
    uint32_t n = 0;
    if (api_query_only(r, none) < 0)
        return;
    wl *s = parse_body(r, proclaim ? proclaim_fields : resign_fields, -1);
    if (!s || api_body_int(r, "rev", 1, INT64_MAX, false, &rev) < 0 ||
        (proclaim && value_field(r, &v, &n) < 0))
        return;
    kv_span one = {s->key, s->key_len, false, NULL, 0};
    kv_op op = proclaim ? (kv_op){.type = KV_OP_PUT, .span = one, .value = v, .value_len = n,
                                  .lease = s->lease}
                        : (kv_op){.type = KV_OP_DELETE, .span = one};
    api_wl_guarded(r, s->key, s->key_len, rev, &op, 1, finish_guarded);
}

/* ---- leader ---- */

static void do_leader(api_req *r)
{
    wl_view v;
    if (r->status != NODE_OK) {
        api_reply_node_error(r, r->status);
        return;
    }
    int rc = api_wl_read(r->a, r->ext, 0, &v);
    if (rc != KV_OK) {
        api_reply_kv_error(r, rc, 0);
        return;
    }
    if (!v.lowest)
        api_reply_error_with(r, 404, "no_leader",
                             api_json_with_header(r->a, json_object(), v.header_rev), "no leader");
    else
        api_reply_json(r, 200, api_wl_leader_json(r->a, v.lowest, v.header_rev, false));
    api_wl_view_free(&v);
}

static void leader(api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) < 0 || !api_wl_new(r, 0, -1))
        return;
    api_wait_barrier(r, do_leader);
}

void api_h_election(api_req *r)
{
    const char *verb = r->route.sub;
    if (strcmp(verb, "campaign") == 0)
        campaign(r);
    else if (strcmp(verb, "proclaim") == 0)
        proclaim_or_resign(r, true);
    else if (strcmp(verb, "resign") == 0)
        proclaim_or_resign(r, false);
    else
        leader(r);
}
