/* auth_parse: the JSON bodies of the /auth routes into a kv_auth_cmd —
 * {"name","password"}, {"password"}, {"role"}, {"name"}, and a permission
 * {"key", "range_end"|"prefix", "perm"}. Pure: fuzzed (fuzz_auth).
 *
 * Must never: accept a field it does not know, a name kv would refuse, a
 * password that is empty or longer than AUTH_PASSWORD_MAX, or let a
 * password reach an error message.
 */
#include "api/api_int.h"
#include "auth/auth.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    char *err;
    size_t errlen;
} perr;

static int bad(perr *p, const char *field, const char *why)
{
    snprintf(p->err, p->errlen, "%s: %s", field, why);
    return -1;
}

static int only(perr *p, json_t *root, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], k) != 0)
            i++;
        if (!allowed[i]) {
            snprintf(p->err, p->errlen, "%.64s: unknown field", k);
            return -1;
        }
    }
    return 0;
}

static int get_str(perr *p, json_t *root, const char *field, const char **out)
{
    json_t *v = json_object_get(root, field);
    if (!v)
        return bad(p, field, "required");
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return bad(p, field, "expected a string without NUL bytes");
    *out = json_string_value(v);
    return 0;
}

static int get_name(perr *p, json_t *root, const char *field, const char **out)
{
    if (get_str(p, root, field, out) < 0)
        return -1;
    if (!kv_auth_name_valid(*out))
        return bad(p, field, "1 to 128 printable ASCII characters, without ':' or '/'");
    return 0;
}

static int get_password(perr *p, json_t *root, const char **out)
{
    if (get_str(p, root, "password", out) < 0)
        return -1;
    size_t n = strlen(*out);
    if (n == 0 || n > AUTH_PASSWORD_MAX)
        return bad(p, "password", "1 to 1024 bytes");
    return 0;
}

static int perm_word(perr *p, json_t *root, uint8_t *perm)
{
    static const char *const words[] = {"read", "write", "readwrite"};
    const char *s;
    if (get_str(p, root, "perm", &s) < 0)
        return -1;
    for (uint8_t i = 0; i < 3; i++) {
        if (strcmp(words[i], s) == 0) {
            *perm = (uint8_t)(i + 1); /* KV_PERM_READ, WRITE, READWRITE */
            return 0;
        }
    }
    return bad(p, "perm", "expected read, write or readwrite");
}

static int parse_perm(perr *p, const char *method, json_t *root, kv_auth_cmd *c, api_arena *ar)
{
    static const char *const fields[] = {"key", "key_base64", "range_end", "range_end_base64",
                                         "prefix", "perm", NULL};
    bool grant = strcmp(method, "POST") == 0;
    c->op = grant ? KV_AUTH_ROLE_GRANT : KV_AUTH_ROLE_REVOKE;
    if (only(p, root, fields) < 0)
        return -1;
    int rc = api_json_span(root, &c->span, ar, p->err, p->errlen);
    if (rc < 0)
        return rc;
    const kv_span *sp = &c->span;
    if (!sp->has_end && sp->key_len == 0)
        return bad(p, "key", "must not be empty");
    if (sp->has_end && sp->end_len == 0)
        return bad(p, "range_end", "must not be empty (\"\\u0000\": every key from key on)");
    if (sp->key_len > KV_MAX_KEY_LEN || sp->end_len > KV_MAX_KEY_LEN + 1)
        return bad(p, "key", "longer than 65536 bytes");
    if (grant)
        return perm_word(p, root, &c->perm);
    return json_object_get(root, "perm") ? bad(p, "perm", "not taken when revoking") : 0;
}

/* Routes whose names come from the path, with the body they take. */
static int parse_named(perr *p, const char *sub, const char *method, json_t *root,
                       const char *role_name, kv_auth_cmd *c, api_arena *ar)
{
    static const char *const pw[] = {"password", NULL}, *const role[] = {"role", NULL};
    static const char *const none[] = {NULL};
    if (!c->name || !kv_auth_name_valid(c->name))
        return bad(p, "name", "1 to 128 printable ASCII characters, without ':' or '/'");
    if (strcmp(sub, "user_password") == 0) {
        c->op = KV_AUTH_USER_PASSWORD;
        return only(p, root, pw) < 0 ? -1 : get_password(p, root, &c->arg);
    }
    if (strcmp(sub, "user_roles") == 0) {
        c->op = KV_AUTH_USER_GRANT;
        return only(p, root, role) < 0 ? -1 : get_name(p, root, "role", &c->arg);
    }
    if (strcmp(sub, "role_perms") == 0)
        return parse_perm(p, method, root, c, ar);
    if (only(p, root, none) < 0)
        return -1;
    if (strcmp(sub, "user_role") == 0) {
        c->op = KV_AUTH_USER_REVOKE;
        c->arg = role_name;
        return c->arg && kv_auth_name_valid(c->arg) ? 0 : bad(p, "role", "not a role name");
    }
    c->op = strcmp(sub, "user") == 0 ? KV_AUTH_USER_DELETE : KV_AUTH_ROLE_DELETE;
    return 0;
}

int api_auth_parse(const char *sub, const char *method, json_t *root, const char *name,
                   const char *role, kv_auth_cmd *c, api_arena *ar, char *err, size_t errlen)
{
    static const char *const user_fields[] = {"name", "password", NULL};
    static const char *const role_fields[] = {"name", NULL};
    static const char *const none[] = {NULL};
    perr p = {err, errlen};
    memset(c, 0, sizeof *c);
    c->name = name; /* the path's role goes only where one is named: user_role */
    if (!json_is_object(root))
        return bad(&p, "body", "expected a JSON object");
    if (strcmp(sub, "authenticate") == 0 || strcmp(sub, "users") == 0) {
        c->op = sub[0] == 'u' ? KV_AUTH_USER_ADD : 0;
        if (only(&p, root, user_fields) < 0 || get_name(&p, root, "name", &c->name) < 0)
            return -1;
        return get_password(&p, root, &c->arg);
    }
    if (strcmp(sub, "roles") == 0) {
        c->op = KV_AUTH_ROLE_ADD;
        return only(&p, root, role_fields) < 0 ? -1 : get_name(&p, root, "name", &c->name);
    }
    if (strcmp(sub, "enable") == 0 || strcmp(sub, "disable") == 0) {
        c->op = sub[0] == 'e' ? KV_AUTH_ENABLE : KV_AUTH_DISABLE;
        c->name = NULL;
        return only(&p, root, none);
    }
    return parse_named(&p, sub, method, root, role, c, ar);
}
