/* gw_maint: the gateway's maintenance/alarm (GET, ACTIVATE, DEACTIVATE),
 * maintenance/hash, maintenance/defragment and
 * maintenance/transfer-leadership — etcd's Alarm, Hash, Defragment and
 * MoveLeader onto raftkv's replicated alarms, its hash of the key-value
 * state (the one the corruption checker compares), kv_defrag and
 * node_move_leader. Must never clear an alarm a member still has a cause
 * for without it being proposed like any other alarm change. */
#include "api/v3/gw.h"

#include <stdlib.h>

static const char *const actions[] = {"GET", "ACTIVATE", "DEACTIVATE", NULL};
/* etcd's AlarmType numbers are raftkv's enum kv_alarm_type */
static const char *const alarm_names[] = {"NONE", "NOSPACE", "CORRUPT", NULL};

static json_t *alarm_json(uint64_t member, int type)
{
    return json_pack("{s:o,s:s}", "memberID", gw_int((int64_t)member), "alarm",
                     alarm_names[type]);
}

/* etcd answers an empty list as {} (no header either). */
static void reply_alarms(api_req *r, const kv_alarm *a, size_t n, int64_t rev)
{
    if (n == 0) {
        gw_reply(r, json_object());
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, alarm_json(a[i].member_id, a[i].type)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    gw_reply(r, arr ? json_pack("{s:o,s:o}", "header", gw_header(r, rev), "alarms", arr) : NULL);
}

static void do_list(api_req *r)
{
    kv_conn *c = gw_reader(r);
    if (!c)
        return;
    kv_alarm *a = NULL;
    size_t n = 0;
    int rc = kv_alarms_list(c, &a, &n);
    kv_reader_release(r->a->kv, c);
    if (rc != KV_OK)
        gw_reply_kv_error(r, rc);
    else
        reply_alarms(r, a, n, -1);
    free(a);
}

/* After ACTIVATE or DEACTIVATE: the alarm changed, as etcd lists it. */
static void finish_change(api_req *r)
{
    if (gw_write_failed(r))
        return;
    kv_alarm one = {.member_id = r->chosen_id, .type = (int)r->op.lease};
    reply_alarms(r, &one, r->raw ? 1 : 0, r->res->revision);
}

void gw_alarm(api_req *r)
{
    json_t *o = gw_body(r);
    int action = 0, type = 0;
    int64_t member = 0;
    if (!o || gw_enum(r, o, "action", actions, &action) < 0 ||
        gw_enum(r, o, "alarm", alarm_names, &type) < 0 || gw_i64(r, o, "memberID", &member) < 0)
        return;
    if (action == 0) {
        api_wait_barrier(r, do_list);
        return;
    }
    if (type == 0 || member < 0) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: invalid alarm request");
        return;
    }
    bool active = kv_alarms_active(r->a->kv) & KV_ALARM_BIT(type);
    int kv_action = action == 1 ? KV_ALARM_ACTIVATE : KV_ALARM_DEACTIVATE;
    /* what to list afterwards: the alarm, unless a deactivation found none */
    r->raw = action == 1 || active;
    r->chosen_id = (uint64_t)member;
    r->op.lease = type;
    buf cmd;
    buf_init(&cmd);
    api_propose_encoded(r, kv_encode_alarm(kv_action, (uint64_t)member, type, &cmd), &cmd,
                        finish_change);
    buf_free(&cmd);
}

static void do_hash(api_req *r)
{
    kv_conn *c = gw_reader(r);
    if (!c)
        return;
    uint32_t hash = 0;
    int64_t compact = 0, rev = 0;
    int rc = kv_hash(c, 0, &hash, &compact, &rev);
    kv_reader_release(r->a->kv, c);
    if (rc != KV_OK)
        gw_reply_kv_error(r, rc);
    else /* a uint32: a JSON number in etcd's mapping */
        gw_reply(r, json_pack("{s:o,s:I}", "header", gw_header(r, rev), "hash", (json_int_t)hash));
}

void gw_hash(api_req *r)
{
    if (gw_body(r))
        api_wait_barrier(r, do_hash);
}

/* ---- defragment: kv_defrag off every loop (offthread.c) ---- */

static void defrag_done(api_req *r)
{
    int rc;
    api_defrag_state *d = api_offthread_state(r, &rc);
    if (rc != KV_OK) {
        log_error("defragment: %s", d->msg);
        gw_reply_error(r, GW_UNKNOWN, rc == KV_ERR_INVALID ? d->msg : "etcdserver: defragment failed");
        return;
    }
    gw_reply(r, json_object()); /* etcd 3.4 answers {} */
}

void gw_defragment(api_req *r)
{
    if (gw_body(r))
        api_offthread(r, sizeof(api_defrag_state), NULL, api_defrag_work, defrag_done);
}

/* ---- transfer-leadership: node_move_leader (any member forwards it) ---- */

static void moved(api_req *r)
{
    if (r->status == NODE_ERR_NOT_FOUND)
        gw_reply_error(r, GW_FAILED_PRECONDITION, "etcdserver: bad leader transferee");
    else if (r->status != NODE_OK)
        gw_reply_node_error(r, r->status);
    else
        gw_reply(r, json_pack("{s:o}", "header", gw_header(r, -1)));
}

void gw_move_leader(api_req *r)
{
    json_t *o = gw_body(r);
    int64_t to = 0;
    if (!o || gw_i64(r, o, "targetID", &to) < 0)
        return;
    if (to <= 0) {
        gw_reply_error(r, GW_FAILED_PRECONDITION, "etcdserver: bad leader transferee");
        return;
    }
    api_wait_move(r, (uint64_t)to, moved);
}
