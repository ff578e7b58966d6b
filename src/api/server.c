/* server: the libmicrohttpd listener and the life of one request — route,
 * size checks, body accumulation, dispatch, and the suspend/resume dance
 * with the node.
 *
 * Must never: block an MHD thread on Raft, buffer more than max_body bytes
 * of a body, resume a connection MHD has already finished, or free a
 * request while MHD or a node callback can still reach it (refcount).
 */
#include "api/api_int.h"
#include "auth/auth.h"

#include "util/failpoint.h"
#include "util/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define API_CONN_MIN 64
#define API_CONN_MAX 65536
#define API_FD_RESERVE 256 /* SQLite, peer sockets, transport, logs */
#define API_CONN_TIMEOUT_S 60
#define API_READ_MS_DEFAULT 10000 /* --request-read-timeout-ms */

static void req_unref(api_req *r)
{
    pthread_mutex_lock(&r->mu);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (!last)
        return;
    if (r->ext_free)
        r->ext_free(r); /* first: it may stop a waker that locks r->mu */
    pthread_mutex_destroy(&r->mu);
    api_route_free(&r->route);
    buf_free(&r->body);
    if (r->res) {
        kv_result_free(r->res);
        free(r->res);
    }
    free(r->end);
    free(r->url);
    buf_free(&r->idem_stamp);
    json_decref(r->doc);
    api_arena_free(&r->arena);
    free(r);
}

/* ---- waiting on the node ----
 *
 * A waiting request is on the api's list (holding a ref) so that api_stop
 * can resume it: MHD refuses to stop with suspended connections. Exactly
 * one of the node callback and api_stop resumes it, decided under r->mu
 * (r->resumed); the callback never touches the api, which may be gone. */

static void req_ref(api_req *r)
{
    pthread_mutex_lock(&r->mu);
    r->refs++;
    pthread_mutex_unlock(&r->mu);
}

/* Caller holds a->mu. */
static void unlink_locked(api *a, api_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        a->waiting = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->listed = false;
}

/* Drops r from the list, if it is still there (MHD thread). */
static void unlist(api_req *r)
{
    api *a = r->a;
    pthread_mutex_lock(&a->mu);
    bool was = r->listed;
    if (was)
        unlink_locked(a, r);
    pthread_mutex_unlock(&a->mu);
    if (was)
        req_unref(r);
}

/* Suspends before submitting: the callback may fire on the node thread
 * before node_* even returns, and must then find the connection suspended.
 * Returns false (after answering 503) once the api is stopping. */
static bool begin_wait(api_req *r, api_handler_fn then, bool cb_ref)
{
    api *a = r->a;
    pthread_mutex_lock(&r->mu); /* a request may wait more than once */
    r->resumed = false;
    r->cb_done = false;
    kv_result *old = r->res;
    r->res = NULL;
    pthread_mutex_unlock(&r->mu);
    if (old) {
        kv_result_free(old);
        free(old);
    }
    pthread_mutex_lock(&a->mu);
    bool stopping = a->stopping;
    if (!stopping) {
        r->next = a->waiting;
        if (a->waiting)
            a->waiting->prev = r;
        a->waiting = r;
        r->listed = true;
    }
    pthread_mutex_unlock(&a->mu);
    if (stopping) {
        api_reply_error(r, 503, "stopping", NULL, "the server is shutting down");
        return false;
    }
    r->resume = then;
    req_ref(r); /* the list's */
    if (cb_ref)
        req_ref(r); /* the callback's */
    MHD_suspend_connection(r->conn);
    return true;
}

/* Resumes r unless someone already did; MHD cannot have finished a
 * suspended connection, so r->conn is valid while r->resumed is false. */
