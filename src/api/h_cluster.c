/* h_cluster: membership (raftexample POST/DELETE /{id} and /members...),
 * /status, /health and /metrics.
 *
 * Must never: pass an unchecked peer URL to the node, or block on Raft —
 * membership changes and linearizable member lists wait suspended.
 */
#include "api/api_int.h"
#include "api/input.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_VERSION "0.1.0"
#define HEALTH_MAX_SILENCE_MS 5000 /* about 3 election timeouts */

/* http://host:port[/] (https:// when this cluster's peers use TLS: a
 * member of the other kind could never talk to the rest) with a plain
 * hostname or IPv4/[IPv6] and a port 1..65535; nothing else (no user info,
 * path or query). */
bool api_valid_peer_url(const char *url, bool tls)
{
    const char *scheme = tls ? "https://" : "http://";
    if (strncmp(url, scheme, strlen(scheme)) != 0)
        return false;
    const char *h = url + strlen(scheme), *p = h;
    if (*p == '[') {
        p++;
        while (isxdigit((unsigned char)*p) || *p == ':' || *p == '.')
            p++;
        if (*p++ != ']' || p - h < 3)
            return false;
    } else {
        while (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_')
            p++;
        if (p == h)
            return false;
    }
    if (*p++ != ':')
        return false;
    const char *port = p;
    while (isdigit((unsigned char)*p))
        p++;
    uint64_t v;
    if (!api_parse_id(port, (size_t)(p - port), 65535, &v))
        return false;
    return *p == 0 || (p[0] == '/' && p[1] == 0);
}

/* ---- finishing a membership change ---- */

static void finish_root(api_req *r)
{
    if (r->status != NODE_OK)
        api_reply_node_error(r, r->status);
    else
        api_reply_empty(r, 204);
}

static void finish_added(api_req *r)
{
    if (r->status != NODE_OK) {
        api_reply_node_error(r, r->status);
        return;
    }
    json_t *m = json_pack("{s:I,s:[s],s:b}", "id", (json_int_t)r->chosen_id, "peer_urls", r->url,
                          "is_learner", r->is_learner);
    api_reply_json(r, 201, json_pack("{s:o,s:o}", "header", api_json_header(r->a, -1), "member", m));
}

static void finish_plain(api_req *r)
{
    if (r->status != NODE_OK)
        api_reply_node_error(r, r->status);
    else
        api_reply_json(r, 200, json_pack("{s:o}", "header", api_json_header(r->a, -1)));
}

/* ---- raftexample: POST /{id} body=url, DELETE /{id} ---- */

static int take_url(api_req *r, const char *s, size_t n)
{
    r->url = xmemdup(s, n + 1);
    if (!r->url) {
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return -1;
    }
    r->url[n] = 0;
    if (strlen(r->url) != n || !api_valid_peer_url(r->url, r->a->peer_tls)) {
        api_reply_error(r, 400, "invalid_peer_url", NULL, "peer URL: expected %s://host:port",
                        r->a->peer_tls ? "https" : "http");
        return -1;
    }
    return 0;
}

/* Member routes take no query parameters and need a valid id; answers the
 * error itself when not. */
static bool member_request_ok(api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) < 0)
        return false;
    if (!r->route.id_ok) {
        api_reply_error(r, 400, "invalid_member_id", NULL,
                        "member id: expected a number from 1 to 2^53");
        return false;
    }
    return true;
}

void api_h_root_member(api_req *r)
{
    if (!member_request_ok(r))
        return;
    if (strcmp(r->method, "DELETE") == 0) {
        api_wait_member(r, KV_MEMBER_REMOVE, r->route.id, finish_root);
        return;
    }
    size_t n = r->body.len; /* `echo url | curl -d @-` leaves a newline */
    while (n && isspace(r->body.data[n - 1]))
        n--;
    if (take_url(r, (const char *)(n ? r->body.data : (const uint8_t *)""), n) == 0)
        api_wait_member(r, KV_MEMBER_ADD, r->route.id, finish_root);
}

/* ---- /members ---- */

