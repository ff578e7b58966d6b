/* gw_auth: the gateway's auth/... — etcd's AuthEnable, Authenticate and
 * the user and role calls, as the same AUTH commands and listings the
 * native /auth routes use (kv_auth.c), answered in etcd's shapes and with
 * its error strings. A refusal from apply names no field (kv says "not
 * found"), so the state is read again to word it as etcd does.
 *
 * Must never: propose a plain password (auth_hash_password first), answer
 * with a hash or the signing key, or mint a token while auth is off.
 */
#include "api/v3/gw.h"
#include "auth/auth.h"

#include <stdlib.h>
#include <string.h>

#define E_USER_EXISTS "etcdserver: user name already exists"
#define E_USER_MISSING "etcdserver: user name not found"
#define E_ROLE_EXISTS "etcdserver: role name already exists"
#define E_ROLE_MISSING "etcdserver: role name not found"

/* A name field: absent or empty is etcd's "... name is empty". */
static int name_field(api_req *r, json_t *o, const char *field, bool role, const char **out)
{
    *out = json_string_value(json_object_get(o, field));
    if (!*out || !**out) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, role ? "etcdserver: role name is empty"
                                                    : "etcdserver: user name is empty");
        return -1;
    }
    if (!kv_auth_name_valid(*out)) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: invalid auth management");
        return -1;
    }
    return 0;
}

/* ---- refusals, worded from the state after apply ---- */

/* 1 the user exists, 0 it does not, -1 the store could not say. */
static int user_exists(kv_conn *c, const char *name)
{
    if (!name)
        return 0;
    char *hash = NULL;
    uint64_t gen;
    int rc = kv_auth_user_get(c, name, &hash, &gen);
    free(hash);
    return rc == KV_OK ? 1 : rc == KV_ERR_NOT_FOUND ? 0 : -1;
}

/* The same for a role ("root" always exists). */
static int role_exists(kv_conn *c, const char *name)
{
    if (!name)
        return 0;
    if (strcmp(name, "root") == 0)
        return 1;
    kv_auth_row *rows = NULL;
    size_t n = 0;
    int rc = kv_auth_list(c, KV_AUTH_LIST_ROLES, name, &rows, &n);
    kv_auth_rows_free(rows, n);
    return rc != KV_OK ? -1 : n > 0;
}

/* etcd's wording for a refused change, or NULL when the store failed to
 * say which name is missing: a read error must not be worded as the
 * client's mistake. */
static const char *not_found_why(kv_conn *c, const kv_auth_cmd *a)
{
    int yes;
    switch (a->op) {
    case KV_AUTH_USER_GRANT:
    case KV_AUTH_USER_REVOKE:
        if ((yes = user_exists(c, a->name)) <= 0)
            return yes < 0 ? NULL : E_USER_MISSING;
        if (a->op == KV_AUTH_USER_GRANT && (yes = role_exists(c, a->arg)) <= 0)
            return yes < 0 ? NULL : E_ROLE_MISSING; /* etcd checks the role only when granting */
        return "etcdserver: role is not granted to the user";
    case KV_AUTH_ROLE_REVOKE:
        if ((yes = role_exists(c, a->name)) < 0)
            return NULL;
        return yes ? "etcdserver: permission is not granted to the role" : E_ROLE_MISSING;
    case KV_AUTH_ROLE_GRANT:
    case KV_AUTH_ROLE_DELETE: return E_ROLE_MISSING;
    default: return E_USER_MISSING;
    }
}

static const char *invalid_why(kv_conn *c, const kv_auth_cmd *a)
{
    if (a->op != KV_AUTH_ENABLE)
        return "etcdserver: invalid auth management";
    int yes = user_exists(c, "root");
    return yes < 0  ? NULL
           : yes > 0 ? "etcdserver: root user does not have root role"
                     : "etcdserver: root user does not exist";
}

/* The command the request proposed, read back from r->txn's slot. */
static kv_auth_cmd *cmd_of(api_req *r) { return r->ext; }

static void finish_change(api_req *r)
{
    int err = r->status == NODE_OK && r->res ? r->res->err : KV_OK;
    if (err == KV_ERR_NOT_FOUND || err == KV_ERR_EXISTS || err == KV_ERR_INVALID) {
        kv_auth_cmd *a = cmd_of(r);
        kv_conn *c = kv_reader_acquire(r->a->kv);
        if (!c) {
            gw_reply_error(r, GW_UNAVAILABLE, "etcdserver: too many requests");
            return;
        }
        const char *why = err == KV_ERR_NOT_FOUND ? not_found_why(c, a)
                          : err == KV_ERR_INVALID  ? invalid_why(c, a)
                          : a->op == KV_AUTH_ROLE_ADD ? E_ROLE_EXISTS
                                                      : E_USER_EXISTS;
        kv_reader_release(r->a->kv, c);
        if (why)
            gw_reply_error(r, GW_FAILED_PRECONDITION, why);
        else
            gw_reply_error(r, GW_INTERNAL, "etcdserver: internal error");
        return;
    }
    if (gw_write_failed(r))
        return;
    gw_reply(r, json_pack("{s:o}", "header", gw_header(r, r->res->revision)));
}

