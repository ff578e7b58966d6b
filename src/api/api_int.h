/* api_int: the core every api file shares — the api and the per-request
 * context, waiting on the node (server.c), replies (reply.c), JSON
 * (json.c, json_out.c, b64.c), percent-decoding (pct.c), txn parsing
 * (txn_parse.c) and the route handlers' entry points (server.c's table).
 * Private to src/api/. The other private headers: input.h (reading a
 * request), stream.h (chunked streams), recipes/waitline.h (the lock's
 * and election's line).
 *
 * Must never: be included outside src/api/ (tests use api.h only, but
 * api_test, which checks json_out.c against jansson), expose MHD to other
 * modules, or declare a handler's private helper: handlers call shared
 * files only, never each other.
 */
#ifndef RAFTKV_API_INT_H
#define RAFTKV_API_INT_H

#include "api/api.h"
#include "auth/auth.h"
#include "util/json_safe.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

/* HTTP answers by class (1xx..5xx), for /metrics. */
#define API_CODE_CLASSES 5

/* ---- conn_guard.c: the total time a connection may take to send a
 * request (slowloris), enforced by a reaper thread ---- */
typedef struct api_conn api_conn;
typedef struct {
    pthread_mutex_t mu; /* guards the list and every deadline */
    api_conn *head;
    uint32_t first_ms;  /* accept to first request received */
    uint32_t next_ms;   /* end of a request to the next one received */
    uint64_t cut;       /* connections cut, for /metrics */
    pthread_t thread;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool stopping;
} api_guard;
int api_guard_start(api_guard *g, uint32_t first_ms, uint32_t next_ms);
void api_guard_stop(api_guard *g);
/* MHD_OPTION_NOTIFY_CONNECTION's callback (cls: the api_guard). */
void api_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode code);
/* The request's headers and body are in: no deadline until it is done. */
void api_guard_received(api_guard *g, struct MHD_Connection *conn);
/* The request is done: the next one must arrive within next_ms. */
void api_guard_next(api_guard *g, struct MHD_Connection *conn);

struct api {
    struct MHD_Daemon *mhd;
    node *node;
    kv *kv;
    watch_hub *hub;        /* may be NULL (see api_config) */
    size_t max_body;
    atomic_ullong answers[API_CODE_CLASSES];
    pthread_mutex_t mu;    /* guards stopping and the waiting list */
    bool stopping;
    struct api_req *waiting; /* suspended requests, so api_stop can wake them */
    api_guard guard;
    bool tls;              /* the client port is HTTPS (TLS_SLOT_CLIENT) */
    bool peer_tls;         /* peer URLs are https:// */
    char client_url[300];  /* this member's client URL, for etcd's member list */
    struct auth_limiter *limiter; /* failed passwords per address */
};

/* Owns the buffers a parsed request points into, freed together. */
typedef struct {
    void **ptrs;
    size_t n, cap;
} api_arena;
void *api_arena_keep(api_arena *ar, void *p); /* NULL (and p freed) on failure */
void api_arena_free(api_arena *ar);

typedef struct api_req api_req;
typedef void (*api_handler_fn)(api_req *r);

/* One request. Shared by MHD (one ref until NOTIFY_COMPLETED) and by a
 * pending node callback (one ref until it fires): the callback may fire
 * after the client is gone, so neither side may free it alone. */
struct api_req {
    api *a;
    struct MHD_Connection *conn;
    pthread_mutex_t mu;
    int refs;
    bool resumed;      /* someone resumed the connection: nobody else may */
    bool cb_done;      /* the node callback stored its result */
    bool listed;       /* on a->waiting (guarded by a->mu) */
    api_req *prev, *next;
    const char *method;
    api_route route;
    bool route_bad;    /* the path did not decode */
    bool route_oom;    /* ... for want of memory */
    buf body;
    bool too_large;
    bool body_oom;     /* the body could not be kept: 500 at its end */
    size_t drained;    /* body bytes seen and dropped after too_large */
    bool replied;
    bool received;       /* headers and body are in (the receive deadline is off) */
    bool queue_failed; /* MHD refused our response: close the connection */
    /* filled by the node callback */
    int status;
    kv_result *res;
    uint64_t chosen_id;
    /* the continuation that answers once the connection is resumed */
    api_handler_fn resume;
    /* what a continuation needs to remember about the request */
    kv_op op;
    uint8_t *end;      /* owned range end for op.span */
    bool raw;
    uint64_t url_fp;   /* FNV-1a of method and path, for Idempotency-Key */
    bool root;         /* raftexample route: terse answers (204, raw 404) */
    bool cond;         /* the write is guarded by if_mod_revision */
    /* auth on: the user the request runs as (api_auth_gate) */
    bool as_user;
    char user[KV_AUTH_NAME_MAX + 1];
    uint64_t user_gen;
    char *url;         /* member peer URL */
    bool is_learner;
    /* a membership change with an Idempotency-Key, across its read barrier */
    int member_op;
    uint64_t member_id;
    uint64_t idem_fp;
    buf idem_stamp;
    api_handler_fn member_then;
    /* a parsed txn stays alive until answered: its ops shape the answer */
    json_t *doc;
    api_arena arena;
    kv_txn txn;
    /* a handler's own state across waits, and how to free it (called
     * before the request is freed: it must stop whatever may still wake
     * the request) */
    void *ext;
    void (*ext_free)(api_req *r);
};

