/* peer_server: the peer listener (libmicrohttpd) on this node's --cluster
 * address. Routes:
 *   POST /raft/message   body = transport_encode() batch  -> 204, or with
 *        Raftkv-Answer: 1 -> 200 and our messages back to that peer once
 *        the loop stepped the batch (answers.c), 204 when there are none;
 *        Raftkv-Seq: <epoch>.<seq> numbers a pipelined batch (sender.c),
 *        handed to the callback for the loop to keep the sender's order
 *   POST /raft/snapshot  streamed body, see snap_header.c  -> 204
 *   GET  /raft/info      {"cluster_id":"<decimal>"}         -> 200
 *   GET  /raft/hash?revision=R {"hash","revision","compact_revision"} -> 200
 *        (410 compacted, 400 future_revision, 503 corrupt or busy)
 * With cfg->loop_driven the listener has no thread: the node loop runs it
 * (transport_server_run), so a batch is decoded and handed over on the
 * thread that steps it, and an answer leaves in the turn that resumed it.
 * What could block that loop — a hash of the store, a snapshot's fsync —
 * is done on the peer_work thread, its connection suspended meanwhile.
 * Errors are JSON {"error","reason"}: 400 bad_message, 413 too_large,
 * 404 not_found, 405 method_not_allowed (with Allow), 500 internal (out
 * of memory here: never blamed on the sender's bytes).
 * Must never call a callback for anything malformed, foreign or addressed
 * to another node, buffer more than TRANSPORT_BODY_MAX_BYTES per request,
 * or hold more than PEER_CONN_MAX connections. */
#include "transport/transport_int.h"
#include "util/json_safe.h"

#include "util/failpoint.h"
#include "util/tls.h"

#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SERVER_THREADS 4
#define IDLE_TIMEOUT_S 120
/* Open peer connections: the members' senders, snapshot streams and probes
 * need a few each (at most 32 members); at this cap libmicrohttpd stops
 * accepting until some close (the kernel's backlog holds the rest), so a
 * flood of them cannot take the fds SQLite needs or pile up work on the
 * loop that runs this listener. */
#define PEER_CONN_MAX 256

struct transport_server {
    const transport_config *cfg;
    transport_answers *answers;
    peer_work *work;
    struct MHD_Daemon *d;
    bool in_loop; /* no thread of its own: the loop runs it */
    bool running; /* in MHD_run: a callback's flush must not run it again */
    bool broken;  /* MHD_run failed: no peer is served any more */
    uint16_t port;
};

enum route { ROUTE_MESSAGE = 1, ROUTE_SNAPSHOT = 2, ROUTE_HASH = 3 };
enum job_state { JOB_NONE, JOB_QUEUED, JOB_DONE };

/* One request in progress (all but the one-shot GET /raft/info). */
typedef struct {
    enum route route;
    transport_server *srv;
    struct MHD_Connection *conn;
    buf body;                  /* ROUTE_MESSAGE */
    bool too_large;            /* ROUTE_MESSAGE: drained, answered 413 */
    bool no_memory;            /* ROUTE_MESSAGE: drained, answered 500 */
    transport_snap_recv *snap; /* ROUTE_SNAPSHOT */
    transport_answer *answer;  /* ROUTE_MESSAGE: suspended for our answer */
    /* work on the peer_work thread (hash, snapshot finish): written there
     * before the resume, read here after it */
    enum job_state job;
    unsigned status; /* the snapshot's answer; 503 when refused or cancelled */
    const char *err;
    int64_t rev;      /* ROUTE_HASH */
    int hash_rc;
    transport_hash hash;
} request;

