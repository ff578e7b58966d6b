/* auth_gate: who a request runs as, once auth is enabled — from
 * "Authorization: Bearer <token>", HTTP Basic (curl -u) or the CN of a
 * verified client certificate, in that order — and the checks that are
 * not at apply: routes only root may use (checked here, before the body
 * is read), reads (after their barrier, so a revoked grant or a changed
 * password is seen at once), and the wrapping of every proposal as the
 * user, so that apply decides writes against the auth state of that
 * point in the log — on every member alike, also when a follower
 * forwards the entry.
 *
 * Must never: log or echo a password or a token; let a request through
 * without an identity while auth is on (but /health, /metrics, /version
 * and /auth/authenticate); count a request that sent no password as a
 * failed login.
 */
#include "api/api_int.h"
#include "auth/auth.h"
#include "util/tls.h"

#include <stdlib.h>
#include <string.h>

static bool is_public(const api_req *r)
{
    int k = r->route.kind;
    return k == ROUTE_HEALTH || k == ROUTE_METRICS || k == ROUTE_VERSION ||
           (k == ROUTE_AUTH && strcmp(r->route.sub, "authenticate") == 0) ||
           (k == ROUTE_V3 && strcmp(r->route.sub, "auth/authenticate") == 0);
}

/* Gateway clients parse etcd's error bodies; the others the native ones. */
static bool gateway(const api_req *r) { return r->route.kind == ROUTE_V3; }

/* The gateway's key, lease, watch and lock calls are checked like the
 * native ones; the rest of it (members, maintenance, auth) is root's. */
static bool v3_needs_root(const char *sub)
{
    static const char *const open[] = {"kv/range", "kv/put", "kv/deleterange", "kv/txn",
                                       "watch", "lease/", "kv/lease/", "lock/", "election/"};
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++)
        if (strncmp(sub, open[i], strlen(open[i])) == 0)
            return false;
    return true;
}

static bool needs_root(const api_req *r)
{
    switch (r->route.kind) {
    case ROUTE_ROOT_MEMBER:
    case ROUTE_MEMBER:
    case ROUTE_MEMBER_PROMOTE:
    case ROUTE_MAINT:
    case ROUTE_COMPACT:
    case ROUTE_AUTH: return true;
    case ROUTE_MEMBERS: return strcmp(r->method, "GET") != 0;
    case ROUTE_V3: return v3_needs_root(r->route.sub);
    default: return false;
    }
}

static const struct sockaddr *client_addr(api_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci ? ci->client_addr : NULL;
}

static bool set_user(api_req *r, const char *user, uint64_t gen)
{
    size_t n = strlen(user);
    if (n >= sizeof r->user)
        return false;
    memcpy(r->user, user, n + 1);
    r->user_gen = gen;
    r->as_user = true;
    return true;
}

static void unauthenticated(api_req *r, const char *why)
{
    if (gateway(r))
        api_v3_error(r, 16, "etcdserver: invalid auth token"); /* gRPC Unauthenticated */
    else
        api_reply_error(r, 401, "unauthenticated", NULL, "%s", why);
}

static bool login_limited(api_req *r, uint64_t *retry_ms)
{
    return !auth_limiter_allowed(r->a->limiter, client_addr(r), now_ms(), retry_ms);
}

static void login_failed(api_req *r) { auth_limiter_failed(r->a->limiter, client_addr(r), now_ms()); }

/* A failure of the server's, not the client's credentials: 500 in the
 * shape the client parses. */
static void internal(api_req *r, const char *why)
{
    if (gateway(r))
        api_v3_error(r, 13, "etcdserver: internal error"); /* gRPC Internal */
    else
        api_reply_error(r, 500, "internal", NULL, "%s", why);
}

static bool from_token(api_req *r, kv_conn *c, const char *token)
{
    uint8_t key[64];
    size_t klen = 0;
    char user[KV_AUTH_NAME_MAX + 1];
    uint64_t gen;
    int rc = kv_auth_secret(c, key, sizeof key, &klen);
    if (rc != KV_OK && rc != KV_ERR_NOT_FOUND) {
        internal(r, "cannot read the auth state");
        return false;
    }
    if (rc != KV_OK ||
        auth_token_verify(key, klen, token, now_wall_ms(), user, sizeof user, &gen) < 0) {
        unauthenticated(r, "invalid or expired token");
        return false;
    }
    return set_user(r, user, gen);
}

