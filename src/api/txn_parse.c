/* txn_parse: the etcd-shaped JSON transaction of POST /txn into a kv_txn.
 * Every error names the offending field by its path, e.g.
 * compare[0].target: unknown target "FOO".
 *
 * Must never: accept a field it does not know (a typo would silently
 * change meaning), trust a JSON type, or keep a pointer into memory that
 * is not owned by the JSON document or the arena.
 */
#include "api/api_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TXN_MAX_OPS 128 /* etcd's default --max-txn-ops */

void *api_arena_keep(api_arena *ar, void *p)
{
    if (!p)
        return NULL;
    if (xgrow(&ar->ptrs, &ar->cap, ar->n, sizeof *ar->ptrs) < 0) {
        free(p);
        return NULL;
    }
    ar->ptrs[ar->n++] = p;
    return p;
}

void api_arena_free(api_arena *ar)
{
    for (size_t i = 0; i < ar->n; i++)
        free(ar->ptrs[i]);
    free(ar->ptrs);
    memset(ar, 0, sizeof *ar);
}

typedef struct {
    api_arena *ar;
    char *err;
    size_t errlen;
    int rc; /* -1 bad input, -2 out of memory */
} pctx;

static int fail(pctx *p, const char *path, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(pctx *p, const char *path, const char *field, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s%s%s: ", path, *path && *field ? "." : "", field);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < p->errlen)
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    p->rc = -1;
    return -1;
}

static int oom(pctx *p)
{
    snprintf(p->err, p->errlen, "out of memory");
    p->rc = -2;
    return -2;
}

static void *alloc(pctx *p, size_t n)
{
    return api_arena_keep(p->ar, calloc(n ? n : 1, 1));
}

static int only_fields(pctx *p, json_t *obj, const char *path, const char *const *allowed)
{
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v) {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], name) != 0)
            i++;
        if (!allowed[i])
            return fail(p, path, name, "unknown field");
    }
    return 0;
}

/* name as a string, or name_base64; absent gives an empty value. */
static int get_bytes(pctx *p, json_t *obj, const char *path, const char *name, bool required,
                     const uint8_t **out, uint32_t *len, bool *present)
{
    char b64name[48];
    snprintf(b64name, sizeof b64name, "%s_base64", name);
    json_t *s = json_object_get(obj, name), *b = json_object_get(obj, b64name);
    *out = (const uint8_t *)"";
    *len = 0;
    *present = s || b;
    if (s && b)
        return fail(p, path, name, "give %s or %s, not both", name, b64name);
    if (!s && !b)
        return required ? fail(p, path, name, "required") : 0;
    json_t *v = s ? s : b;
    const char *field = s ? name : b64name;
    if (!json_is_string(v))
        return fail(p, path, field, "expected a string");
    size_t n = json_string_length(v);
    if (n > UINT32_MAX)
        return fail(p, path, field, "too long");
    if (s) {
        *out = (const uint8_t *)json_string_value(v);
        *len = (uint32_t)n;
        return 0;
    }
    uint8_t *d;
    size_t dn;
    int rc = api_b64_decode(json_string_value(v), n, &d, &dn);
    if (rc == -2 || (rc == 0 && !api_arena_keep(p->ar, d)))
        return oom(p);
    if (rc < 0)
        return fail(p, path, field, "bad base64");
    *out = d;
    *len = (uint32_t)dn;
    return 0;
}

static int get_int(pctx *p, json_t *obj, const char *path, const char *name, int64_t *out)
{
    json_t *v = json_object_get(obj, name);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(p, path, name, "expected an integer >= 0");
    *out = json_integer_value(v);
    return 0;
}

static int get_bool(pctx *p, json_t *obj, const char *path, const char *name, bool *out)
{
    json_t *v = json_object_get(obj, name);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return fail(p, path, name, "expected true or false");
    *out = json_is_true(v);
    return 0;
}

