/* gw: the gateway's entry point and etcd's JSON conventions — the dispatch
 * of POST /v3/{path} (also /v3beta/ and /v3alpha/), GET /version, error
 * bodies with etcd's words, gRPC codes and HTTP statuses, the response
 * header, and the readers of request fields (see gw.h).
 * Must never render an int64 as a JSON number or a zero field etcd leaves
 * out, or accept a field of the wrong type silently. */
#include "api/v3/gw.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- errors ---- */

/* grpc-gateway (v1, etcd 3.4's)'s HTTP status for a gRPC code. */
static unsigned http_status(int code)
{
    switch (code) {
    case GW_INVALID_ARGUMENT:
    case GW_OUT_OF_RANGE: return 400;
    case GW_UNAUTHENTICATED: return 401;
    case GW_PERMISSION_DENIED: return 403;
    case GW_RESOURCE_EXHAUSTED: return 429;
    case GW_NOT_FOUND: return 404;
    case GW_FAILED_PRECONDITION: return 412;
    case GW_UNIMPLEMENTED: return 501;
    case GW_UNAVAILABLE: return 503;
    default: return 500;
    }
}

void api_v3_error(api_req *r, int code, const char *msg) { gw_reply_error(r, code, msg); }

void gw_reply_error(api_req *r, int code, const char *msg)
{
    /* jansson's parse errors quote the client's bytes: else a 500 */
    msg = api_utf8_or(msg, "invalid request: its text is not UTF-8");
    json_t *body = json_pack("{s:s,s:s,s:i}", "error", msg, "message", msg, "code", code);
    api_reply_json(r, http_status(code), body);
}

