/* gw: etcd 3.4's JSON gateway (grpc-gateway's mapping of the v3 API) over
 * the same store, revisions and leases as the native API — the shared
 * part of src/api/v3/: etcd's JSON conventions (bytes as base64, int64 as
 * strings, zero values left out), its error bodies, and the reading of
 * request fields. Private to src/api/v3/.
 *
 * Must never: answer in the native API's shapes (a gateway client parses
 * etcd's), or propose a request before every field was read and checked. */
#ifndef RAFTKV_API_V3_GW_H
#define RAFTKV_API_V3_GW_H

#include "api/api_int.h"

/* The etcd whose gateway this answers as (/version, maintenance/status). */
#define GW_ETCD_VERSION "3.4.23"
#define GW_ETCD_CLUSTER_VERSION "3.4.0"

/* gRPC status codes, as etcd's gateway puts them in "code". */
enum gw_code {
    GW_UNKNOWN = 2,
    GW_INVALID_ARGUMENT = 3,
    GW_NOT_FOUND = 5,
    GW_PERMISSION_DENIED = 7,
    GW_RESOURCE_EXHAUSTED = 8,
    GW_FAILED_PRECONDITION = 9,
    GW_OUT_OF_RANGE = 11,
    GW_UNIMPLEMENTED = 12,
    GW_INTERNAL = 13,
    GW_UNAVAILABLE = 14,
    GW_UNAUTHENTICATED = 16,
};

/* {"error": msg, "message": msg, "code": code} with the HTTP status
 * grpc-gateway gives that code. */
void gw_reply_error(api_req *r, int code, const char *msg);
/* The store's and the node's refusals as etcd words them. */
void gw_reply_kv_error(api_req *r, int err);
void gw_reply_node_error(api_req *r, int status);
/* After a proposal: false if r->res holds a success, else answered. */
bool gw_write_failed(api_req *r);
/* After a read barrier: a reader, or NULL once the failure is answered. */
kv_conn *gw_reader(api_req *r);

/* {"cluster_id","member_id","revision","raft_term"} as strings; revision
 * < 0: the node's applied one; revision 0: left out. */
json_t *gw_header(api_req *r, int64_t revision);
/* An int64 as etcd writes it: a decimal string. */
json_t *gw_int(int64_t v);
/* Sets name to v as a string unless v is 0 (zero values are left out). */
int gw_set_int(json_t *obj, const char *name, int64_t v);
int gw_set_bytes(json_t *obj, const char *name, const uint8_t *p, size_t n);
/* A kv as etcd's mvccpb.KeyValue, zero fields left out. */
json_t *gw_kv(const kv_kv *item, bool keys_only);
json_t *gw_kvs(const kv_list *l, bool keys_only);
/* Sets name to v unless v is an empty array/object (then frees it). Takes
 * v in every case: -1, v freed, when obj or v is NULL (a failed build). */
int gw_set_nonempty(json_t *obj, const char *name, json_t *v);
/* Replies 200 with body, or 500 if body is NULL (allocation failed). */
void gw_reply(api_req *r, json_t *body);
/* The same with name set to v in body first (gw_set_nonempty: left out
 * when empty). Takes body and v. */
void gw_reply_adding(api_req *r, json_t *body, const char *name, json_t *v);

/* ---- reading a request body (etcd accepts int64 as a string or a
 * number, enums as names or numbers; unknown fields are ignored, as
 * protobuf's JSON mapping does). Each returns 0 (absent fields leave *out
 * alone), or -1 after replying 400 naming the field. ---- */
json_t *gw_body(api_req *r); /* the body as an object ({} when empty) */
int gw_i64(api_req *r, json_t *o, const char *name, int64_t *out);
int gw_bool(api_req *r, json_t *o, const char *name, bool *out);
/* Base64 bytes into memory owned by r's arena (NULL, 0 when absent). */
int gw_bytes(api_req *r, json_t *o, const char *name, const uint8_t **out, uint32_t *len);
/* An enum: its name from names[] (NULL-terminated), or its number. */
int gw_enum(api_req *r, json_t *o, const char *name, const char *const *names, int *out);
/* key and range_end into a span (etcd's conventions are kv_span's). */
int gw_span(api_req *r, json_t *o, kv_span *span);

/* ---- the endpoints (gw_kv.c, gw_lease.c, gw_cluster.c, gw_watch.c) ---- */
void gw_range(api_req *r);
void gw_put(api_req *r);
void gw_deleterange(api_req *r);
void gw_txn(api_req *r);
void gw_compaction(api_req *r);
void gw_lease_grant(api_req *r);
void gw_lease_revoke(api_req *r);
void gw_lease_keepalive(api_req *r);
void gw_lease_timetolive(api_req *r);
void gw_lease_leases(api_req *r);
void gw_member_list(api_req *r);
void gw_member_add(api_req *r);
void gw_member_remove(api_req *r);
void gw_member_promote(api_req *r);
void gw_member_update(api_req *r);
void gw_status(api_req *r);
void gw_watch(api_req *r);
void gw_lock(api_req *r);
void gw_unlock(api_req *r);
void gw_alarm(api_req *r);
void gw_hash(api_req *r);
void gw_defragment(api_req *r);
void gw_move_leader(api_req *r);
/* gw_election.c */
void gw_campaign(api_req *r);
void gw_proclaim(api_req *r);
void gw_resign(api_req *r);
void gw_leader(api_req *r);
void gw_observe(api_req *r);
/* gw_auth.c */
void gw_auth_enable(api_req *r);
void gw_auth_disable(api_req *r);
void gw_authenticate(api_req *r);
void gw_user_add(api_req *r);
void gw_user_get(api_req *r);
void gw_user_list(api_req *r);
void gw_user_delete(api_req *r);
void gw_user_changepw(api_req *r);
void gw_user_grant(api_req *r);
void gw_user_revoke(api_req *r);
void gw_role_add(api_req *r);
void gw_role_get(api_req *r);
void gw_role_list(api_req *r);
void gw_role_delete(api_req *r);
void gw_role_grant(api_req *r);
void gw_role_revoke(api_req *r);

#endif