/* ---- waiting on the node (suspend first, then submit) ---- */
void api_wait_propose(api_req *r, const buf *cmd, api_handler_fn then);
void api_wait_barrier(api_req *r, api_handler_fn then);
/* node_change_member with r->url; an Idempotency-Key makes it run once */
void api_wait_member(api_req *r, int op, uint64_t id, api_handler_fn then);
void api_wait_move(api_req *r, uint64_t to, api_handler_fn then); /* node_move_leader */
/* A wait ended by api_wake (e.g. from a watch hub callback) instead of a
 * node callback. No reference is held for the waker: r->ext_free must
 * stop it before r is freed. False (after answering 503) if stopping. */
bool api_wait_external(api_req *r, api_handler_fn then);
void api_wake(api_req *r); /* any thread; once per api_wait_external */
/* Runs work(a, state) on a thread of its own while r waits, then `then`
 * on an HTTP thread, which finds state and work's return code with
 * api_offthread_state. state is state_size zeroed bytes, freed (after
 * state_free, may be NULL) when both the request and the thread are done.
 * Uses r->ext. Answers 500/503 itself if it cannot start. */
typedef int (*api_work_fn)(api *a, void *state);
void api_offthread(api_req *r, size_t state_size, void (*state_free)(void *state),
                   api_work_fn work, api_handler_fn then);
void *api_offthread_state(api_req *r, int *rc);
/* libmicrohttpd 0.9.75 does not watch a suspended connection's socket, so
 * a long wait wakes at least every API_PROBE_MS to ask whether its client
 * hung up, and answers api_reply_gone (which closes the request) if so. */
#define API_PROBE_MS 1000
bool api_client_gone(api_req *r);
bool api_conn_gone(struct MHD_Connection *conn); /* the same, for a stream */
void api_reply_gone(api_req *r);
/* Proposes cmd if err (from kv_encode_*) is KV_OK, else answers 400/500. */
void api_propose_encoded(api_req *r, int err, const buf *cmd, api_handler_fn then);
/* After a proposal: answers a node error or a kv refusal and returns true,
 * or returns false when r->res holds a result to render. */
bool api_write_failed(api_req *r);

/* ---- replies: each queues exactly one answer and marks r replied ---- */
/* A 500 "out of memory" for a request that has no api_req (it could not
 * be allocated); MHD_NO if even that cannot be queued. */