static int lookup_word(pctx *p, json_t *obj, const char *path, const char *name,
                       const char *const *words, uint8_t *out)
{
    json_t *v = json_object_get(obj, name);
    if (!v)
        return fail(p, path, name, "required");
    const char *s = json_string_value(v);
    if (!s)
        return fail(p, path, name, "expected a string");
    for (uint8_t i = 0; words[i]; i++) {
        if (strcmp(words[i], s) == 0) {
            *out = (uint8_t)(i + 1); /* the kv enums start at 1 in this order */
            return 0;
        }
    }
    return fail(p, path, name, "unknown %s \"%.40s\"", name, s);
}

static int parse_compare(pctx *p, json_t *c, const char *path, kv_compare *out)
{
    static const char *const fields[] = {"key", "key_base64", "target", "result", "value",
                                         "value_base64", "version", "create_revision",
                                         "mod_revision", "lease", NULL};
    static const char *const targets[] = {"VALUE", "VERSION", "CREATE", "MOD", "LEASE", NULL};
    static const char *const results[] = {"EQUAL", "NOT_EQUAL", "GREATER", "LESS", NULL};
    /* the number field each target reads (VALUE reads value) */
    static const char *const numbers[] = {NULL, "version", "create_revision", "mod_revision",
                                          "lease"};
    bool present;
    if (!json_is_object(c))
        return fail(p, path, "", "expected an object");
    if (only_fields(p, c, path, fields) < 0 ||
        get_bytes(p, c, path, "key", true, &out->key, &out->key_len, &present) < 0 ||
        lookup_word(p, c, path, "target", targets, &out->target) < 0 ||
        lookup_word(p, c, path, "result", results, &out->result) < 0)
        return -1;
    if (out->target == KV_CMP_VALUE)
        return get_bytes(p, c, path, "value", false, &out->value, &out->value_len, &present);
    return get_int(p, c, path, numbers[out->target - 1], &out->number);
}

/* key plus range_end or prefix=true, into span. */
static int parse_span(pctx *p, json_t *o, const char *path, bool ranges, kv_span *sp)
{
    static const uint8_t zero[1] = {0};
    bool present, has_end = false, prefix = false;
    if (get_bytes(p, o, path, "key", true, &sp->key, &sp->key_len, &present) < 0)
        return -1;
    if (!ranges)
        return 0;
    if (get_bytes(p, o, path, "range_end", false, &sp->end, &sp->end_len, &has_end) < 0 ||
        get_bool(p, o, path, "prefix", &prefix) < 0)
        return -1;
    if (prefix && has_end)
        return fail(p, path, "prefix", "cannot be combined with range_end");
    if (prefix) {
        uint8_t *end = alloc(p, (size_t)sp->key_len + 1);
        if (!end)
            return oom(p);
        sp->end_len = kv_prefix_end(sp->key, sp->key_len, end);
        sp->end = end;
    }
    sp->has_end = has_end || prefix;
    if (sp->key_len == 0 && sp->has_end) { /* "from the first key", as etcd spells it */
        sp->key = zero;
        sp->key_len = 1;
    }
    return 0;
}

static int parse_put(pctx *p, json_t *o, const char *path, kv_op *op)
{
    static const char *const fields[] = {"key", "key_base64", "value", "value_base64", "lease",
                                         "prev_kv", NULL};
    bool present;
    op->type = KV_OP_PUT;
    if (only_fields(p, o, path, fields) < 0 || parse_span(p, o, path, false, &op->span) < 0 ||
        get_bytes(p, o, path, "value", false, &op->value, &op->value_len, &present) < 0 ||
        get_int(p, o, path, "lease", &op->lease) < 0 ||
        get_bool(p, o, path, "prev_kv", &op->prev_kv) < 0)
        return -1;
    return 0;
}

static int parse_range(pctx *p, json_t *o, const char *path, kv_op *op)
{
    static const char *const fields[] = {"key", "key_base64", "range_end", "range_end_base64",
                                         "prefix", "limit", "revision", "keys_only",
                                         "count_only", NULL};
    op->type = KV_OP_RANGE;
    if (only_fields(p, o, path, fields) < 0 || parse_span(p, o, path, true, &op->span) < 0 ||
        get_int(p, o, path, "limit", &op->limit) < 0 ||
        get_int(p, o, path, "revision", &op->rev) < 0 ||
        get_bool(p, o, path, "keys_only", &op->keys_only) < 0 ||
        get_bool(p, o, path, "count_only", &op->count_only) < 0)
        return -1;
    return 0;
}