static void resume_once(api_req *r)
{
    pthread_mutex_lock(&r->mu);
    if (!r->resumed) {
        r->resumed = true;
        handoff_count(HANDOFF_CLIENT);
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
}

/* Runs on the node thread: store, wake, drop the callback's ref. */
static void finish_wait(api_req *r, int status, kv_result *res)
{
    pthread_mutex_lock(&r->mu);
    r->status = status;
    r->res = res;
    r->cb_done = true;
    pthread_mutex_unlock(&r->mu);
    resume_once(r);
    req_unref(r);
}

static void on_write(void *ud, int status, kv_result *res)
{
    if (status != NODE_OK && res) { /* the contract says NULL; be safe */
        kv_result_free(res);
        free(res);
        res = NULL;
    }
    finish_wait(ud, status, res);
}

static void on_done(void *ud, int status) { finish_wait(ud, status, NULL); }

/* FNV-1a over what makes a request this request: method, path, query
 * arguments and body (an Idempotency-Key reused for another one is 422). */
static enum MHD_Result fp_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    (void)kind;
    uint64_t *h = cls;
    *h = fnv64_more(*h, key, strlen(key) + 1);
    *h = fnv64_more(*h, value ? value : "", value ? strlen(value) + 1 : 1);
    return MHD_YES;
}

static uint64_t fingerprint(api_req *r)
{
    uint64_t h = r->url_fp;
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, fp_arg, &h);
    return fnv64_more(h, r->body.data ? r->body.data : (const uint8_t *)"", r->body.len);
}

static const char *idem_key(api_req *r)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
}

static void reply_bad_idem_key(api_req *r)
{
    api_reply_error(r, 400, "invalid_argument", NULL,
                    "Idempotency-Key: 1 to %d printable ASCII characters", KV_IDEM_KEY_MAX);
}

/* With an Idempotency-Key header, the command runs once per key
 * (kv_idem.c); 0, or -1 after a 400. */
static int idempotent(api_req *r, const buf *cmd, buf *out)
{
    const char *key = idem_key(r);
    if (!key)
        return 0;
    if (kv_encode_idem(key, fingerprint(r), now_wall_ms(), cmd->data, cmd->len, out) != KV_OK) {
        reply_bad_idem_key(r);
        return -1;
    }
    return 1;
}

void api_wait_propose(api_req *r, const buf *cmd, api_handler_fn then)
{
    buf tmp, idem;
    buf_init(&tmp);
    buf_init(&idem);
    const buf *c = api_auth_wrap(r, cmd, &tmp); /* run as the caller once auth is on */
    int with_key = c ? idempotent(r, c, &idem) : 0;
    if (!c)
        api_reply_error(r, 500, "internal", NULL, "cannot encode the command");
    else if (with_key >= 0 && begin_wait(r, then, true))
        node_propose(r->a->node, with_key ? idem.data : c->data, with_key ? idem.len : c->len,
                     on_write, r);
    buf_free(&tmp);
    buf_free(&idem);
}

void api_wait_barrier(api_req *r, api_handler_fn then)
{
    if (begin_wait(r, then, true))
        node_read_barrier(r->a->node, on_done, r);
}

void api_wait_move(api_req *r, uint64_t to, api_handler_fn then)
{
    if (begin_wait(r, then, true))
        node_move_leader(r->a->node, to, on_done, r);
}

static void change_member(api_req *r, int op, uint64_t id, const buf *stamp, api_handler_fn then)
{
    if (begin_wait(r, then, true))
        node_change_member(r->a->node, op, id, r->url, stamp, &r->chosen_id, on_done, r);
}

/* A membership change is checked against the node's own view of the
 * members (404 for an unknown one, 400 for an id in use), so it waits for
 * a read barrier first: then that view has every change committed before
 * the request came, and a node behind or cut off from the leader cannot
 * answer 404 for a member it has not heard of yet (it answers 503 when
 * the barrier cannot complete).
 * A conf entry cannot be wrapped in an IDEM command either: after the
 * barrier, a key kept by an applied change answers as that change did
 * (its member's id); otherwise the change is proposed with the key's
 * stamp, kept when it applies. A retry that overlaps the first attempt
 * finds it pending (409 membership_change_in_progress). */