/* ---- responses ---- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, char *body,
                               const char *ctype, const char *allow)
{
    struct MHD_Response *r = body
        ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)
        : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    if (ctype)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_answer(struct MHD_Connection *c, const buf *body)
{
    if (!body->len)
        return respond(c, 204, NULL, NULL, NULL);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

static const char *reason_of(unsigned status)
{
    switch (status) {
    case 400: return "bad_message";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 410: return "removed_member";
    case 413: return "too_large";
    case 503: return "busy";
    default: return "internal";
    }
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned status,
                                     const char *err, const char *allow)
{
    json_t *j = json_pack("{s:s,s:s}", "error", err, "reason", reason_of(status));
    char *body = json_safe_dump(j);
    json_decref(j);
    return respond(c, status, body, "application/json", allow);
}

static enum MHD_Result respond_info(transport_server *srv, struct MHD_Connection *c)
{
    const transport_config *cfg = srv->cfg;
    uint64_t id = cfg->cluster_id;
    /* a string: JSON integers above 2^53 do not survive every parser */
    char *body = malloc(64);
    if (!body)
        return MHD_NO;
    snprintf(body, 64, "{\"cluster_id\":\"%llu\"}", (unsigned long long)id);
    return respond(c, 200, body, "application/json", NULL);
}

/* ---- GET /raft/hash?revision=R: this member's hash, for the leader ---- */

static enum MHD_Result respond_reason(struct MHD_Connection *c, unsigned status,
                                      const char *reason, const char *err)
{
    json_t *j = json_pack("{s:s,s:s}", "error", err, "reason", reason);
    char *body = json_safe_dump(j);
    json_decref(j);
    return respond(c, status, body, "application/json", NULL);
}

static enum MHD_Result respond_hash(struct MHD_Connection *c, const request *q)
{
    const transport_hash *h = &q->hash;
    if (q->status)
        return respond_reason(c, q->status, "busy", q->err);
    switch (q->hash_rc) {
    case TRANSPORT_HASH_OK: break;
    case TRANSPORT_HASH_COMPACTED: return respond_reason(c, 410, "compacted", "revision compacted");
    case TRANSPORT_HASH_FUTURE:
        return respond_reason(c, 400, "future_revision", "revision not applied yet");
    case TRANSPORT_HASH_CORRUPT:
        return respond_reason(c, 503, "corrupt", "a stored row fails its checksum");
    default: return respond_error(c, 500, "cannot compute the hash", NULL);
    }
    char *body = malloc(128);
    if (!body)
        return MHD_NO;
    snprintf(body, 128, "{\"hash\":%u,\"revision\":%lld,\"compact_revision\":%lld}", h->hash,
             (long long)h->revision, (long long)h->compact_revision);
    return respond(c, 200, body, "application/json", NULL);
}

/* ---- work on the peer_work thread ---- */

/* The end of every job: its result is in, the connection goes back to
 * the listener (which wakes the loop). */
static void job_end(request *q, bool ran)
{
    if (!ran) {
        q->status = 503;
        q->err = "peer listener stopping";
    }
    q->job = JOB_DONE;
    MHD_resume_connection(q->conn);
}

static void hash_job(void *arg, bool run)
{
    request *q = arg;
    const transport_callbacks *cb = &q->srv->cfg->cb;
    if (run)
        q->hash_rc = cb->hash(cb->ud, q->rev, &q->hash);
    job_end(q, run);
}

static void snap_job(void *arg, bool run)
{
    request *q = arg;
    if (run)
        q->status = (unsigned)transport_snap_recv_finish(q->snap, &q->err);
    job_end(q, run);
}

/* Suspends c (before the thread can resume it) and queues fn; a full
 * queue resumes it at once with a 503 for the handler to send. */
static enum MHD_Result queue_work(struct MHD_Connection *c, request *q, peer_work_fn fn)
{
    q->job = JOB_QUEUED;
    q->conn = c;
    MHD_suspend_connection(c);
    if (!peer_work_submit(q->srv->work, fn, q)) {
        q->status = 503;
        q->err = "peer listener busy";
        job_end(q, true);
    }
    return MHD_YES;
}

static enum MHD_Result respond_work(struct MHD_Connection *c, const request *q, const char *url)
{
    if (q->route == ROUTE_HASH)
        return respond_hash(c, q);
    if (q->status == 204)
        return respond(c, 204, NULL, NULL, NULL);
    log_warn("transport: rejected %s from peer: %s", url, q->err ? q->err : "bad request");
    return respond_error(c, q->status, q->err ? q->err : "bad request", NULL);
}

/* ---- POST /raft/message ---- */

/* A batch from one peer that asked for an answer: the connection waits
 * (suspended before the loop can see the batch, so that its resume always
 * finds it suspended). Returns false to deliver without one. */
