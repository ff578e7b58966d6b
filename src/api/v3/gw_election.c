/* gw_election: the gateway's election/{campaign,proclaim,leader,resign,
 * observe} —
 * etcd's v3election service on the same line of keys as POST
 * /election/{name}/... (recipes/waitline.h): campaign waits, its
 * connection suspended, until the caller's key {name}/{lease hex} is first
 * in line; proclaim and resign are guarded by the leader key's create
 * revision; leader reads the head of the line after a read barrier.
 *
 * Must never answer "elected" before the key is first in line, nor
 * proclaim for a leader whose key has gone.
 */
#include "api/v3/gw.h"
#include "api/recipes/waitline.h"

#include <stdlib.h>
#include <string.h>

#define E_NOT_LEADER "election: not leader"
#define E_NO_LEADER "election: no leader"

/* The election's name (base64 "name") as the line's name: r->route.key. */
static int name_field(api_req *r, json_t *o)
{
    const uint8_t *name;
    uint32_t len;
    if (gw_bytes(r, o, "name", &name, &len) < 0)
        return -1;
    if (len == 0) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: key is not provided");
        return -1;
    }
    if (!(r->route.key = malloc(len))) {
        gw_reply_error(r, GW_INTERNAL, "etcdserver: out of memory");
        return -1;
    }
    memcpy(r->route.key, name, len);
    r->route.key_len = len;
    return 0;
}