void gw_reply_kv_error(api_req *r, int err)
{
    switch (err) {
    case KV_ERR_COMPACTED:
        gw_reply_error(r, GW_OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted");
        break;
    case KV_ERR_FUTURE_REV:
        gw_reply_error(r, GW_OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision");
        break;
    case KV_ERR_NOT_FOUND:
        gw_reply_error(r, GW_NOT_FOUND, "etcdserver: requested lease not found");
        break;
    case KV_ERR_EXISTS:
        gw_reply_error(r, GW_FAILED_PRECONDITION, "etcdserver: lease already exists");
        break;
    case KV_ERR_NO_SPACE:
        gw_reply_error(r, GW_UNAVAILABLE, "etcdserver: mvcc: database space exceeded");
        break;
    case KV_ERR_INVALID:
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: invalid request");
        break;
    case KV_ERR_CORRUPT:
        gw_reply_error(r, GW_INTERNAL, API_ETCD_CORRUPT_MSG);
        break;
    case KV_ERR_PERMISSION:
        gw_reply_error(r, GW_PERMISSION_DENIED, "etcdserver: permission denied");
        break;
    case KV_ERR_AUTH:
        gw_reply_error(r, GW_UNAUTHENTICATED, "etcdserver: invalid auth token");
        break;
    case KV_ERR_IDEM_REUSED:
        gw_reply_error(r, GW_INVALID_ARGUMENT, "raftkv: Idempotency-Key reused for another request");
        break;
    default:
        gw_reply_error(r, GW_INTERNAL, "etcdserver: internal error");
        break;
    }
}

void gw_reply_node_error(api_req *r, int status)
{
    switch (status) {
    case NODE_ERR_NO_LEADER: gw_reply_error(r, GW_UNAVAILABLE, "etcdserver: no leader"); break;
    case NODE_ERR_TIMEOUT: gw_reply_error(r, GW_UNAVAILABLE, "etcdserver: request timed out"); break;
    case NODE_ERR_STOPPING: gw_reply_error(r, GW_UNAVAILABLE, "etcdserver: server stopped"); break;
    case NODE_ERR_BUSY: gw_reply_error(r, GW_UNAVAILABLE, "etcdserver: too many requests"); break;
    case NODE_ERR_NOT_FOUND: gw_reply_error(r, GW_NOT_FOUND, "etcdserver: member not found"); break;
    case NODE_ERR_NOT_READY:
        gw_reply_error(r, GW_FAILED_PRECONDITION,
                       "etcdserver: can only promote a learner member which is in sync with leader");
        break;
    case NODE_ERR_URL_EXISTS:
        gw_reply_error(r, GW_FAILED_PRECONDITION, "etcdserver: Peer URLs already exists");
        break;
    default: gw_reply_error(r, GW_INTERNAL, "etcdserver: internal error"); break;
    }
}

bool gw_write_failed(api_req *r)
{
    if (r->status != NODE_OK || !r->res) {
        gw_reply_node_error(r, r->status != NODE_OK ? r->status : NODE_ERR_INTERNAL);
        return true;
    }
    if (r->res->err != KV_OK) {
        gw_reply_kv_error(r, r->res->err);
        return true;
    }
    return false;
}

kv_conn *gw_reader(api_req *r)
{
    if (r->status != NODE_OK) {
        gw_reply_node_error(r, r->status);
        return NULL;
    }
    kv_conn *c = kv_reader_acquire(r->a->kv);
    if (!c)
        gw_reply_error(r, GW_UNAVAILABLE, "etcdserver: too many requests");
    return c;
}

/* ---- rendering ---- */

json_t *gw_int(int64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRId64, v);
    return json_string(s);
}

static int set_new(json_t *obj, const char *name, json_t *v)
{
    return v ? json_object_set_new(obj, name, v) : -1;
}

int gw_set_int(json_t *obj, const char *name, int64_t v)
{
    return v ? set_new(obj, name, gw_int(v)) : 0;
}

int gw_set_bytes(json_t *obj, const char *name, const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    char *s = api_b64_encode(p, n);
    int rc = s ? set_new(obj, name, json_string(s)) : -1;
    free(s);
    return rc;
}

int gw_set_nonempty(json_t *obj, const char *name, json_t *v)
{
    if (!obj || !v) {
        json_decref(v);
        return -1;
    }
    if ((json_is_array(v) && json_array_size(v) == 0) ||
        (json_is_object(v) && json_object_size(v) == 0)) {
        json_decref(v);
        return 0;
    }
    return json_object_set_new(obj, name, v);
}

json_t *gw_header(api_req *r, int64_t revision)
{
    node_info info;
    node_get_info(r->a->node, &info);
    json_t *h = json_object();
    if (h && (gw_set_int(h, "cluster_id", (int64_t)info.cluster_id) < 0 ||
              gw_set_int(h, "member_id", (int64_t)info.member_id) < 0 ||
              gw_set_int(h, "revision", revision < 0 ? info.revision : revision) < 0 ||
              gw_set_int(h, "raft_term", (int64_t)info.raft_term) < 0)) {
        json_decref(h);
        h = NULL;
    }
    return h;
}

json_t *gw_kv(const kv_kv *item, bool keys_only)
{
    json_t *o = json_object();
    if (o && (gw_set_bytes(o, "key", item->key, item->key_len) < 0 ||
              gw_set_int(o, "create_revision", item->create_revision) < 0 ||
              gw_set_int(o, "mod_revision", item->mod_revision) < 0 ||
              gw_set_int(o, "version", item->version) < 0 ||
              (!keys_only && gw_set_bytes(o, "value", item->value, item->value_len) < 0) ||
              gw_set_int(o, "lease", item->lease) < 0)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

json_t *gw_kvs(const kv_list *l, bool keys_only)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->n; i++) {
        if (json_array_append_new(a, gw_kv(&l->items[i], keys_only)) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

void gw_reply(api_req *r, json_t *body)
{
    if (body)
        api_reply_json(r, 200, body);
    else
        gw_reply_error(r, GW_INTERNAL, "etcdserver: out of memory");
}

void gw_reply_adding(api_req *r, json_t *body, const char *name, json_t *v)
{
    if (gw_set_nonempty(body, name, v) < 0) {
        json_decref(body);
        body = NULL;
    }
    gw_reply(r, body);
}

/* ---- reading requests ---- */

json_t *gw_body(api_req *r)
{
    json_error_t e;
    bool oom = false;
    if (r->body.len == 0)
        oom = !(r->doc = json_object());
    else
        r->doc = json_safe_parse(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &e, &oom);
    if (oom) {
        gw_reply_error(r, GW_INTERNAL, "etcdserver: out of memory");
        return NULL;
    }
    if (!r->doc || !json_is_object(r->doc)) {
        char msg[200];
        snprintf(msg, sizeof msg, "invalid JSON body: %s", r->doc ? "not an object" : e.text);
        gw_reply_error(r, GW_INVALID_ARGUMENT, msg);
        return NULL;
    }
    return r->doc;
}

static int bad_field(api_req *r, const char *name, const char *want)
{
    char msg[160];
    snprintf(msg, sizeof msg, "invalid value for field %s: expected %s", name, want);
    gw_reply_error(r, GW_INVALID_ARGUMENT, msg);
    return -1;
}

/* As Go's strconv.ParseInt, which etcd's gateway uses: an optional sign,
 * then decimal digits (strtoll alone would also skip leading spaces). */
static bool parse_i64(const char *s, int64_t *out)
{
    char *end;
    if (!(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9')))
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

int gw_i64(api_req *r, json_t *o, const char *name, int64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && parse_i64(json_string_value(v), out))
        return 0;
    return bad_field(r, name, "an int64 (string or number)");
}

int gw_bool(api_req *r, json_t *o, const char *name, bool *out)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return bad_field(r, name, "true or false");
    *out = json_is_true(v);
    return 0;
}

int gw_bytes(api_req *r, json_t *o, const char *name, const uint8_t **out, uint32_t *len)
{
    json_t *v = json_object_get(o, name);
    *out = NULL;
    *len = 0;
    if (!v || json_is_null(v))
        return 0;
    uint8_t *p = NULL;
    size_t n = 0;
    int rc = json_is_string(v)
                 ? api_b64_decode(json_string_value(v), json_string_length(v), &p, &n)
                 : -1;
    if (rc == -1 || (rc == 0 && n > UINT32_MAX)) {
        free(p);
        return bad_field(r, name, "base64 bytes");
    }
    if (rc < 0 || (n && !api_arena_keep(&r->arena, p))) {
        gw_reply_error(r, GW_INTERNAL, "etcdserver: out of memory");
        return -1;
    }
    if (!n)
        free(p);
    *out = n ? p : NULL;
    *len = (uint32_t)n;
    return 0;
}

int gw_enum(api_req *r, json_t *o, const char *name, const char *const *names, int *out)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return 0;
    for (int i = 0; names[i]; i++) {
        if ((json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0) ||
            (json_is_integer(v) && json_integer_value(v) == i)) {
            *out = i;
            return 0;
        }
    }
    return bad_field(r, name, "one of the enum's names or numbers");
}

int gw_span(api_req *r, json_t *o, kv_span *span)
{
    memset(span, 0, sizeof *span);
    if (gw_bytes(r, o, "key", &span->key, &span->key_len) < 0 ||
        gw_bytes(r, o, "range_end", &span->end, &span->end_len) < 0)
        return -1;
    if (span->key_len == 0) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: key is not provided");
        return -1;
    }
    /* an absent range_end is one key; "AA==" (one zero byte) every key >= key */
    span->has_end = json_object_get(o, "range_end") && span->end_len > 0;
    return 0;
}

/* ---- dispatch ---- */

typedef struct {
    const char *path;
    api_handler_fn fn;
} gw_route;

static const gw_route routes[] = {
    {"kv/range", gw_range},
    {"kv/put", gw_put},
    {"kv/deleterange", gw_deleterange},
    {"kv/txn", gw_txn},
    {"kv/compaction", gw_compaction},
    {"lease/grant", gw_lease_grant},
    {"lease/revoke", gw_lease_revoke},
    {"kv/lease/revoke", gw_lease_revoke},
    {"lease/keepalive", gw_lease_keepalive},
    {"lease/timetolive", gw_lease_timetolive},
    {"kv/lease/timetolive", gw_lease_timetolive},
    {"lease/leases", gw_lease_leases},
    {"kv/lease/leases", gw_lease_leases},
    {"cluster/member/list", gw_member_list},
    {"cluster/member/add", gw_member_add},
    {"cluster/member/remove", gw_member_remove},
    {"cluster/member/promote", gw_member_promote},
    {"cluster/member/update", gw_member_update},
    {"maintenance/status", gw_status},
    {"watch", gw_watch},
    {"lock/lock", gw_lock},
    {"lock/unlock", gw_unlock},
    {"maintenance/alarm", gw_alarm},
    {"maintenance/hash", gw_hash},
    {"maintenance/defragment", gw_defragment},
    {"maintenance/transfer-leadership", gw_move_leader},
    {"maintenance/snapshot", api_v3_snapshot},
    {"election/campaign", gw_campaign},
    {"election/proclaim", gw_proclaim},
    {"election/resign", gw_resign},
    {"election/leader", gw_leader},
    {"election/observe", gw_observe},
    {"auth/enable", gw_auth_enable},
    {"auth/disable", gw_auth_disable},
    {"auth/authenticate", gw_authenticate},
    {"auth/user/add", gw_user_add},
    {"auth/user/get", gw_user_get},
    {"auth/user/list", gw_user_list},
    {"auth/user/delete", gw_user_delete},
    {"auth/user/changepw", gw_user_changepw},
    {"auth/user/grant", gw_user_grant},
    {"auth/user/revoke", gw_user_revoke},
    {"auth/role/add", gw_role_add},
    {"auth/role/get", gw_role_get},
    {"auth/role/list", gw_role_list},
    {"auth/role/delete", gw_role_delete},
    {"auth/role/grant", gw_role_grant},
    {"auth/role/revoke", gw_role_revoke},
};

const char *api_v3_path(const char *path)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, path) == 0)
            return routes[i].path;
    }
    return NULL;
}

void api_h_v3(api_req *r)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (r->route.sub && strcmp(routes[i].path, r->route.sub) == 0) {
            routes[i].fn(r);
            return;
        }
    }
    gw_reply_error(r, GW_UNIMPLEMENTED, "not implemented by raftkv's gateway");
}

void api_h_version(api_req *r)
{
    api_reply_json(r, 200, json_pack("{s:s,s:s}", "etcdserver", GW_ETCD_VERSION, "etcdcluster",
                                     GW_ETCD_CLUSTER_VERSION));
}