static void cmd_free(api_req *r)
{
    free(r->ext);
    r->ext = NULL;
}

/* Proposes a (its strings live in r->doc or r's arena until the answer). */
static void propose(api_req *r, const kv_auth_cmd *a)
{
    kv_auth_cmd *keep = malloc(sizeof *keep);
    char hash[AUTH_HASH_MAX];
    uint8_t secret[KV_AUTH_SECRET_LEN];
    if (!keep) {
        gw_reply_error(r, GW_INTERNAL, "etcdserver: out of memory");
        return;
    }
    *keep = *a;
    r->ext = keep;
    r->ext_free = cmd_free;
    kv_auth_cmd c = *a;
    if ((c.op == KV_AUTH_USER_ADD || c.op == KV_AUTH_USER_PASSWORD) &&
        auth_hash_password(c.arg, hash, sizeof hash) < 0) {
        gw_reply_error(r, GW_INTERNAL, "etcdserver: cannot hash the password");
        return;
    }
    if (c.op == KV_AUTH_USER_ADD || c.op == KV_AUTH_USER_PASSWORD)
        c.arg = hash;
    if (c.op == KV_AUTH_ENABLE) {
        if (auth_new_secret(secret, sizeof secret) < 0) {
            gw_reply_error(r, GW_INTERNAL, "etcdserver: no randomness");
            return;
        }
        c.secret = secret;
        c.secret_len = sizeof secret;
    }
    buf cmd;
    buf_init(&cmd);
    int rc = kv_encode_auth(&c, &cmd);
    if (rc == KV_OK)
        api_propose_encoded(r, rc, &cmd, finish_change);
    else
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: invalid auth management");
    buf_free(&cmd);
}

static int password_field(api_req *r, json_t *o, const char **out)
{
    *out = json_string_value(json_object_get(o, "password"));
    if (!*out || !**out || strlen(*out) > AUTH_PASSWORD_MAX) {
        /* etcd 3.4 allows an empty password only with no_password */
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: password is empty");
        return -1;
    }
    return 0;
}

static void gw_auth_toggle(api_req *r, bool on)
{
    if (gw_body(r))
        propose(r, &(kv_auth_cmd){.op = on ? KV_AUTH_ENABLE : KV_AUTH_DISABLE});
}

void gw_auth_enable(api_req *r) { gw_auth_toggle(r, true); }
void gw_auth_disable(api_req *r) { gw_auth_toggle(r, false); }

void gw_user_add(api_req *r)
{
    json_t *o = gw_body(r);
    kv_auth_cmd a = {.op = KV_AUTH_USER_ADD};
    if (o && name_field(r, o, "name", false, &a.name) == 0 && password_field(r, o, &a.arg) == 0)
        propose(r, &a);
}

void gw_user_changepw(api_req *r)
{
    json_t *o = gw_body(r);
    kv_auth_cmd a = {.op = KV_AUTH_USER_PASSWORD};
    if (o && name_field(r, o, "name", false, &a.name) == 0 && password_field(r, o, &a.arg) == 0)
        propose(r, &a);
}

void gw_user_delete(api_req *r)
{
    json_t *o = gw_body(r);
    kv_auth_cmd a = {.op = KV_AUTH_USER_DELETE};
    if (o && name_field(r, o, "name", false, &a.name) == 0)
        propose(r, &a);
}

/* user/grant names the user "user"; user/revoke names it "name". */
static void user_role(api_req *r, bool grant)
{
    json_t *o = gw_body(r);
    kv_auth_cmd a = {.op = grant ? KV_AUTH_USER_GRANT : KV_AUTH_USER_REVOKE};
    if (o && name_field(r, o, grant ? "user" : "name", false, &a.name) == 0 &&
        name_field(r, o, "role", true, &a.arg) == 0)
        propose(r, &a);
}

void gw_user_grant(api_req *r) { user_role(r, true); }
void gw_user_revoke(api_req *r) { user_role(r, false); }

void gw_role_add(api_req *r)
{
    json_t *o = gw_body(r);
    kv_auth_cmd a = {.op = KV_AUTH_ROLE_ADD};
    if (o && name_field(r, o, "name", true, &a.name) == 0)
        propose(r, &a);
}

void gw_role_delete(api_req *r)
{
    json_t *o = gw_body(r);
    kv_auth_cmd a = {.op = KV_AUTH_ROLE_DELETE};
    if (o && name_field(r, o, "role", true, &a.name) == 0)
        propose(r, &a);
}

void gw_role_grant(api_req *r)
{
    static const char *const types[] = {"READ", "WRITE", "READWRITE", NULL};
    json_t *o = gw_body(r), *perm = o ? json_object_get(o, "perm") : NULL;
    kv_auth_cmd a = {.op = KV_AUTH_ROLE_GRANT};
    int type = 0;
    if (!o || name_field(r, o, "name", true, &a.name) < 0)
        return;
    if (!json_is_object(perm)) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: permission not given");
        return;
    }
    if (gw_enum(r, perm, "permType", types, &type) < 0 || gw_span(r, perm, &a.span) < 0)
        return;
    a.perm = (uint8_t)(type + 1); /* READ 0 .. READWRITE 2 -> KV_PERM_* */
    propose(r, &a);
}