static json_t *leader_key(const uint8_t *name, uint32_t name_len, const wl *s)
{
    json_t *o = json_object();
    if (!o || gw_set_bytes(o, "name", name, name_len) < 0 ||
        gw_set_bytes(o, "key", s->key, s->key_len) < 0 || gw_set_int(o, "rev", s->rev) < 0 ||
        gw_set_int(o, "lease", s->lease) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void campaign_done(api_req *r, int outcome)
{
    wl *s = r->ext;
    if (outcome != WL_FIRST) { /* its key went (lease expired or revoked) */
        gw_reply_error(r, GW_NOT_FOUND, "etcdserver: requested lease not found");
        return;
    }
    gw_reply(r, json_pack("{s:o,s:o}", "header", gw_header(r, s->view_rev), "leader",
                          leader_key(r->route.key, (uint32_t)r->route.key_len, s)));
}

/* etcd's campaign answers an unknown lease as Unknown (500), not the
 * NotFound the kv calls give: checked here, before joining the line. */
static bool lease_known(api_req *r, int64_t lease)
{
    kv_conn *c = kv_reader_acquire(r->a->kv);
    int64_t ttl, rev;
    bool yes = lease > 0 && lease <= KV_LEASE_MAX_ID && c &&
               kv_lease_get(c, lease, &ttl, NULL, &rev) == KV_OK;
    if (c)
        kv_reader_release(r->a->kv, c);
    if (!yes)
        gw_reply_error(r, GW_UNKNOWN, "etcdserver: requested lease not found");
    return yes;
}

void gw_campaign(api_req *r)
{
    json_t *o = gw_body(r);
    int64_t lease = 0;
    const uint8_t *value;
    uint32_t value_len;
    if (!o || gw_i64(r, o, "lease", &lease) < 0 || gw_bytes(r, o, "value", &value, &value_len) < 0 ||
        !lease_known(r, lease))
        return;
    if (name_field(r, o) < 0)
        return;
    wl *s = api_wl_new(r, lease, -1);
    if (!s)
        return;
    s->done = campaign_done;
    api_wl_join(r, value, value_len);
}

static void finish_guarded(api_req *r)
{
    if (gw_write_failed(r))
        return;
    if (!r->res->succeeded)
        gw_reply_error(r, GW_UNKNOWN, E_NOT_LEADER);
    else
        gw_reply(r, json_pack("{s:o}", "header", gw_header(r, r->res->revision)));
}

/* proclaim and resign name the leader: {"leader": {name, key, rev, lease}}. */
static void guarded(api_req *r, bool proclaim)
{
    json_t *o = gw_body(r), *l = o ? json_object_get(o, "leader") : NULL;
    int64_t rev = 0, lease = 0;
    const uint8_t *value = NULL;
    uint32_t value_len = 0;
    if (!o)
        return;
    if (!json_is_object(l)) {
        gw_reply_error(r, GW_UNKNOWN, E_NOT_LEADER);
        return;
    }
    if (gw_bytes(r, l, "key", &r->op.span.key, &r->op.span.key_len) < 0 ||
        gw_i64(r, l, "rev", &rev) < 0 || gw_i64(r, l, "lease", &lease) < 0 ||
        (proclaim && gw_bytes(r, o, "value", &value, &value_len) < 0))
        return;
    if (r->op.span.key_len == 0 || rev <= 0) {
        gw_reply_error(r, GW_UNKNOWN, E_NOT_LEADER);
        return;
    }
    r->op.type = proclaim ? KV_OP_PUT : KV_OP_DELETE;
    r->op.value = value;
    r->op.value_len = value_len;
    r->op.lease = proclaim ? lease : 0;
    api_wl_guarded(r, r->op.span.key, r->op.span.key_len, rev, &r->op, 1, finish_guarded);
}

void gw_proclaim(api_req *r) { guarded(r, true); }

/* etcd's resign of a leader that is gone is no error */
static void finish_resign(api_req *r)
{
    if (!gw_write_failed(r))
        gw_reply(r, json_pack("{s:o}", "header", gw_header(r, r->res->revision)));
}

void gw_resign(api_req *r)
{
    json_t *o = gw_body(r), *l = o ? json_object_get(o, "leader") : NULL;
    int64_t rev = 0;
    if (!o)
        return;
    if (!json_is_object(l) || gw_bytes(r, l, "key", &r->op.span.key, &r->op.span.key_len) < 0 ||
        gw_i64(r, l, "rev", &rev) < 0)
        return;
    if (r->op.span.key_len == 0 || rev <= 0) {
        gw_reply_error(r, GW_UNKNOWN, E_NOT_LEADER);
        return;
    }
    r->op.type = KV_OP_DELETE;
    api_wl_guarded(r, r->op.span.key, r->op.span.key_len, rev, &r->op, 1, finish_resign);
}

/* Under auth, reading who leads needs read on the line: {name}/... */
static bool may_read_line(api_req *r, const uint8_t *prefix, uint32_t len)
{
    uint8_t *end = malloc(len + 1);
    kv_span line = {prefix, len, true, end, end ? kv_prefix_end(prefix, len, end) : 0};
    bool may = end && api_auth_read(r, NULL, &line);
    free(end);
    if (!may && !r->replied)
        gw_reply_error(r, GW_INTERNAL, "etcdserver: out of memory");
    return may;
}

static void do_leader(api_req *r)
{
    if (r->status != NODE_OK) {
        gw_reply_node_error(r, r->status);
        return;
    }
    const wl *s = r->ext;
    if (!may_read_line(r, s->prefix, s->prefix_len))
        return;
    wl_view v;
    int rc = api_wl_read(r->a, r->ext, 0, &v);
    if (rc != KV_OK) {
        gw_reply_kv_error(r, rc);
        return;
    }
    if (!v.lowest)
        gw_reply_error(r, GW_UNKNOWN, E_NO_LEADER);
    else
        gw_reply(r, json_pack("{s:o,s:o}", "header", gw_header(r, v.header_rev), "kv",
                              gw_kv(v.lowest, false)));
    api_wl_view_free(&v);
}

void gw_leader(api_req *r)
{
    json_t *o = gw_body(r);
    if (!o || name_field(r, o) < 0 || !api_wl_new(r, 0, -1))
        return;
    api_wait_barrier(r, do_leader);
}

/* ---- observe: etcd's lines, one per leader (none while nobody leads) ---- */

static json_t *observe_line(api *a, const kv_kv *leader, int64_t rev)
{
    if (!leader)
        return NULL;
    node_info i;
    node_get_info(a->node, &i);
    json_t *h = json_pack("{s:o,s:o,s:o,s:o}", "cluster_id", gw_int((int64_t)i.cluster_id),
                          "member_id", gw_int((int64_t)i.member_id), "revision", gw_int(rev),
                          "raft_term", gw_int((int64_t)i.raft_term));
    return json_pack("{s:{s:o,s:o}}", "result", "header", h, "kv", gw_kv(leader, false));
}

void gw_observe(api_req *r)
{
    json_t *o = gw_body(r);
    if (!o || name_field(r, o) < 0)
        return;
    uint8_t *prefix = malloc(r->route.key_len + 1);
    if (!prefix) {
        gw_reply_error(r, GW_INTERNAL, "etcdserver: out of memory");
        return;
    }
    memcpy(prefix, r->route.key, r->route.key_len);
    prefix[r->route.key_len] = '/';
    bool may = may_read_line(r, prefix, (uint32_t)r->route.key_len + 1);
    free(prefix);
    if (may)
        api_observe_stream(r, observe_line, "application/json");
}