static void member_after_barrier(api_req *r)
{
    if (r->status != NODE_OK) {
        r->member_then(r);
        return;
    }
    const char *key = idem_key(r);
    if (!key) {
        change_member(r, r->member_op, r->member_id, NULL, r->member_then);
        return;
    }
    uint64_t member = 0;
    kv_conn *c = kv_reader_acquire(r->a->kv);
    int rc = c ? kv_idem_find_member(c, key, r->idem_fp, now_wall_ms(), &member)
               : KV_ERR_INTERNAL;
    if (c)
        kv_reader_release(r->a->kv, c);
    if (rc == 1) {
        r->chosen_id = member;
        r->member_then(r); /* r->status is NODE_OK */
    } else if (rc < 0) {
        api_reply_kv_error(r, rc, 0);
    } else {
        change_member(r, r->member_op, r->member_id, &r->idem_stamp, r->member_then);
    }
}

void api_wait_member(api_req *r, int op, uint64_t id, api_handler_fn then)
{
    const char *key = idem_key(r);
    if (key) {
        r->idem_fp = fingerprint(r);
        if (kv_encode_idem_stamp(key, r->idem_fp, now_wall_ms(), &r->idem_stamp) != KV_OK) {
            reply_bad_idem_key(r);
            return;
        }
    }
    r->member_op = op;
    r->member_id = id;
    r->member_then = then;
    api_wait_barrier(r, member_after_barrier);
}

bool api_wait_external(api_req *r, api_handler_fn then) { return begin_wait(r, then, false); }

/* A client that hangs up while parked goes unnoticed by MHD until its
 * answer is written, so peek (MSG_PEEK takes nothing MHD has yet to
 * read): end of stream or a socket error means the client is gone. A
 * client that half-closes its side while still reading counts as gone;
 * HTTP clients do not do that. */
bool api_client_gone(api_req *r) { return api_conn_gone(r->conn); }

bool api_conn_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void api_reply_gone(api_req *r)
{
    /* nobody reads it; it closes the request */
    api_reply_error(r, 499, "client_gone", NULL, "the client closed its connection");
}

void api_wake(api_req *r)
{
    pthread_mutex_lock(&r->mu);
    r->status = NODE_OK;
    r->cb_done = true;
    pthread_mutex_unlock(&r->mu);
    resume_once(r);
}

/* A resumed request: answer from the callback's result, or 503 if
 * api_stop woke it first. */
static void after_wait(api_req *r)
{
    unlist(r);
    pthread_mutex_lock(&r->mu);
    bool done = r->cb_done;
    pthread_mutex_unlock(&r->mu);
    api_handler_fn then = r->resume;
    r->resume = NULL;
    if (done)
        then(r);
    else
        api_reply_error(r, 503, "stopping", NULL, "the server is shutting down");
}

/* While NOSPACE is active, a write that adds data would only be refused
 * at apply, after costing a log entry on every member: refuse it here.
 * Likewise while this node's disk is full (the alarm may not have been
 * written anywhere yet). */
static bool refused_for_space(api_req *r, const buf *cmd)
{
    bool no_space = (kv_alarms_active(r->a->kv) & KV_ALARM_BIT(KV_ALARM_NOSPACE)) ||
                    node_disk_full(r->a->node);
    if (!no_space || !kv_cmd_adds_data(cmd->data, cmd->len))
        return false;
    api_reply_kv_error(r, KV_ERR_NO_SPACE, 0);
    return true;
}

void api_propose_encoded(api_req *r, int err, const buf *cmd, api_handler_fn then)
{
    if (err == KV_OK && refused_for_space(r, cmd))
        return;
    if (err == KV_OK)
        api_wait_propose(r, cmd, then);
    else if (err == KV_ERR_INVALID)
        api_reply_error(r, 400, "invalid_argument", NULL, "request: refused as invalid");
    else
        api_reply_error(r, 500, "internal", NULL, "cannot encode the command");
}