enum MHD_Result api_reply_no_context(api *a, struct MHD_Connection *conn);
/* Takes body (may be NULL: then 500). */
void api_reply_json(api_req *r, unsigned code, json_t *body);
/* {"error", "reason", "header"} plus the fields of extra (taken; NULL: none). */
void api_reply_error(api_req *r, unsigned code, const char *reason, json_t *extra,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same with fields the answer must have: extra is what building them
 * gave, and NULL (they could not be built) makes the answer a 500, never
 * the error without them. */
void api_reply_error_with(api_req *r, unsigned code, const char *reason, json_t *extra,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Raw bytes; headers is a NULL-terminated name/value list (may be NULL). */
void api_reply_raw(api_req *r, unsigned code, const char *ctype, const void *data,
                   size_t len, const char *const *headers);
/* Like api_reply_raw, but the response takes b's bytes (b is left empty;
 * on failure it still holds them, for the caller's buf_free). */
void api_reply_buf(api_req *r, unsigned code, const char *ctype, buf *b);
void api_reply_empty(api_req *r, unsigned code);
/* A response built elsewhere (a stream from a callback); taken (NULL: the
 * connection is closed). */
void api_reply_response(api_req *r, unsigned code, const char *ctype, struct MHD_Response *resp,
                        const char *const *headers);
/* 405 with the route's Allow list. */
void api_reply_405(api_req *r);
/* Maps a node status to its HTTP answer (503, 409, 400, 404, 500). */
void api_reply_node_error(api_req *r, int status);
/* Maps a kv error (compacted, future revision, ...) to its HTTP answer. */
void api_reply_kv_error(api_req *r, int err, int64_t compact_revision);
void api_count_answer(api *a, unsigned code);

/* ---- percent-decoding and numbers (pure) ---- */
/* 0 ok, -1 bad encoding, -2 out of memory. *out is malloc'd, NUL-terminated. */
int api_pct_decode(const char *s, size_t n, uint8_t **out, size_t *outlen);
/* Decimal digits only, value in [1, max]. */
bool api_parse_id(const char *s, size_t n, uint64_t max, uint64_t *out);
#define API_MAX_ID (1ull << 53)

/* ---- JSON (jansson) ---- */
json_t *api_json_header(api *a, int64_t revision); /* revision < 0: the node's */
/* Adds "header" (at revision) to body, which it takes: body, or NULL (body
 * freed) when body is NULL or out of memory. */
json_t *api_json_with_header(api *a, json_t *body, int64_t revision);
/* Sets name (valid UTF-8) or name_base64 on obj; -1 on allocation failure. */
int api_json_set_bytes(json_t *obj, const char *name, const uint8_t *p, size_t n);
json_t *api_json_kv(const kv_kv *item, bool keys_only);
json_t *api_json_kvs(const kv_list *l, bool keys_only);
/* {"kvs","count","more"} for a RANGE, {"deleted","prev_kvs"?} for a DELETE,
 * {"prev_kv"?} for a PUT. */
json_t *api_json_op_result(const kv_op_result *res, const kv_op *op);
bool api_utf8_valid(const uint8_t *p, size_t n);
/* msg if it is valid UTF-8, else fallback: jansson refuses anything else,
 * and an error message may quote a client's bytes. */
const char *api_utf8_or(const char *msg, const char *fallback);
/* The words for a stored row that failed its checksum: the native API's,
 * and etcd's (its ErrCorrupt), wherever either is answered. */
#define API_CORRUPT_MSG "data: a stored row fails its checksum"
#define API_ETCD_CORRUPT_MSG "etcdserver: corrupt cluster"
char *api_b64_encode(const uint8_t *p, size_t n);
/* 0 ok, -1 bad input, -2 out of memory; *out malloc'd. */
int api_b64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen);

/* ---- JSON written straight into a buf (json_out.c), byte-identical to
 * json_dumps(JSON_COMPACT) of the trees above; each returns 0 or -1 on
 * allocation failure (the buf then holds a partial text to drop) ---- */
int api_jw_kv(buf *b, const kv_kv *item, bool keys_only);
/* The 200 body of a range read, trailing newline included:
 * {"kvs":[...],"count":N,"more":B,"header":{...}}. */
int api_jw_range(buf *b, api *a, const kv_op_result *res, bool keys_only, int64_t revision);

/* ---- handlers (one per route family) ---- */
void api_h_root_key(api_req *r);
void api_h_kv(api_req *r);
void api_h_txn(api_req *r);
void api_h_compact(api_req *r);
void api_h_root_member(api_req *r);
void api_h_members(api_req *r);
void api_h_member(api_req *r);
void api_h_status(api_req *r);
void api_h_health(api_req *r);
void api_h_metrics(api_req *r);
void api_h_maint(api_req *r);
void api_h_backup(api_req *r);  /* GET /maintenance/snapshot (h_backup.c) */
void api_v3_snapshot(api_req *r); /* the gateway's maintenance/snapshot (h_backup.c) */
void api_h_defrag(api_req *r);  /* POST /maintenance/defrag (h_maint.c) */
/* The defragment both APIs run off every loop (h_maint.c; an api_work_fn
 * for api_offthread with an api_defrag_state). */
typedef struct {
    uint64_t before, after;
    char msg[256];
} api_defrag_state;
int api_defrag_work(api *a, void *state);
void api_h_lease(api_req *r);
void api_h_watch(api_req *r);
/* recipes/ (etcd's v3lock and v3election, apart from the kv API) */
void api_h_lock(api_req *r);
/* etcd's v3 JSON gateway (v3/gw.c): POST /v3/{path}, GET /version */
void api_h_v3(api_req *r);
void api_h_version(api_req *r);
/* The gateway's static name for a path under /v3/ ("kv/range"), or NULL
 * if it serves no such path (the router's 404). */
const char *api_v3_path(const char *path);
/* A peer URL a membership change may name (h_cluster.c): http://host:port,
 * https:// when this cluster's peers use TLS. */
bool api_valid_peer_url(const char *url, bool tls);
/* A new lease id (h_lease.c): never repeats on this member, never 2^53. */
int64_t api_new_lease_id(api *a);
void api_h_election(api_req *r);
void api_h_observe(api_req *r);
/* The observe stream of the election named by r->route.key in another
 * protocol's lines (recipes/h_observe.c): shape makes the line for the
 * leader as of rev, NULL to send none (it is called with leader NULL when
 * nobody leads). */
typedef json_t *(*api_observe_line_fn)(api *a, const kv_kv *leader, int64_t rev);
void api_observe_stream(api_req *r, api_observe_line_fn shape, const char *ctype);

/* Parses a txn body into t; its memory lives in the arena. On a bad field
 * writes a message naming it into err and returns -1 (-2: no memory). */
int api_txn_parse(json_t *root, kv_txn *t, api_arena *ar, char *err, size_t errlen);
/* "key" plus "range_end" or "prefix": true (each *_base64 too) of o, as
 * /txn reads an op's span: 0, -1 (message in err) or -2. */
int api_json_span(json_t *o, kv_span *sp, api_arena *ar, char *err, size_t errlen);

/* ---- auth (auth_parse.c, auth_gate.c, h_auth.c) ---- */
/* The JSON body of an /auth route (sub: api_route.sub; name, role: the
 * route's names, NULL-terminated strings or NULL) into c. Passwords stay
 * plain in c->arg (the handler hashes them; "authenticate" gives name and
 * password with op 0). 0, or -1 with a message naming the field in err
 * (-2: no memory). Strings point into root, name, role or the arena. */
int api_auth_parse(const char *sub, const char *method, json_t *root, const char *name,
                   const char *role, kv_auth_cmd *c, api_arena *ar, char *err, size_t errlen);
/* Who is asking (early, from the headers): with auth off, true at once.
 * Else r->as_user, r->user and r->user_gen come from a Bearer token, HTTP
 * Basic or the client certificate's CN; false once 401, 403 (the route
 * needs root), 429 (too many failed passwords) or 503 is answered. */
bool api_auth_gate(api_req *r);
/* A read of s, after its barrier (on reader c, or one of its own when c
 * is NULL): true if r may, else false once 401/403 is answered. */
bool api_auth_read(api_req *r, kv_conn *c, const kv_span *s);
/* c (NULL: r is answered already) may serve r's range: r may read
 * r->op's span. False, with c released, when it may not. */
bool api_may_read_op(api_req *r, kv_conn *c);
/* The command to propose for r: cmd itself, or cmd run as r's user (in
 * tmp). NULL when it cannot be built. */
const buf *api_auth_wrap(api_req *r, const buf *cmd, buf *tmp);
/* A login's outcome: only WRONG counts against the client's address;
 * INTERNAL is the server's failure (out of memory, the store), a 500. */
typedef enum { API_LOGIN_OK, API_LOGIN_WRONG, API_LOGIN_LIMITED, API_LOGIN_INTERNAL } api_login;
api_login api_login_check(api_req *r, kv_conn *c, const char *user, const char *password,
                          uint64_t *gen, uint64_t *retry_ms);
/* The same, answered in the native API's words: true, or false once 401
 * (wrong), 429 (too many) or 500 is answered. */
bool api_auth_password(api_req *r, kv_conn *c, const char *user, const char *password,
                       uint64_t *gen);
/* A login that is not OK answered in the native API's words (401, 429 or
 * 500): true once answered, false for OK. */
bool api_login_answered(api_req *r, api_login l, uint64_t retry_ms);
/* auth/authenticate for both APIs: r->doc's "name" and "password" checked
 * on the reader get(r) gives (NULL: r is answered, and so is this) and a
 * token signed for them. Returns false once r is answered; else true with
 * t->state kv_auth_secret's code (KV_ERR_NOT_FOUND: auth is off) and, on
 * KV_OK, t->login (INTERNAL too when the token cannot be signed). */
typedef struct {
    int state;
    api_login login;
    uint64_t retry_ms;
    char token[AUTH_TOKEN_MAX];
} api_login_token;
bool api_login_for_token(api_req *r, kv_conn *(*get)(api_req *r), api_login_token *t);
/* An etcd-shaped error {"error","message","code"} (v3/gw.c). */
void api_v3_error(api_req *r, int grpc_code, const char *msg);
void api_h_auth(api_req *r);

#endif