static json_t *members_json(const kv_member *m, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *o = json_pack("{s:I,s:[s],s:b}", "id", (json_int_t)m[i].id, "peer_urls",
                              m[i].peer_url ? m[i].peer_url : "", "is_learner", m[i].is_learner);
        if (json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

static void list_members(api_req *r)
{
    if (r->status != NODE_OK) {
        api_reply_node_error(r, r->status);
        return;
    }
    kv_conn *c = kv_reader_acquire(r->a->kv);
    kv_member *m = NULL;
    size_t n = 0;
    int err = c ? kv_members(c, &m, &n) : KV_ERR_INTERNAL;
    if (c)
        kv_reader_release(r->a->kv, c);
    if (err != KV_OK) {
        api_reply_kv_error(r, err, 0);
        return;
    }
    api_reply_json(r, 200, json_pack("{s:o,s:o}", "header", api_json_header(r->a, -1), "members",
                                     members_json(m, n)));
    kv_members_free(m, n);
}

static int parse_add(api_req *r, json_t *doc)
{
    json_t *urls = json_object_get(doc, "peer_urls"), *learner = json_object_get(doc, "is_learner");
    const char *name;
    json_t *v;
    json_object_foreach(doc, name, v) {
        if (strcmp(name, "peer_urls") != 0 && strcmp(name, "is_learner") != 0) {
            api_reply_error(r, 400, "invalid_argument", NULL, "%.64s: unknown field", name);
            return -1;
        }
    }
    if (learner && !json_is_boolean(learner)) {
        api_reply_error(r, 400, "invalid_argument", NULL, "is_learner: expected true or false");
        return -1;
    }
    r->is_learner = json_is_true(learner);
    /* a member has one peer URL here (the transport dials one address) */
    if (!json_is_array(urls) || json_array_size(urls) != 1 ||
        !json_is_string(json_array_get(urls, 0))) {
        api_reply_error(r, 400, "invalid_argument", NULL, "peer_urls: expected one URL string");
        return -1;
    }
    json_t *u = json_array_get(urls, 0);
    return take_url(r, json_string_value(u), json_string_length(u));
}

void api_h_members(api_req *r)
{
    static const char *const get_params[] = {"serializable", NULL}, *const none[] = {NULL};
    bool get = strcmp(r->method, "GET") == 0, serializable = false;
    if (api_query_only(r, get ? get_params : none) < 0)
        return;
    if (get) {
        if (api_query_bool(r, "serializable", &serializable) < 0)
            return;
        if (serializable)
            list_members(r); /* r->status is NODE_OK (zero) */
        else
            api_wait_barrier(r, list_members);
        return;
    }
    json_t *doc = api_body_json(r);
    if (!doc)
        return;
    if (parse_add(r, doc) == 0)
        api_wait_member(r, r->is_learner ? KV_MEMBER_ADD_LEARNER : KV_MEMBER_ADD, 0, finish_added);
    json_decref(doc);
}

void api_h_member(api_req *r)
{
    if (!member_request_ok(r))
        return;
    int op = r->route.kind == ROUTE_MEMBER_PROMOTE ? KV_MEMBER_PROMOTE : KV_MEMBER_REMOVE;
    api_wait_member(r, op, r->route.id, finish_plain);
}

/* ---- /status, /health, /metrics ---- */

void api_h_status(api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) < 0)
        return;
    node_info i;
    node_get_info(r->a->node, &i);
    api_reply_json(r, 200, json_pack("{s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:s}", "header",
                                     api_json_header(r->a, i.revision), "member_id",
                                     (json_int_t)i.member_id, "leader", (json_int_t)i.leader,
                                     "raft_term", (json_int_t)i.raft_term, "raft_index",
                                     (json_int_t)i.raft_index, "raft_applied_index",
                                     (json_int_t)i.applied_index, "revision",
                                     (json_int_t)i.revision, "compact_revision",
                                     (json_int_t)i.compact_revision, "db_size",
                                     (json_int_t)i.db_size, "db_size_in_use",
                                     (json_int_t)i.db_size_in_use, "is_learner", i.is_learner,
                                     "version", API_VERSION));
}

void api_h_health(api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) < 0)
        return;
    node_info i;
    node_get_info(r->a->node, &i);
    const char *why = !i.leader ? "no_leader"
                      : i.ms_since_apply_or_heartbeat >= HEALTH_MAX_SILENCE_MS ? "stale"
                                                                                : NULL;
    uint32_t alarms = kv_alarms_active(r->a->kv);
    /* A member that found a bad row of its own is unhealthy now, not once
     * the CORRUPT alarm it proposed has come back through Raft: the leader
     * applies it first, and this member may be the last to. */
    if (kv_corruption_seen(r->a->kv, NULL, 0))
        alarms |= KV_ALARM_BIT(KV_ALARM_CORRUPT);
    if (!why && alarms) {
        /* etcd's "ALARM NOSPACE": the alarm names itself */
        bool nospace = alarms & KV_ALARM_BIT(KV_ALARM_NOSPACE);
        const char *name = nospace ? "NOSPACE" : "CORRUPT";
        api_reply_error_with(r, 503, "alarm", json_pack("{s:b,s:s}", "health", false, "alarm", name),
                             "unhealthy: alarm %s%s", name,
                             nospace && (alarms & KV_ALARM_BIT(KV_ALARM_CORRUPT)) ? " and CORRUPT" : "");
        return;
    }
    if (why)
        api_reply_error_with(r, 503, why, json_pack("{s:b}", "health", false), "unhealthy: %s",
                             why);
    else
        api_reply_json(r, 200, json_pack("{s:b,s:o}", "health", true, "header",
                                         api_json_header(r->a, i.revision)));
}