api_login api_login_check(api_req *r, kv_conn *c, const char *user, const char *password,
                          uint64_t *gen, uint64_t *retry_ms)
{
    if (login_limited(r, retry_ms))
        return API_LOGIN_LIMITED;
    char *hash = NULL;
    int rc = kv_auth_name_valid(user) ? kv_auth_user_get(c, user, &hash, gen) : KV_ERR_NOT_FOUND;
    int v = rc == KV_OK ? auth_password_verify(password, hash) : rc == KV_ERR_NOT_FOUND ? 0 : -1;
    free(hash);
    if (v < 0)
        return API_LOGIN_INTERNAL;
    if (v == 0) {
        login_failed(r);
        return API_LOGIN_WRONG;
    }
    return API_LOGIN_OK;
}

bool api_login_answered(api_req *r, api_login l, uint64_t retry_ms)
{
    switch (l) {
    case API_LOGIN_OK: return false;
    case API_LOGIN_LIMITED:
        api_reply_error_with(r, 429, "too_many_attempts",
                             json_pack("{s:I}", "retry_after_ms", (json_int_t)retry_ms),
                             "too many failed logins from this address; retry later");
        break;
    case API_LOGIN_WRONG: unauthenticated(r, "wrong user name or password"); break;
    case API_LOGIN_INTERNAL: internal(r, "cannot check the password"); break;
    }
    return true;
}

bool api_auth_password(api_req *r, kv_conn *c, const char *user, const char *password,
                       uint64_t *gen)
{
    uint64_t retry_ms = 0;
    return !api_login_answered(r, api_login_check(r, c, user, password, gen, &retry_ms), retry_ms);
}

bool api_login_for_token(api_req *r, kv_conn *(*get)(api_req *r), api_login_token *t)
{
    kv_conn *c = get(r);
    if (!c)
        return false;
    const char *name = json_string_value(json_object_get(r->doc, "name"));
    const char *pw = json_string_value(json_object_get(r->doc, "password"));
    uint8_t key[64];
    size_t klen = 0;
    uint64_t gen = 0;
    t->retry_ms = 0;
    t->state = kv_auth_secret(c, key, sizeof key, &klen);
    t->login = t->state == KV_OK ? api_login_check(r, c, name, pw, &gen, &t->retry_ms)
                                 : API_LOGIN_INTERNAL;
    kv_reader_release(r->a->kv, c);
    if (t->login == API_LOGIN_OK && auth_token_make(key, klen, name, gen,
                                                    now_wall_ms() + AUTH_TOKEN_TTL_MS, t->token,
                                                    sizeof t->token) < 0)
        t->login = API_LOGIN_INTERNAL;
    explicit_bzero(key, sizeof key);
    return true;
}

static bool from_basic(api_req *r, kv_conn *c, const char *b64)
{
    uint8_t *d = NULL;
    size_t n = 0;
    bool ok = false;
    int rc = api_b64_decode(b64, strlen(b64), &d, &n);
    if (rc == -2) {
        internal(r, "out of memory");
    } else if (rc != 0 || memchr(d, 0, n) || !memchr(d, ':', n)) {
        unauthenticated(r, "Authorization: Basic needs base64 of user:password");
    } else {
        char *s = (char *)d; /* api_b64_decode NUL-terminates */
        char *colon = strchr(s, ':');
        *colon = '\0';
        uint64_t gen = 0;
        ok = api_auth_password(r, c, s, colon + 1, &gen) && set_user(r, s, gen);
        explicit_bzero(d, n);
    }
    free(d);
    return ok;
}

static bool from_certificate(api_req *r, kv_conn *c)
{
    const union MHD_ConnectionInfo *ci =
        r->a->tls ? MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION) : NULL;
    char cn[KV_AUTH_NAME_MAX + 1];
    char *hash = NULL;
    uint64_t gen = 0;
    bool have_cn = ci && tls_peer_common_name(ci->tls_session, cn, sizeof cn) == 0;
    int rc = have_cn && kv_auth_name_valid(cn) ? kv_auth_user_get(c, cn, &hash, &gen)
                                               : KV_ERR_NOT_FOUND;
    free(hash);
    if (rc != KV_OK && rc != KV_ERR_NOT_FOUND) { /* the store's failure, not the client's */
        internal(r, "cannot read the auth state");
        return false;
    }
    bool ok = rc == KV_OK;
    if (!have_cn && gateway(r)) {
        api_v3_error(r, 3, "etcdserver: user name is empty"); /* etcd's, for no credentials */
        return false;
    }
    if (!ok) {
        unauthenticated(r, "credentials required: Authorization: Bearer <token>, "
                           "HTTP Basic, or a client certificate naming a user");
        return false;
    }
    return set_user(r, cn, gen);
}