static bool deliver_awaiting_answer(transport_server *srv, struct MHD_Connection *c, request *q,
                                    raft_msg *msgs, size_t n, const transport_seq *seq)
{
    const transport_callbacks *cb = &srv->cfg->cb;
    if (!MHD_lookup_connection_value(c, MHD_HEADER_KIND, TRANSPORT_HDR_ANSWER))
        return false;
    for (size_t i = 1; i < n; i++)
        if (msgs[i].from != msgs[0].from)
            return false;
    q->answer = transport_answer_open(srv->answers, c, msgs[0].from);
    if (!q->answer)
        return false;
    MHD_suspend_connection(c);
    if (!cb->on_messages(cb->ud, msgs, n, q->answer, seq))
        transport_answer_cancel(srv->answers, q->answer);
    return true;
}

/* Raftkv-Seq: "<epoch>.<seq>", both decimal, seq from 1; absent is fine
 * (an unnumbered batch is stepped when it arrives). */
static int parse_seq(struct MHD_Connection *c, transport_seq *out, bool *has)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, TRANSPORT_HDR_SEQ);
    *has = v != NULL;
    if (!v)
        return 0;
    const char *dot = strchr(v, '.');
    char epoch[24];
    size_t len = dot ? (size_t)(dot - v) : 0;
    if (!dot || len == 0 || len >= sizeof epoch)
        return -1;
    memcpy(epoch, v, len);
    epoch[len] = '\0';
    if (transport_parse_u64(epoch, &out->epoch) < 0 || transport_parse_u64(dot + 1, &out->seq) < 0 ||
        out->seq == 0)
        return -1;
    return 0;
}

static unsigned deliver_batch(transport_server *srv, struct MHD_Connection *c, request *q,
                              const char **err)
{
    raft_msg *msgs;
    size_t n;
    transport_seq seq;
    bool has_seq;
    if (q->too_large) {
        *err = "message batch too large";
        return 413;
    }
    if (q->no_memory) {
        *err = "out of memory";
        return 500;
    }
    if (parse_seq(c, &seq, &has_seq) < 0) {
        *err = TRANSPORT_HDR_SEQ ": expected <epoch>.<seq>, seq from 1";
        return 400;
    }
    int rc = transport_decode(q->body.data, q->body.len, srv->cfg->cluster_id, &msgs, &n, err);
    if (rc < 0)
        return rc == TRANSPORT_ERR_NOMEM ? 500 : 400;
    for (size_t i = 0; i < n; i++) {
        if (srv->cfg->self && msgs[i].to != srv->cfg->self) {
            transport_free_msgs(msgs, n);
            *err = "message for another node";
            return 400;
        }
        if (srv->cfg->cb.is_removed && srv->cfg->cb.is_removed(srv->cfg->cb.ud, msgs[i].from)) {
            transport_free_msgs(msgs, n);
            *err = "sender was removed from the cluster";
            return 410;
        }
    }
    if (!n || !srv->cfg->cb.on_messages)
        transport_free_msgs(msgs, n);
    else if (deliver_awaiting_answer(srv, c, q, msgs, n, has_seq ? &seq : NULL))
        return 0; /* answered once resumed */
    else /* nobody waits for it: stepped as it comes */
        srv->cfg->cb.on_messages(srv->cfg->cb.ud, msgs, n, NULL, NULL);
    return 204;
}

/* Keeps the body; past the limit or out of memory it drains the rest and
 * answers at the end (413 or 500), so the connection stays usable. */
static void message_data(request *q, const char *data, size_t n)
{
    if (q->too_large || q->no_memory)
        return;
    if (n > TRANSPORT_BODY_MAX_BYTES - q->body.len)
        q->too_large = true;
    else if (buf_append(&q->body, data, n) < 0)
        q->no_memory = true; /* not the sender's fault: not a 413 */
    if (q->too_large || q->no_memory)
        buf_free(&q->body);
}

/* ---- routing ---- */

static request *request_new(transport_server *srv, enum route route)
{
    request *q = calloc(1, sizeof *q);
    if (q) {
        q->route = route;
        q->srv = srv;
        buf_init(&q->body);
    }
    return q;
}

