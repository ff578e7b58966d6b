/* gw_cluster: the gateway's cluster/member/list and maintenance/status —
 * etcd's Member and StatusResponse from the membership table and the
 * node's published state. Must never block on Raft for the status (etcd
 * answers it locally too). */
#include "api/v3/gw.h"

#include <stdio.h>
#include <stdlib.h>

/* Members' client URLs are not replicated: a member knows its own only. */
static json_t *member_json(api_req *r, const kv_member *m, uint64_t self)
{
    char name[32];
    snprintf(name, sizeof name, "raftkv-%llu", (unsigned long long)m->id);
    json_t *o = json_pack("{s:o,s:s,s:[s]}", "ID", gw_int((int64_t)m->id), "name", name,
                          "peerURLs", m->peer_url);
    if (o && m->id == self &&
        json_object_set_new(o, "clientURLs", json_pack("[s]", r->a->client_url)) < 0) {
        json_decref(o);
        return NULL;
    }
    if (o && m->is_learner && json_object_set_new(o, "isLearner", json_true()) < 0) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static json_t *members_array(api_req *r, kv_member *m, size_t n, uint64_t self)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, member_json(r, &m[i], self)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* The membership table as this member applied it, and this member's id;
 * false when r has been answered (no reader, or the read failed). */
static bool read_members(api_req *r, kv_member **m, size_t *n, uint64_t *self)
{
    kv_conn *c = gw_reader(r);
    if (!c)
        return false;
    int rc = kv_members(c, m, n);
    kv_reader_release(r->a->kv, c);
    if (rc != KV_OK) {
        gw_reply_kv_error(r, rc);
        return false;
    }
    node_info info;
    node_get_info(r->a->node, &info);
    *self = info.member_id;
    return true;
}

static void do_member_list(api_req *r)
{
    kv_member *m = NULL;
    size_t n = 0;
    uint64_t self = 0;
    if (!read_members(r, &m, &n, &self))
        return;
    json_t *arr = members_array(r, m, n, self);
    kv_members_free(m, n);
    /* etcd's member list header carries no revision */
    gw_reply_adding(r, json_pack("{s:o}", "header", gw_header(r, 0)), "members", arr);
}

void gw_member_list(api_req *r)
{
    if (gw_body(r))
        api_wait_barrier(r, do_member_list);
}

void gw_status(api_req *r)
{
    if (!gw_body(r))
        return;
    node_info info;
    node_get_info(r->a->node, &info);
    json_t *body = json_pack("{s:o,s:s}", "header", gw_header(r, -1), "version", GW_ETCD_VERSION);
    if (body && (gw_set_int(body, "dbSize", (int64_t)info.db_size) < 0 ||
                 gw_set_int(body, "leader", (int64_t)info.leader) < 0 ||
                 gw_set_int(body, "raftIndex", (int64_t)info.raft_index) < 0 ||
                 gw_set_int(body, "raftTerm", (int64_t)info.raft_term) < 0 ||
                 gw_set_int(body, "raftAppliedIndex", (int64_t)info.applied_index) < 0 ||
                 gw_set_int(body, "dbSizeInUse", (int64_t)info.db_size_in_use) < 0 ||
                 (info.is_learner && json_object_set_new(body, "isLearner", json_true()) < 0))) {
        json_decref(body);
        body = NULL;
    }
    gw_reply(r, body);
}

/* ---- member add, remove, promote: etcd answers with the members after
 * the change (and add with the new member too) ---- */

/* The refusals of a membership change that etcd words its own way, or
 * has none for; the rest are every request's (gw_reply_node_error). */
static void reply_member_error(api_req *r)
{
    if (r->status == NODE_ERR_INVALID && r->member_op == KV_MEMBER_PROMOTE)
        gw_reply_error(r, GW_FAILED_PRECONDITION, "etcdserver: can only promote a learner member");
    else if (r->status == NODE_ERR_INVALID) /* an add past RAFT_MAX_MEMBERS */
        gw_reply_error(r, GW_FAILED_PRECONDITION, "raftkv: too many members in cluster");
    else if (r->status == NODE_ERR_CONF_PENDING) /* etcd's request would time out */
        gw_reply_error(r, GW_UNAVAILABLE, "raftkv: another membership change is in progress");
    else
        gw_reply_node_error(r, r->status);
}

/* The members as this member applied them, after the change r waited for. */
static void finish_member_change(api_req *r)
{
    if (r->status != NODE_OK) {
        reply_member_error(r);
        return;
    }
    kv_member *m = NULL;
    size_t n = 0;
    uint64_t self = 0;
    if (!read_members(r, &m, &n, &self))
        return;
    json_t *body = json_pack("{s:o}", "header", gw_header(r, 0));
    if (body && r->url) { /* an add: the new member first */
        kv_member added = {.id = r->chosen_id, .peer_url = r->url, .is_learner = r->is_learner};
        if (json_object_set_new(body, "member", member_json(r, &added, 0)) < 0) {
            json_decref(body);
            body = NULL;
        }
    }
    json_t *arr = members_array(r, m, n, self);
    kv_members_free(m, n);
    gw_reply_adding(r, body, "members", arr);
}

void gw_member_add(api_req *r)
{
    json_t *o = gw_body(r), *urls = o ? json_object_get(o, "peerURLs") : NULL;
    if (!o || gw_bool(r, o, "isLearner", &r->is_learner) < 0)
        return;
    /* a member has one peer URL here (the transport dials one address) */
    if (!json_is_array(urls) || json_array_size(urls) != 1 ||
        !json_is_string(json_array_get(urls, 0)) ||
        !api_valid_peer_url(json_string_value(json_array_get(urls, 0)), r->a->peer_tls)) {
        /* etcd's words; raftkv also wants exactly one URL per member */
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: given member URLs are invalid");
        return;
    }
    if (!(r->url = xstrdup(json_string_value(json_array_get(urls, 0))))) {
        gw_reply_error(r, GW_INTERNAL, "etcdserver: out of memory");
        return;
    }
    api_wait_member(r, r->is_learner ? KV_MEMBER_ADD_LEARNER : KV_MEMBER_ADD, 0,
                    finish_member_change);
}

static void member_by_id(api_req *r, int op)
{
    json_t *o = gw_body(r);
    int64_t id = 0;
    if (!o || gw_i64(r, o, "ID", &id) < 0)
        return;
    if (id <= 0) {
        gw_reply_error(r, GW_NOT_FOUND, "etcdserver: member not found");
        return;
    }
    api_wait_member(r, op, (uint64_t)id, finish_member_change);
}

void gw_member_remove(api_req *r) { member_by_id(r, KV_MEMBER_REMOVE); }
void gw_member_promote(api_req *r) { member_by_id(r, KV_MEMBER_PROMOTE); }

/* member/update: the member's new peer URL, as a kv command (Raft knows
 * members by id only); the answer lists the members after it. */
static void finish_update(api_req *r)
{
    if (r->status == NODE_OK && r->res && r->res->err == KV_ERR_NOT_FOUND) {
        gw_reply_error(r, GW_NOT_FOUND, "etcdserver: member not found");
        return;
    }
    if (gw_write_failed(r))
        return;
    finish_member_change(r);
}

void gw_member_update(api_req *r)
{
    json_t *o = gw_body(r), *urls = o ? json_object_get(o, "peerURLs") : NULL;
    int64_t id = 0;
    if (!o || gw_i64(r, o, "ID", &id) < 0)
        return;
    const char *url = json_is_array(urls) && json_array_size(urls) == 1
                          ? json_string_value(json_array_get(urls, 0))
                          : NULL;
    if (!url || !api_valid_peer_url(url, r->a->peer_tls)) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: given member URLs are invalid");
        return;
    }
    if (id <= 0) {
        gw_reply_error(r, GW_NOT_FOUND, "etcdserver: member not found");
        return;
    }
    buf cmd;
    buf_init(&cmd);
    int rc = kv_encode_member_url((uint64_t)id, url, &cmd);
    if (rc == KV_OK)
        api_propose_encoded(r, rc, &cmd, finish_update);
    else
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: given member URLs are invalid");
    buf_free(&cmd);
}
