/* fuzz_auth: api_auth_parse, the JSON bodies of the /auth routes. Input:
 * one byte choosing the route shape and method, then the body. Properties:
 * no crash or leak; a refusal says why in a NUL-terminated message that
 * never holds the password sent (a password that is a word of the message's
 * fixed text, like "name", is told apart by asking again with a different
 * password of the same length: a leak changes the message, fixed text does
 * not); an accepted body, with its password
 * hashed (a fixed stand-in here) and a signing key for enable, encodes
 * (kv_encode_auth) and decodes (kv_cmd_decode, what apply runs) to the
 * same op. */
#include "fuzz.h"
#include "api/api_int.h"
#include "kv/kv_internal.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *sub, *method;
} shapes[] = {
    {"authenticate", "POST"}, {"users", "POST"}, {"user", "DELETE"},
    {"user_password", "POST"}, {"user_roles", "POST"}, {"user_role", "DELETE"},
    {"roles", "POST"}, {"role", "DELETE"}, {"role_perms", "POST"},
    {"role_perms", "DELETE"}, {"enable", "POST"}, {"disable", "POST"},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

static void check_encoded(kv_auth_cmd *c)
{
    static const uint8_t secret[KV_AUTH_SECRET_LEN] = {1};
    if (c->op == 0)
        return; /* authenticate: nothing is proposed */
    if (c->op == KV_AUTH_USER_ADD || c->op == KV_AUTH_USER_PASSWORD)
        c->arg = "$y$j9T$stand-in$hash";
    if (c->op == KV_AUTH_ENABLE) {
        c->secret = secret;
        c->secret_len = sizeof secret;
    }
    buf b;
    buf_init(&b);
    FUZZ_CHECK(kv_encode_auth(c, &b) == KV_OK);
    kv_cmd d;
    FUZZ_CHECK(kv_cmd_decode(b.data, b.len, &d) == KV_OK);
    FUZZ_CHECK(d.kind == KV_CMD_AUTH && d.auth.op == c->op);
    kv_cmd_free(&d);
    buf_free(&b);
}

/* An error names an unknown field: a password the client also put in a
 * field's name is the client's own echo, not a leak. */
static bool in_a_field_name(json_t *root, const char *pw)
{
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (strstr(k, pw))
            return true;
    }
    return false;
}

/* The refusal for the same body with every password byte changed (same
 * length, so the same length checks hold). */
static void refusal_with_other_password(json_t *root, const char *pw, size_t len, unsigned pick,
                                        const char *name, const char *role, char *err,
                                        size_t errlen)
{
    char *other = malloc(len ? len : 1);
    json_t *copy = json_deep_copy(root);
    FUZZ_CHECK(other && copy);
    for (size_t i = 0; i < len; i++)
        other[i] = pw[i] == 'x' ? 'y' : 'x';
    FUZZ_CHECK(json_object_set_new(copy, "password", json_stringn(other, len)) == 0);
    api_arena ar;
    memset(&ar, 0, sizeof ar);
    kv_auth_cmd c;
    err[0] = 0;
    int rc = api_auth_parse(shapes[pick % N_SHAPES].sub, shapes[pick % N_SHAPES].method, copy,
                            name, role, &c, &ar, err, errlen);
    FUZZ_CHECK(rc != 0);
    api_arena_free(&ar);
    json_decref(copy);
    free(other);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned pick = data[0];
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return 0;
    api_arena ar;
    memset(&ar, 0, sizeof ar);
    kv_auth_cmd c;
    char err[256];
    err[0] = 0;
    const char *name = pick & 0x80 ? "al:ice" : "alice", *role = pick & 0x40 ? NULL : "app";
    int rc = api_auth_parse(shapes[pick % N_SHAPES].sub, shapes[pick % N_SHAPES].method, root,
                            name, role, &c, &ar, err, sizeof err);
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2);
    if (rc == 0) {
        check_encoded(&c);
    } else {
        FUZZ_CHECK(err[0] && memchr(err, 0, sizeof err));
        const char *pw = json_string_value(json_object_get(root, "password"));
        if (pw && strlen(pw) >= 4 && strstr(err, pw) && !in_a_field_name(root, pw)) {
            char again[sizeof err];
            refusal_with_other_password(root, pw, json_string_length(json_object_get(root, "password")),
                                        pick, name, role, again, sizeof again);
            FUZZ_CHECK(strcmp(err, again) == 0);
        }
    }
    api_arena_free(&ar);
    json_decref(root);
    return 0;
}