static enum MHD_Result begin_hash(transport_server *srv, struct MHD_Connection *c, void **ctx)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "revision");
    uint64_t rev = 0;
    if (!srv->cfg->cb.hash)
        return respond_error(c, 404, "no such peer endpoint", NULL);
    if (v && (transport_parse_u64(v, &rev) < 0 || rev > INT64_MAX))
        return respond_error(c, 400, "revision: expected a number", NULL);
    request *q = request_new(srv, ROUTE_HASH);
    if (!q)
        return MHD_NO;
    q->rev = (int64_t)rev;
    *ctx = q;
    return queue_work(c, q, hash_job);
}

/* First call for a request: headers only. Either answers at once or
 * leaves a request context in *ctx. */
static enum MHD_Result begin(transport_server *srv, struct MHD_Connection *c, const char *url,
                             const char *method, void **ctx)
{
    bool post = strcmp(method, "POST") == 0;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(url, "/raft/info") == 0)
        return get ? respond_info(srv, c) : respond_error(c, 405, "use GET", "GET, HEAD");
    if (strcmp(url, "/raft/hash") == 0)
        return get ? begin_hash(srv, c, ctx) : respond_error(c, 405, "use GET", "GET, HEAD");
    bool msg = strcmp(url, "/raft/message") == 0, snap = strcmp(url, "/raft/snapshot") == 0;
    if (!msg && !snap)
        return respond_error(c, 404, "no such peer endpoint", NULL);
    if (!post)
        return respond_error(c, 405, "use POST", "POST");
    uint64_t clen;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (msg && transport_parse_u64(cl, &clen) == 0 && clen > TRANSPORT_BODY_MAX_BYTES)
        return respond_error(c, 413, "message batch too large", NULL); /* before the body */
    request *q = request_new(srv, msg ? ROUTE_MESSAGE : ROUTE_SNAPSHOT);
    if (!q)
        return MHD_NO;
    if (snap) {
        int status;
        const char *err;
        q->snap = transport_snap_recv_begin(
            srv->cfg, MHD_lookup_connection_value(c, MHD_HEADER_KIND, TRANSPORT_HDR_SNAP_MSG),
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, TRANSPORT_HDR_SNAP_SIZE),
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, TRANSPORT_HDR_SNAP_CRC), &status,
            &err);
        if (!q->snap) {
            free(q);
            log_warn("transport: rejected %s from peer: %s", url, err);
            return respond_error(c, (unsigned)status, err, NULL);
        }
    }
    *ctx = q;
    return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *data_size, void **ctx)
{
    transport_server *srv = cls;
    request *q = *ctx;
    if (!q)
        return begin(srv, c, url, method, ctx);
    if (q->answer) /* resumed: the loop's answer is in */
        return transport_answer_ready(q->answer) ? respond_answer(c, transport_answer_body(q->answer))
                                                 : MHD_YES;
    if (q->job != JOB_NONE) /* resumed: the work thread's result is in */
        return q->job == JOB_DONE ? respond_work(c, q, url) : MHD_YES;
    if (*data_size) {
        if (q->route == ROUTE_MESSAGE)
            message_data(q, data, *data_size);
        else
            transport_snap_recv_data(q->snap, data, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    if (q->route == ROUTE_SNAPSHOT) /* fsync and rename: not on the loop */
        return queue_work(c, q, snap_job);
    const char *err = "bad request";
    unsigned status = deliver_batch(srv, c, q, &err);
    if (status == 0)
        return MHD_YES; /* suspended */
    if (status == 204)
        return respond(c, 204, NULL, NULL, NULL);
    log_warn("transport: rejected %s from peer: %s", url, err);
    return respond_error(c, status, err, NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **ctx,
                      enum MHD_RequestTerminationCode toe)
{
    request *q = *ctx;
    if (!q)
        return;
    buf_free(&q->body);
    transport_answer_free(q->answer); /* resumed, so off the list */
    transport_snap_recv_free(q->snap); /* deletes a temp file left by an abort */
    free(q);
    *ctx = NULL;
}

/* libmicrohttpd's own error lines (a failed handshake, a reset): at most
 * one a second (util.h) */
static log_limited mhd_log = {.what = "transport: peer listener"};

/* ---- lifecycle ---- */

/* Peers are always mutual: no certificate from the cluster's CA, no
 * handshake (tls.c checks it inside the handshake). */
static int open_tls(const transport_config *cfg, char *err, size_t errlen)
{
    tls_files files = {.cert_file = cfg->cert_file, .key_file = cfg->key_file,
                       .ca_file = cfg->ca_file, .verify = TLS_VERIFY_REQUIRED};
    return tls_open(TLS_SLOT_PEER, &files, err, errlen);
}

int transport_reload_tls(char *err, size_t errlen) { return tls_reload(TLS_SLOT_PEER, err, errlen); }

/* In the loop: epoll, so that the loop waits for one fd; MHD's own
 * inter-thread channel is in that epoll set, so a resume from another
 * thread (peer_work) wakes the loop. */
static struct MHD_Daemon *start_daemon(transport_server *srv, struct sockaddr_storage *ss)
{
    const transport_config *cfg = srv->cfg;
    unsigned flags = MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    flags |= srv->in_loop ? MHD_USE_EPOLL : MHD_USE_AUTO_INTERNAL_THREAD;
    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (cfg->tls)
        flags |= MHD_USE_TLS;
    /* the logger must come first to catch messages about later options */
    struct MHD_OptionItem opts[9] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)log_limited_va, &mhd_log},
        {MHD_OPTION_SOCK_ADDR, 0, ss},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, srv},
        {MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, PEER_CONN_MAX, NULL},
    };
    size_t k = 5;
    if (cfg->tls)
        opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
                                            (void *)tls_cert_callback(TLS_SLOT_PEER)};
    if (!srv->in_loop)
        opts[k++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, SERVER_THREADS, NULL};
    opts[k] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return MHD_start_daemon(flags, cfg->listen_port, NULL, NULL, handle, srv, MHD_OPTION_ARRAY,
                            opts, MHD_OPTION_END);
}