bool api_write_failed(api_req *r)
{
    if (r->status != NODE_OK || !r->res) {
        api_reply_node_error(r, r->status != NODE_OK ? r->status : NODE_ERR_INTERNAL);
        return true;
    }
    if (r->res->err != KV_OK) {
        api_reply_kv_error(r, r->res->err, r->res->compact_revision);
        return true;
    }
    return false;
}

/* ---- dispatch ---- */

static const api_handler_fn handlers[] = {
    [ROUTE_ROOT_KEY] = api_h_root_key,
    [ROUTE_ROOT_MEMBER] = api_h_root_member,
    [ROUTE_KV] = api_h_kv,
    [ROUTE_TXN] = api_h_txn,
    [ROUTE_COMPACT] = api_h_compact,
    [ROUTE_WATCH] = api_h_watch,
    [ROUTE_LEASE] = api_h_lease,
    [ROUTE_MEMBERS] = api_h_members,
    [ROUTE_MEMBER] = api_h_member,
    [ROUTE_MEMBER_PROMOTE] = api_h_member,
    [ROUTE_STATUS] = api_h_status,
    [ROUTE_HEALTH] = api_h_health,
    [ROUTE_METRICS] = api_h_metrics,
    [ROUTE_LOCK] = api_h_lock,
    [ROUTE_ELECTION] = api_h_election,
    [ROUTE_ELECTION_OBSERVE] = api_h_observe,
    [ROUTE_MAINT] = api_h_maint,
    [ROUTE_V3] = api_h_v3,
    [ROUTE_VERSION] = api_h_version,
    [ROUTE_AUTH] = api_h_auth,
};

/* Answers what can be answered from the request line and headers alone,
 * so a rejected request never has its body read. */
static void early_checks(api_req *r)
{
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (r->route_oom) {
        api_reply_error(r, 500, "internal", NULL, "out of memory");
    } else if (r->route_bad) {
        api_reply_error(r, 400, "invalid_path", NULL, "path: bad percent-encoding");
    } else if (r->route.kind == ROUTE_NONE) {
        api_reply_error(r, 404, "not_found", NULL, "no such route");
    } else if (!r->route.method_ok) {
        api_reply_405(r);
    } else if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || n > r->a->max_body) {
            r->too_large = true;
            api_reply_error(r, 413, "request_too_large", NULL, "body exceeds %zu bytes",
                            r->a->max_body);
        }
    }
    if (!r->replied)
        api_auth_gate(r); /* answers 401/403/429 itself */
}

/* The con_cls of a request whose api_req could not be allocated: it was
 * answered 500 at once, and its body is read and dropped. */
static char no_context;

static enum MHD_Result first_call(api *a, struct MHD_Connection *conn, const char *url,
                                  const char *method, void **con_cls)
{
    api_req *r = failpoint_hit("api.request") ? NULL : calloc(1, sizeof *r);
    if (!r || pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        *con_cls = &no_context;
        return api_reply_no_context(a, conn);
    }
    r->a = a;
    r->conn = conn;
    r->refs = 1;
    r->method = method;
    buf_init(&r->body);
    int routed = api_route_match(method, url, &r->route);
    r->route_bad = routed == -1;
    r->route_oom = routed < -1;
    r->url_fp = fnv64_more(fnv64_more(FNV64_INIT, method, strlen(method) + 1), url, strlen(url));
    *con_cls = r;
    early_checks(r);
    return r->queue_failed ? MHD_NO : MHD_YES;
}

/* Keeps at most max_body bytes. Past that, libmicrohttpd (0.9.x) will not
 * queue an answer until the body is read, so the rest is drained without
 * being stored and 413 is answered at its end; a body that goes on for
 * more than API_DRAIN_FACTOR limits gets its connection closed instead. */
#define API_DRAIN_FACTOR 4

