/* h_auth: the /auth routes (docs/API.md, "Authentication") — users,
 * roles, permissions, enable/disable as AUTH commands through Raft, the
 * listings after a read barrier, and /auth/authenticate, which checks a
 * password and signs a token with the cluster's secret.
 *
 * Must never: propose a plain password (it is hashed here, once, so every
 * replica stores the same hash), answer a listing with a hash or the
 * secret, or mint a token while auth is off.
 */
#include "api/api_int.h"
#include "api/input.h"
#include "auth/auth.h"

#include <stdlib.h>
#include <string.h>

/* ---- listings ---- */

static json_t *perm_json(const kv_auth_row *row)
{
    static const char *const words[] = {"", "read", "write", "readwrite"};
    json_t *p = json_object();
    if (!p || api_json_set_bytes(p, "key", row->key, row->key_len) < 0 ||
        (row->end_len && api_json_set_bytes(p, "range_end", row->end, row->end_len) < 0) ||
        json_object_set_new(p, "perm", json_string(words[row->perm & 3])) < 0) {
        json_decref(p);
        return NULL;
    }
    return p;
}

/* Rows grouped by name: {"name", "roles": [...]} or {"name", "permissions": [...]}. */
static json_t *group_rows(const kv_auth_row *rows, size_t n, bool users)
{
    json_t *out = json_array(), *cur = NULL, *list = NULL;
    for (size_t i = 0; out && i < n; i++) {
        if (!cur || strcmp(json_string_value(json_object_get(cur, "name")), rows[i].name) != 0) {
            list = json_array();
            cur = json_pack("{s:s,s:o}", "name", rows[i].name, users ? "roles" : "permissions",
                            list);
            if (!cur || json_array_append_new(out, cur) < 0)
                goto fail;
        }
        json_t *item = NULL;
        if (users && rows[i].role)
            item = json_string(rows[i].role);
        else if (!users && rows[i].key)
            item = perm_json(&rows[i]);
        else
            continue;
        if (json_array_append_new(list, item) < 0)
            goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

static void do_list(api_req *r)
{
    kv_conn *c = api_reader_after_barrier(r);
    if (!c)
        return;
    const char *sub = r->route.sub;
    bool users = sub[0] == 'u';
    const char *name = (const char *)r->route.key; /* NULL: every one */
    kv_auth_row *rows = NULL;
    size_t n = 0;
    int rc = kv_auth_list(c, users ? KV_AUTH_LIST_USERS : KV_AUTH_LIST_ROLES, name, &rows, &n);
    kv_reader_release(r->a->kv, c);
    json_t *list = rc == KV_OK ? group_rows(rows, n, users) : NULL;
    kv_auth_rows_free(rows, n);
    if (!list) {
        api_reply_error(r, 500, "internal", NULL, "cannot list");
    } else if (name && json_array_size(list) == 0) {
        json_decref(list);
        api_reply_error(r, 404, users ? "user_not_found" : "role_not_found", NULL, "%s: not found",
                        name);
    } else if (name) {
        json_t *one = json_incref(json_array_get(list, 0));
        json_decref(list);
        api_reply_json(r, 200, api_json_with_header(r->a, one, -1));
    } else {
        api_reply_json(r, 200, api_json_with_header(r->a, json_pack("{s:o}", users ? "users" : "roles",
                                                                    list), -1));
    }
}

/* ---- authenticate ---- */

static void do_authenticate(api_req *r)
{
    api_login_token t;
    if (!api_login_for_token(r, api_reader_after_barrier, &t))
        return;
    if (t.state == KV_ERR_NOT_FOUND)
        api_reply_error(r, 400, "auth_not_enabled", NULL, "auth is not enabled");
    else if (t.state != KV_OK)
        api_reply_error(r, 500, "internal", NULL, "cannot read the auth state");
    else if (!api_login_answered(r, t.login, t.retry_ms))
        api_reply_json(r, 200, api_json_with_header(r->a, json_pack("{s:s,s:I}", "token", t.token,
                       "ttl", (json_int_t)(AUTH_TOKEN_TTL_MS / 1000)), -1));
}

/* ---- changes ---- */

static void finish_change(api_req *r)
{
    if (r->status == NODE_OK && r->res && r->res->err == KV_ERR_INVALID &&
        strcmp(r->route.sub, "enable") == 0) {
        api_reply_error(r, 400, "root_required", NULL,
                        "auth enable needs user root holding role root");
        return;
    }
    if (r->status == NODE_OK && r->res && r->res->err == KV_ERR_INVALID) {
        api_reply_error(r, 400, "invalid_argument", NULL,
                        "root and its role root stay while auth is enabled");
        return;
    }
    if (r->status == NODE_OK && r->res &&
        (r->res->err == KV_ERR_NOT_FOUND || r->res->err == KV_ERR_EXISTS)) {
        bool nf = r->res->err == KV_ERR_NOT_FOUND;
        api_reply_error(r, nf ? 404 : 409, nf ? "not_found" : "already_exists", NULL,
                        nf ? "no such user, role or permission" : "already exists");
        return;
    }
    if (api_write_failed(r))
        return;
    api_reply_json(r, 200, api_json_with_header(r->a, json_object(), r->res->revision));
}

/* Hashes the password in c->arg into hash (the command then carries it). */
static bool hash_password(api_req *r, kv_auth_cmd *c, char *hash, size_t cap)
{
    if (c->op != KV_AUTH_USER_ADD && c->op != KV_AUTH_USER_PASSWORD)
        return true;
    if (auth_hash_password(c->arg, hash, cap) < 0) {
        api_reply_error(r, 500, "internal", NULL, "cannot hash the password");
        return false;
    }
    c->arg = hash;
    return true;
}

static void change(api_req *r, kv_auth_cmd *c)
{
    char hash[AUTH_HASH_MAX];
    uint8_t secret[KV_AUTH_SECRET_LEN];
    if (!hash_password(r, c, hash, sizeof hash))
        return;
    if (c->op == KV_AUTH_ENABLE) {
        if (auth_new_secret(secret, sizeof secret) < 0) {
            api_reply_error(r, 500, "internal", NULL, "no randomness for a signing key");
            return;
        }
        c->secret = secret;
        c->secret_len = sizeof secret;
    }
    buf cmd;
    buf_init(&cmd);
    api_propose_encoded(r, kv_encode_auth(c, &cmd), &cmd, finish_change);
    buf_free(&cmd);
    explicit_bzero(secret, sizeof secret);
}

void api_h_auth(api_req *r)
{
    const api_route *rt = &r->route;
    if ((rt->key && strlen((const char *)rt->key) != rt->key_len) ||
        (rt->key2 && strlen((const char *)rt->key2) != rt->key2_len)) {
        api_reply_error(r, 400, "invalid_argument", NULL, "name: holds a NUL byte");
        return;
    }
    if (strcmp(r->method, "GET") == 0) {
        api_wait_barrier(r, do_list);
        return;
    }
    if (r->body.len == 0 && !(r->doc = json_object())) {
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    if (!r->doc && !(r->doc = api_body_json(r)))
        return;
    kv_auth_cmd c;
    char err[256];
    int rc = api_auth_parse(r->route.sub, r->method, r->doc, (const char *)r->route.key,
                            (const char *)r->route.key2, &c, &r->arena, err, sizeof err);
    if (rc == -2)
        api_reply_error(r, 500, "internal", NULL, "out of memory");
    else if (rc < 0)
        api_reply_error(r, 400, "invalid_argument", NULL, "%s", err);
    else if (c.op == 0)
        api_wait_barrier(r, do_authenticate);
    else
        change(r, &c);
}