void gw_role_revoke(api_req *r)
{
    json_t *o = gw_body(r);
    kv_auth_cmd a = {.op = KV_AUTH_ROLE_REVOKE};
    if (o && name_field(r, o, "role", true, &a.name) == 0 && gw_span(r, o, &a.span) == 0)
        propose(r, &a);
}

/* ---- reads (after a barrier) ---- */

static json_t *perm_json(const kv_auth_row *row)
{
    static const char *const types[] = {"", "READ", "WRITE", "READWRITE"};
    json_t *p = json_object();
    if (!p || (row->perm != KV_PERM_READ &&
               json_object_set_new(p, "permType", json_string(types[row->perm & 3])) < 0) ||
        gw_set_bytes(p, "key", row->key, row->key_len) < 0 ||
        (row->end_len && gw_set_bytes(p, "range_end", row->end, row->end_len) < 0)) {
        json_decref(p);
        return NULL;
    }
    return p;
}

/* What a listing shows: every name (user/list, role/list), a user's roles
 * (user/get), a role's permissions (role/get). */
enum listing_kind { LIST_NAMES, LIST_ROLES, LIST_PERMS };

static json_t *listing(const kv_auth_row *rows, size_t n, enum listing_kind kind)
{
    json_t *arr = json_array();
    const char *last = NULL;
    for (size_t i = 0; arr && i < n; i++) {
        json_t *item = NULL;
        if (kind == LIST_NAMES && (!last || strcmp(last, rows[i].name) != 0))
            item = json_string(rows[i].name);
        else if (kind == LIST_ROLES && rows[i].role)
            item = json_string(rows[i].role);
        else if (kind == LIST_PERMS && rows[i].key)
            item = perm_json(&rows[i]);
        last = rows[i].name;
        if (item && json_array_append_new(arr, item) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

static void do_auth_read(api_req *r)
{
    kv_conn *c = gw_reader(r);
    if (!c)
        return;
    const char *sub = r->route.sub, *name = r->ext;
    bool users = strncmp(sub, "auth/user/", 10) == 0;
    kv_auth_row *rows = NULL;
    size_t n = 0;
    int rc = kv_auth_list(c, users ? KV_AUTH_LIST_USERS : KV_AUTH_LIST_ROLES, name, &rows, &n);
    kv_reader_release(r->a->kv, c);
    if (rc != KV_OK || (name && n == 0 && strcmp(name, "root") != 0)) {
        kv_auth_rows_free(rows, n);
        if (rc != KV_OK)
            gw_reply_error(r, GW_INTERNAL, "etcdserver: internal error");
        else
            gw_reply_error(r, GW_FAILED_PRECONDITION, users ? E_USER_MISSING : E_ROLE_MISSING);
        return;
    }
    const char *field = !name ? (users ? "users" : "roles") : users ? "roles" : "perm";
    json_t *list = listing(rows, n, !name ? LIST_NAMES : users ? LIST_ROLES : LIST_PERMS);
    kv_auth_rows_free(rows, n);
    gw_reply_adding(r, json_pack("{s:o}", "header", gw_header(r, -1)), field, list);
}

static void name_free(api_req *r)
{
    r->ext = NULL; /* points into r->doc */
}

static void auth_read(api_req *r, const char *field)
{
    json_t *o = gw_body(r);
    const char *name = NULL;
    if (!o || (field && name_field(r, o, field, strcmp(field, "role") == 0, &name) < 0))
        return;
    r->ext = (void *)name;
    r->ext_free = name_free;
    api_wait_barrier(r, do_auth_read);
}

void gw_user_get(api_req *r) { auth_read(r, "name"); }
void gw_user_list(api_req *r) { auth_read(r, NULL); }
void gw_role_get(api_req *r) { auth_read(r, "role"); }
void gw_role_list(api_req *r) { auth_read(r, NULL); }

/* ---- authenticate ---- */

static void do_authenticate(api_req *r)
{
    api_login_token t;
    if (!api_login_for_token(r, gw_reader, &t))
        return;
    if (t.state == KV_ERR_NOT_FOUND)
        gw_reply_error(r, GW_FAILED_PRECONDITION, "etcdserver: authentication is not enabled");
    else if (t.state != KV_OK || t.login == API_LOGIN_INTERNAL)
        gw_reply_error(r, GW_INTERNAL, "etcdserver: internal error");
    else if (t.login == API_LOGIN_LIMITED)
        gw_reply_error(r, GW_RESOURCE_EXHAUSTED, "etcdserver: too many failed logins");
    else if (t.login == API_LOGIN_WRONG)
        gw_reply_error(r, GW_INVALID_ARGUMENT,
                       "etcdserver: authentication failed, invalid user ID or password");
    else
        gw_reply(r, json_pack("{s:o,s:s}", "header", gw_header(r, -1), "token", t.token));
}

void gw_authenticate(api_req *r)
{
    if (gw_body(r))
        api_wait_barrier(r, do_authenticate);
}
