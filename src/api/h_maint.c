/* h_maint: the /maintenance routes of integrity and space — the alarms
 * (GET /maintenance/alarms, POST /maintenance/alarms/disarm) and the hash
 * of the key-value state that replicas are compared by (GET
 * /maintenance/hash?revision=R).
 *
 * Must never: change an alarm except through Raft (an alarm is replicated
 * state, the same on every member), or answer a hash computed over a row
 * that fails its checksum (503 corrupt instead).
 */
#include "api/api_int.h"
#include "api/input.h"

#include <string.h>

static const char *alarm_name(int type)
{
    switch (type) {
    case KV_ALARM_NOSPACE: return "NOSPACE";
    case KV_ALARM_CORRUPT: return "CORRUPT";
    default: return "UNKNOWN";
    }
}

/* The alarms now in kv, as [{"member_id", "alarm"}]; NULL after an answer. */
static json_t *alarms_json(api_req *r)
{
    kv_conn *c = kv_reader_acquire(r->a->kv);
    kv_alarm *al = NULL;
    size_t n = 0;
    int err = c ? kv_alarms_list(c, &al, &n) : KV_ERR_INTERNAL;
    if (c)
        kv_reader_release(r->a->kv, c);
    if (err != KV_OK) {
        api_reply_kv_error(r, err, 0);
        return NULL;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        /* a list short of an alarm is a wrong answer: none at all, then */
        if (json_array_append_new(arr, json_pack("{s:I,s:s}", "member_id",
                                                 (json_int_t)al[i].member_id, "alarm",
                                                 alarm_name(al[i].type))) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(al);
    if (!arr)
        api_reply_error(r, 500, "internal", NULL, "out of memory");
    return arr;
}

static void reply_alarms(api_req *r, int64_t revision)
{
    json_t *arr = alarms_json(r);
    if (arr)
        api_reply_json(r, 200, json_pack("{s:o,s:o}", "header", api_json_header(r->a, revision),
                                         "alarms", arr));
}

static void list_alarms(api_req *r)
{
    if (r->status != NODE_OK)
        api_reply_node_error(r, r->status);
    else
        reply_alarms(r, -1);
}

static void finish_disarm(api_req *r)
{
    if (!api_write_failed(r))
        reply_alarms(r, r->res->revision);
}

/* {"alarm": "NOSPACE"|"CORRUPT", "member_id"?: N} (0 or absent: every member). */
static void disarm(api_req *r)
{
    if (!(r->doc = api_body_json(r)))
        return;
    json_t *name = json_object_get(r->doc, "alarm"), *member = json_object_get(r->doc, "member_id");
    size_t fields = 1 + (member != NULL);
    const char *s = json_is_string(name) ? json_string_value(name) : "";
    int type = strcmp(s, "NOSPACE") == 0 ? KV_ALARM_NOSPACE
               : strcmp(s, "CORRUPT") == 0 ? KV_ALARM_CORRUPT : 0;
    if (!type || json_object_size(r->doc) != fields) {
        api_reply_error(r, 400, "invalid_argument", NULL,
                        "body: expected {\"alarm\": \"NOSPACE\"|\"CORRUPT\", \"member_id\"?: N}");
        return;
    }
    if (member && (!json_is_integer(member) || json_integer_value(member) < 0)) {
        api_reply_error(r, 400, "invalid_argument", NULL, "member_id: expected an integer >= 0");
        return;
    }
    uint64_t id = member ? (uint64_t)json_integer_value(member) : 0;
    buf cmd;
    buf_init(&cmd);
    api_propose_encoded(r, kv_encode_alarm(KV_ALARM_DEACTIVATE, id, type, &cmd), &cmd,
                        finish_disarm);
    buf_free(&cmd);
}

static void hash(api_req *r)
{
    int64_t rev = 0;
    bool present;
    if (api_query_i64(r, "revision", 0, &rev, &present) < 0)
        return;
    kv_conn *c = kv_reader_acquire(r->a->kv);
    uint32_t h = 0;
    int64_t compact = 0, hash_rev = 0;
    int err = c ? kv_hash(c, rev, &h, &compact, &hash_rev) : KV_ERR_INTERNAL;
    if (c)
        kv_reader_release(r->a->kv, c);
    if (err != KV_OK) {
        api_reply_kv_error(r, err, compact);
        return;
    }
    api_reply_json(r, 200, json_pack("{s:o,s:I,s:I,s:I}", "header", api_json_header(r->a, -1),
                                     "hash", (json_int_t)h, "revision", (json_int_t)hash_rev,
                                     "compact_revision", (json_int_t)compact));
}

/* ---- defrag (off every loop: offthread.c) ---- */

int api_defrag_work(api *a, void *state)
{
    api_defrag_state *d = state;
    return kv_defrag(a->kv, &d->before, &d->after, d->msg, sizeof d->msg);
}

static void defrag_done(api_req *r)
{
    int rc;
    api_defrag_state *d = api_offthread_state(r, &rc);
    if (rc == KV_ERR_INVALID) {
        api_reply_error(r, 409, "defrag_unsupported", NULL, "%s", d->msg);
    } else if (rc != KV_OK) {
        log_error("defrag: %s", d->msg);
        api_reply_error(r, 500, "internal", NULL, "defrag failed");
    } else {
        log_info("defrag: kv.db %llu -> %llu bytes", (unsigned long long)d->before,
                 (unsigned long long)d->after);
        api_reply_json(r, 200, json_pack("{s:o,s:I,s:I}", "header", api_json_header(r->a, -1),
                                         "db_size_before", (json_int_t)d->before, "db_size",
                                         (json_int_t)d->after));
    }
}

void api_h_defrag(api_req *r)
{
    api_offthread(r, sizeof(api_defrag_state), NULL, api_defrag_work, defrag_done);
}

/* ---- move-leader ---- */

static void moved(api_req *r)
{
    if (r->status != NODE_OK) {
        api_reply_node_error(r, r->status);
        return;
    }
    node_info i;
    node_get_info(r->a->node, &i);
    api_reply_json(r, 200, json_pack("{s:o,s:I}", "header", api_json_header(r->a, -1), "leader",
                                     (json_int_t)i.leader));
}

static void move_leader(api_req *r)
{
    int64_t to = 0;
    if (!(r->doc = api_body_json(r)) || api_body_int(r, "to", 1, API_MAX_ID, true, &to) < 0)
        return;
    api_wait_move(r, (uint64_t)to, moved);
}

void api_h_maint(api_req *r)
{
    static const char *const hash_params[] = {"revision", NULL},
                             *const list_params[] = {"serializable", NULL}, *const none[] = {NULL};
    const char *sub = r->route.sub;
    if (strcmp(sub, "snapshot") == 0) {
        if (api_query_only(r, none) == 0)
            api_h_backup(r);
    } else if (strcmp(sub, "move-leader") == 0) {
        if (api_query_only(r, none) == 0)
            move_leader(r);
    } else if (strcmp(sub, "defrag") == 0) {
        if (api_query_only(r, none) == 0)
            api_h_defrag(r);
    } else if (strcmp(sub, "hash") == 0) {
        if (api_query_only(r, hash_params) == 0)
            hash(r);
    } else if (strcmp(sub, "disarm") == 0) {
        if (api_query_only(r, none) == 0)
            disarm(r);
    } else {
        bool serializable = false;
        if (api_query_only(r, list_params) < 0 ||
            api_query_bool(r, "serializable", &serializable) < 0)
            return;
        if (serializable)
            list_alarms(r);
        else
            api_wait_barrier(r, list_alarms);
    }
}