static int parse_delete(pctx *p, json_t *o, const char *path, kv_op *op)
{
    static const char *const fields[] = {"key", "key_base64", "range_end", "range_end_base64",
                                         "prefix", "prev_kv", NULL};
    op->type = KV_OP_DELETE;
    if (only_fields(p, o, path, fields) < 0 || parse_span(p, o, path, true, &op->span) < 0 ||
        get_bool(p, o, path, "prev_kv", &op->prev_kv) < 0)
        return -1;
    return 0;
}

static int parse_op(pctx *p, json_t *o, const char *path, kv_op *op)
{
    static const struct {
        const char *name;
        int (*parse)(pctx *, json_t *, const char *, kv_op *);
    } kinds[] = {{"request_put", parse_put},
                 {"request_range", parse_range},
                 {"request_delete_range", parse_delete}};
    if (!json_is_object(o) || json_object_size(o) != 1)
        return fail(p, path, "", "expected an object with one of request_put, request_range, "
                                 "request_delete_range");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        json_t *body = json_object_get(o, kinds[i].name);
        if (!body)
            continue;
        char sub[96];
        snprintf(sub, sizeof sub, "%s.%s", path, kinds[i].name);
        if (!json_is_object(body))
            return fail(p, sub, "", "expected an object");
        return kinds[i].parse(p, body, sub, op);
    }
    const char *name = json_object_iter_key(json_object_iter(o));
    return fail(p, path, name, "unknown operation");
}

/* Parses root[name] (an optional array) with one element parser. */
static int parse_list(pctx *p, json_t *root, const char *name, size_t elem, void **out, size_t *n,
                      int (*each)(pctx *, json_t *, const char *, void *))
{
    json_t *arr = json_object_get(root, name);
    *n = 0;
    *out = NULL;
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return fail(p, "", name, "expected an array");
    if (json_array_size(arr) > TXN_MAX_OPS)
        return fail(p, "", name, "too many entries (max %d)", TXN_MAX_OPS);
    *out = alloc(p, json_array_size(arr) * elem);
    if (!*out)
        return oom(p);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char path[48];
        snprintf(path, sizeof path, "%s[%zu]", name, i);
        if (each(p, json_array_get(arr, i), path, (char *)*out + i * elem) < 0)
            return -1;
    }
    *n = json_array_size(arr);
    return 0;
}

static int each_compare(pctx *p, json_t *v, const char *path, void *out)
{
    return parse_compare(p, v, path, out);
}

static int each_op(pctx *p, json_t *v, const char *path, void *out)
{
    return parse_op(p, v, path, out);
}

int api_txn_parse(json_t *root, kv_txn *t, api_arena *ar, char *err, size_t errlen)
{
    static const char *const fields[] = {"compare", "success", "failure", NULL};
    pctx p = {ar, err, errlen, 0};
    void *cmp, *succ, *fail_ops;
    memset(t, 0, sizeof *t);
    if (only_fields(&p, root, "", fields) < 0 ||
        parse_list(&p, root, "compare", sizeof(kv_compare), &cmp, &t->n_compare, each_compare) < 0 ||
        parse_list(&p, root, "success", sizeof(kv_op), &succ, &t->n_success, each_op) < 0 ||
        parse_list(&p, root, "failure", sizeof(kv_op), &fail_ops, &t->n_failure, each_op) < 0)
        return p.rc ? p.rc : -1;
    t->compare = cmp;
    t->success = succ;
    t->failure = fail_ops;
    return 0;
}

int api_json_span(json_t *o, kv_span *sp, api_arena *ar, char *err, size_t errlen)
{
    pctx p = {ar, err, errlen, 0};
    memset(sp, 0, sizeof *sp);
    return parse_span(&p, o, "", true, sp) < 0 ? p.rc : 0;
}