transport_server *transport_server_start(const transport_config *cfg, transport_answers *answers,
                                         char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (net_listen_addr(cfg->listen_host, cfg->listen_port, &ss, err, errlen) < 0)
        return NULL;
    transport_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->cfg = cfg;
    srv->answers = answers;
    srv->in_loop = cfg->loop_driven && MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES;
    if (!(srv->work = peer_work_start())) {
        snprintf(err, errlen, "cannot start the peer listener's work thread");
        free(srv);
        return NULL;
    }
    if (cfg->tls && open_tls(cfg, err, errlen) < 0) {
        peer_work_stop(srv->work);
        free(srv);
        return NULL;
    }
    if (!(srv->d = start_daemon(srv, &ss))) {
        snprintf(err, errlen, "cannot listen for peers on %s:%u", cfg->listen_host,
                 (unsigned)cfg->listen_port);
        if (cfg->tls)
            tls_close(TLS_SLOT_PEER);
        peer_work_stop(srv->work);
        free(srv);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->listen_port;
    return srv;
}

void transport_server_stop(transport_server *srv)
{
    if (!srv)
        return;
    transport_answers_flush_all(srv->answers); /* no connection stays suspended */
    peer_work_stop(srv->work);                 /* nor one waiting for work */
    MHD_stop_daemon(srv->d); /* joins its threads; completed() frees requests */
    if (srv->cfg->tls)
        tls_close(TLS_SLOT_PEER);
    free(srv);
}

uint16_t transport_server_port(const transport_server *srv) { return srv->port; }

int transport_server_poll_fd(const transport_server *srv)
{
    const union MHD_DaemonInfo *i =
        srv->in_loop ? MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    return i ? i->epoll_fd : -1;
}

int transport_server_timeout_ms(const transport_server *srv)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (!srv->in_loop || MHD_get_timeout(srv->d, &ms) != MHD_YES)
        return -1;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

void transport_server_run(transport_server *srv)
{
    if (!srv->in_loop || srv->running)
        return;
    srv->running = true;
    /* MHD_NO here is an internal error (its epoll set failed): the node
     * must stop rather than go on deaf to its peers */
    if (MHD_run(srv->d) != MHD_YES || failpoint_hit("peer.run"))
        srv->broken = true;
    srv->running = false;
}

bool transport_server_broken(const transport_server *srv) { return srv && srv->broken; }
