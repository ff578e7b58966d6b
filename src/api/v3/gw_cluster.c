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

static void do_member_list(api_req *r)
{
    kv_conn *c = gw_reader(r);
    if (!c)
        return;
    kv_member *m = NULL;
    size_t n = 0;
    int rc = kv_members(c, &m, &n);
    kv_reader_release(r->a->kv, c);
    if (rc != KV_OK) {
        gw_reply_kv_error(r, rc);
        return;
    }
    node_info info;
    node_get_info(r->a->node, &info);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, member_json(r, &m[i], info.member_id)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    kv_members_free(m, n);
    /* etcd's member list header carries no revision */
    json_t *body = json_pack("{s:o}", "header", gw_header(r, 0));
    if (body && gw_set_nonempty(body, "members", arr) < 0) {
        json_decref(body);
        body = NULL;
    }
    gw_reply(r, body);
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