static bool take_body(api_req *r, const char *data, size_t n)
{
    if (r->replied || r->too_large || r->body_oom) {
        r->drained += n;
        return r->drained / API_DRAIN_FACTOR <= r->a->max_body;
    }
    if (n > r->a->max_body - r->body.len) {
        r->too_large = true;
        r->drained = r->body.len + n;
        buf_free(&r->body);
        return true;
    }
    if (buf_append(&r->body, data, n) < 0) { /* out of memory: 500 at the body's end */
        r->body_oom = true;
        r->drained = r->body.len + n;
        buf_free(&r->body);
    }
    return true;
}

/* The whole request is in (MHD's last call for it, and the calls after a
 * wait): stop its connection's receive deadline, then answer. */
static void after_body(api_req *r)
{
    if (!r->received) {
        r->received = true;
        api_guard_received(&r->a->guard, r->conn);
    }
    if (r->replied) {
        /* already answered (413 mid-body); nothing more to do */
    } else if (r->too_large) {
        api_reply_error(r, 413, "request_too_large", NULL, "body exceeds %zu bytes",
                        r->a->max_body);
    } else if (r->body_oom) {
        api_reply_error(r, 500, "internal", NULL, "out of memory");
    } else if (r->resume) {
        after_wait(r);
    } else {
        handlers[r->route.kind](r);
    }
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    api_req *r = *con_cls;
    if (!r)
        return first_call(cls, conn, url, method, con_cls);
    if (r == (api_req *)&no_context) {
        if (*upload_data_size)
            *upload_data_size = 0; /* dropped */
        else
            api_guard_received(&((api *)cls)->guard, conn);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!take_body(r, upload_data, *upload_data_size))
            return MHD_NO;
        *upload_data_size = 0;
    } else {
        after_body(r);
    }
    return r->queue_failed ? MHD_NO : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    api_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    api_guard_next(&((api *)cls)->guard, conn); /* keep-alive: the next request's clock */
    if (r == (api_req *)&no_context)
        return;
    unlist(r);
    req_unref(r);
}

/* The client connection cap follows the fd limit the operator granted
 * (ulimit -n) less a reserve for everything else the process opens: each
 * watch stream holds a connection, so a fixed cap would bound streams
 * below what the limit allows, and a cap above it would let accept() take
 * the fds SQLite and the transport need. */
static unsigned conn_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return API_CONN_MAX;
    if (rl.rlim_cur < API_CONN_MIN + API_FD_RESERVE)
        return API_CONN_MIN;
    rlim_t n = rl.rlim_cur - API_FD_RESERVE;
    return n > API_CONN_MAX ? API_CONN_MAX : (unsigned)n;
}

/* Paths arrive still percent-encoded: the router decodes them itself, so
 * it can refuse bad escapes and keep "%2F" and "%00" inside one key. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s) { return strlen(s); }

/* Per connection: MHD's buffer for the request line and headers (a larger
 * header block is answered 431), plus at most max_request_bytes of body. */
#define API_CONN_MEMORY (32 * 1024)

/* libmicrohttpd's own error lines (a failed TLS handshake, a reset): at
 * most one a second, with a level and the node id (util.h) */
static log_limited mhd_log = {.what = "api: client listener"};

static int open_tls(const api_config *cfg, char *err, size_t errlen)
{
    tls_files files = {
        .cert_file = cfg->cert_file,
        .key_file = cfg->key_file,
        .ca_file = cfg->ca_file,
        .verify = !cfg->ca_file            ? TLS_VERIFY_NONE
                  : cfg->client_cert_auth ? TLS_VERIFY_REQUIRED
                                          : TLS_VERIFY_OPTIONAL,
    };
    return tls_open(TLS_SLOT_CLIENT, &files, err, errlen);
}

/* One address may hold at most half the connections, so one busy or
 * hostile host always leaves room for the others. */
static unsigned per_address_limit(const api_config *cfg, unsigned cap)
{
    unsigned n = cfg->max_conns_per_address;
    return n > cap / 2 ? cap / 2 : n;
}