static bool identify(api_req *r, kv_conn *c)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (h && strncasecmp(h, "Bearer ", 7) == 0)
        return from_token(r, c, h + 7);
    if (h && strncasecmp(h, "Basic ", 6) == 0)
        return from_basic(r, c, h + 6);
    if (h && gateway(r))
        return from_token(r, c, h); /* etcd's clients send the bare token */
    if (h) {
        unauthenticated(r, "Authorization: expected Bearer or Basic");
        return false;
    }
    return from_certificate(r, c);
}

/* Answers a kv_auth_check refusal; true if there was none. */
static bool check_answered(api_req *r, int rc)
{
    if (rc == KV_OK)
        return true;
    if (rc == KV_ERR_AUTH)
        unauthenticated(r, "the user is gone or its password or roles changed: log in again");
    else if (rc == KV_ERR_PERMISSION && gateway(r))
        api_v3_error(r, 7, "etcdserver: permission denied");
    else if (rc == KV_ERR_PERMISSION)
        api_reply_error(r, 403, "permission_denied", NULL, "user %s may not do this", r->user);
    else
        api_reply_error(r, 500, "internal", NULL, "cannot read the auth state");
    return false;
}

/* An election's leader and observers read its line: every key under
 * "{name}/" (recipes/waitline.c). Its writes are checked at apply. */
static bool election_read_ok(api_req *r, kv_conn *c)
{
    const api_route *rt = &r->route;
    bool reads = rt->kind == ROUTE_ELECTION_OBSERVE ||
                 (rt->kind == ROUTE_ELECTION && strcmp(r->method, "GET") == 0);
    if (!reads || !rt->key)
        return true;
    uint8_t *p = malloc(rt->key_len + 2), *end = malloc(rt->key_len + 2);
    bool ok = false;
    if (p && end) {
        memcpy(p, rt->key, rt->key_len);
        p[rt->key_len] = '/';
        uint32_t n = (uint32_t)rt->key_len + 1;
        kv_span s = {p, n, true, end, kv_prefix_end(p, n, end)};
        ok = check_answered(r, kv_auth_check(c, r->user, r->user_gen, &s, KV_PERM_READ));
    } else {
        api_reply_error(r, 500, "internal", NULL, "out of memory");
    }
    free(p);
    free(end);
    return ok;
}

bool api_auth_gate(api_req *r)
{
    if (!kv_auth_enabled(r->a->kv) || is_public(r))
        return true;
    kv_conn *c = kv_reader_acquire(r->a->kv);
    if (!c) {
        api_reply_error(r, 503, "busy", NULL, "no reader free; try again");
        return false;
    }
    bool ok = identify(r, c);
    if (ok && needs_root(r))
        ok = check_answered(r, kv_auth_check(c, r->user, r->user_gen, NULL, KV_PERM_ROOT));
    if (ok)
        ok = election_read_ok(r, c);
    kv_reader_release(r->a->kv, c);
    return ok;
}

bool api_auth_read(api_req *r, kv_conn *c, const kv_span *s)
{
    if (!r->as_user && kv_auth_enabled(r->a->kv)) {
        /* auth came on while this request waited for its barrier */
        unauthenticated(r, "credentials required");
        return false;
    }
    if (!r->as_user)
        return true;
    kv_conn *own = c ? NULL : kv_reader_acquire(r->a->kv);
    if (!c && !own) {
        api_reply_error(r, 503, "busy", NULL, "no reader free; try again");
        return false;
    }
    int rc = kv_auth_check(c ? c : own, r->user, r->user_gen, s, KV_PERM_READ);
    if (own)
        kv_reader_release(r->a->kv, own);
    return check_answered(r, rc);
}

bool api_may_read_op(api_req *r, kv_conn *c)
{
    if (!c)
        return false;
    if (api_auth_read(r, c, &r->op.span))
        return true;
    kv_reader_release(r->a->kv, c);
    return false;
}

const buf *api_auth_wrap(api_req *r, const buf *cmd, buf *tmp)
{
    /* anonymous ("") while auth looks off here: apply refuses it if auth
     * is on by then */
    const char *user = r->as_user ? r->user : "";
    return kv_encode_as(user, r->user_gen, cmd->data, cmd->len, tmp) == KV_OK ? tmp : NULL;
}