static void metric(buf *b, bool *failed, const char *name, const char *type, uint64_t v)
{
    char line[256];
    int n = snprintf(line, sizeof line, "# TYPE %s %s\n%s %" PRIu64 "\n", name, type, name, v);
    if (n < 0 || (size_t)n >= sizeof line || buf_append(b, line, (size_t)n) < 0)
        *failed = true;
}

void api_h_metrics(api_req *r)
{
    static const char *const none[] = {NULL};
    static const char *const classes[API_CODE_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    if (api_query_only(r, none) < 0)
        return;
    node_info i;
    node_get_info(r->a->node, &i);
    buf b;
    buf_init(&b);
    bool failed = false;
    metric(&b, &failed, "raftkv_member_id", "gauge", i.member_id);
    metric(&b, &failed, "raftkv_leader_id", "gauge", i.leader);
    metric(&b, &failed, "raftkv_is_leader", "gauge", i.leader != 0 && i.leader == i.member_id);
    metric(&b, &failed, "raftkv_is_learner", "gauge", i.is_learner);
    metric(&b, &failed, "raftkv_raft_term", "gauge", i.raft_term);
    metric(&b, &failed, "raftkv_raft_index", "gauge", i.raft_index);
    metric(&b, &failed, "raftkv_raft_commit_index", "gauge", i.commit_index);
    metric(&b, &failed, "raftkv_raft_applied_index", "gauge", i.applied_index);
    metric(&b, &failed, "raftkv_revision", "gauge", (uint64_t)i.revision);
    metric(&b, &failed, "raftkv_compact_revision", "gauge", (uint64_t)i.compact_revision);
    metric(&b, &failed, "raftkv_db_size_bytes", "gauge", i.db_size);
    metric(&b, &failed, "raftkv_db_size_in_use_bytes", "gauge", i.db_size_in_use);
    metric(&b, &failed, "raftkv_proposals_total", "counter", i.proposals_total);
    metric(&b, &failed, "raftkv_proposals_refused_total", "counter", i.proposals_refused_total);
    metric(&b, &failed, "raftkv_applied_total", "counter", i.applied_total);
    metric(&b, &failed, "raftkv_reads_total", "counter", i.reads_total);
    metric(&b, &failed, "raftkv_read_rounds_total", "counter", i.read_rounds_total);
    metric(&b, &failed, "raftkv_peer_batches_held_total", "counter", i.peer_batches_held_total);
    metric(&b, &failed, "raftkv_peer_order_gaps_total", "counter", i.peer_gaps_total);
    metric(&b, &failed, "raftkv_kv_commits_total", "counter", i.kv_commits_total);
    watch_hub *hub = r->a->hub;
    metric(&b, &failed, "raftkv_watchers", "gauge", hub ? watch_count(hub) : 0);
    static const char hand[] = "# TYPE raftkv_handoffs_total counter\n";
    failed |= buf_append(&b, hand, sizeof hand - 1) < 0;
    for (int k = 0; k < HANDOFF_KINDS; k++) {
        char line[128];
        int n = snprintf(line, sizeof line, "raftkv_handoffs_total{to=\"%s\"} %llu\n",
                         handoff_name(k), (unsigned long long)handoff_total(k));
        failed |= n < 0 || buf_append(&b, line, (size_t)n) < 0;
    }
    metric(&b, &failed, "raftkv_peer_requests_total", "counter", node_peer_requests(r->a->node));
    static const char head[] = "# TYPE raftkv_http_responses_total counter\n";
    failed |= buf_append(&b, head, sizeof head - 1) < 0;
    for (int k = 0; k < API_CODE_CLASSES; k++) {
        char line[128];
        int n = snprintf(line, sizeof line, "raftkv_http_responses_total{code=\"%s\"} %llu\n",
                         classes[k], (unsigned long long)atomic_load(&r->a->answers[k]));
        failed |= n < 0 || buf_append(&b, line, (size_t)n) < 0;
    }
    if (failed)
        api_reply_error(r, 500, "internal", NULL, "out of memory");
    else
        api_reply_raw(r, 200, "text/plain; version=0.0.4", b.data, b.len, NULL);
    buf_free(&b);
}