static struct MHD_Daemon *start_daemon(api *a, const api_config *cfg,
                                       struct sockaddr_storage *ss)
{
    unsigned cap = conn_limit();
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_AUTO;
    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (a->tls)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)log_limited_va, &mhd_log},
        {MHD_OPTION_SOCK_ADDR, 0, ss},
        {MHD_OPTION_THREAD_POOL_SIZE, cfg->threads ? cfg->threads : 1, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, cap, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_address_limit(cfg, cap), NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, API_CONN_MEMORY, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, API_CONN_TIMEOUT_S, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, a},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)api_guard_notify, &a->guard},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)keep_escaped, NULL},
        {a->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, 0,
         (void *)tls_cert_callback(TLS_SLOT_CLIENT)},
        {MHD_OPTION_END, 0, NULL},
    };
    return MHD_start_daemon(flags, cfg->port, NULL, NULL, on_access, a, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
}

static int start_listener(api *a, const api_config *cfg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (net_listen_addr(cfg->host, cfg->port, &ss, err, errlen) < 0)
        return -1;
    a->tls = cfg->cert_file != NULL;
    snprintf(a->client_url, sizeof a->client_url, "%s://%s:%u", a->tls ? "https" : "http",
             cfg->host ? cfg->host : "127.0.0.1", (unsigned)cfg->port);
    if (a->tls && open_tls(cfg, err, errlen) < 0)
        return -1;
    uint32_t first = cfg->request_read_ms ? cfg->request_read_ms : API_READ_MS_DEFAULT;
    if (api_guard_start(&a->guard, first, first + API_CONN_TIMEOUT_S * 1000u) < 0) {
        snprintf(err, errlen, "cannot start the connection guard");
        goto no_guard;
    }
    if (!(a->mhd = start_daemon(a, cfg, &ss))) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", cfg->host ? cfg->host : "*",
                 (unsigned)cfg->port, strerror(errno));
        goto no_mhd;
    }
    return 0;
no_mhd:
    api_guard_stop(&a->guard);
no_guard:
    if (a->tls)
        tls_close(TLS_SLOT_CLIENT);
    return -1;
}

api *api_start(const api_config *cfg, char *err, size_t errlen)
{
    api *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->node = cfg->node;
    a->kv = cfg->kv;
    a->hub = cfg->hub;
    a->max_body = cfg->max_request_bytes;
    a->peer_tls = cfg->peer_tls;
    if (!(a->limiter = auth_limiter_create()) || pthread_mutex_init(&a->mu, NULL) != 0) {
        snprintf(err, errlen, "cannot create a mutex");
        auth_limiter_destroy(a->limiter);
        free(a);
        return NULL;
    }
    if (start_listener(a, cfg, err, errlen) < 0) {
        pthread_mutex_destroy(&a->mu);
        auth_limiter_destroy(a->limiter);
        free(a);
        return NULL;
    }
    return a;
}

int api_reload_tls(api *a, char *err, size_t errlen)
{
    return a->tls ? tls_reload(TLS_SLOT_CLIENT, err, errlen) : 0;
}

uint16_t api_port(const api *a)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : 0;
}

void api_stop(api *a)
{
    if (!a)
        return;
    /* wake every waiting request first: MHD aborts if any is suspended */
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    api_req *list = a->waiting;
    a->waiting = NULL;
    for (api_req *r = list; r; r = r->next)
        r->listed = false;
    pthread_mutex_unlock(&a->mu);
    while (list) {
        api_req *r = list;
        list = r->next;
        resume_once(r);
        req_unref(r); /* the list's */
    }
    /* watch streams suspend outside that list, always parked in the hub
     * (and check a->stopping before suspending): wake them all */
    if (a->hub)
        watch_wake_all(a->hub);
    MHD_stop_daemon(a->mhd);
    api_guard_stop(&a->guard); /* MHD notified every close by now */
    if (a->tls)
        tls_close(TLS_SLOT_CLIENT);
    pthread_mutex_destroy(&a->mu);
    auth_limiter_destroy(a->limiter);
    free(a);
}
