/* json: kv objects, headers and op results as JSON (jansson), with bytes
 * shown as strings when valid UTF-8 and as *_base64 otherwise.
 * Must never hand jansson bytes that are not valid UTF-8 as a string, or
 * ignore an allocation failure (every builder returns NULL instead). */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

/* The end of the ASCII run from i, 8 bytes at a time: keys and values are
 * mostly ASCII, and every range answer checks each of them. */
static size_t ascii_run(const uint8_t *p, size_t i, size_t n)
{
    for (uint64_t w; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull)
            break;
    }
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF. */
bool api_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while ((i = ascii_run(p, i, n)) < n) {
        uint8_t c = p[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len > n - i)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

const char *api_utf8_or(const char *msg, const char *fallback)
{
    return api_utf8_valid((const uint8_t *)msg, strlen(msg)) ? msg : fallback;
}

int api_json_set_bytes(json_t *obj, const char *name, const uint8_t *p, size_t n)
{
    if (api_utf8_valid(p, n))
        return json_object_set_new(obj, name, json_stringn((const char *)p, n));
    char *b64 = api_b64_encode(p, n);
    if (!b64)
        return -1;
    char field[64];
    snprintf(field, sizeof field, "%s_base64", name);
    int rc = json_object_set_new(obj, field, json_string(b64));
    free(b64);
    return rc;
}

json_t *api_json_header(api *a, int64_t revision)
{
    node_info info;
    node_get_info(a->node, &info);
    return json_pack("{s:I,s:I,s:I,s:I}", "revision",
                     (json_int_t)(revision >= 0 ? revision : info.revision), "raft_term",
                     (json_int_t)info.raft_term, "member_id", (json_int_t)info.member_id,
                     "cluster_id", (json_int_t)info.cluster_id);
}

json_t *api_json_with_header(api *a, json_t *body, int64_t revision)
{
    if (body && json_object_set_new(body, "header", api_json_header(a, revision)) < 0) {
        json_decref(body);
        body = NULL;
    }
    return body;
}

json_t *api_json_kv(const kv_kv *item, bool keys_only)
{
    json_t *o = json_pack("{s:I,s:I,s:I,s:I}", "create_revision", (json_int_t)item->create_revision,
                          "mod_revision", (json_int_t)item->mod_revision, "version",
                          (json_int_t)item->version, "lease", (json_int_t)item->lease);
    if (!o)
        return NULL;
    if (api_json_set_bytes(o, "key", item->key, item->key_len) < 0 ||
        (!keys_only && api_json_set_bytes(o, "value", item->value, item->value_len) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *api_json_kvs(const kv_list *l, bool keys_only)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l->n; i++) {
        if (json_array_append_new(arr, api_json_kv(&l->items[i], keys_only)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* The first kv of a list, or NULL (not an error) when the list is empty. */
static json_t *first_kv(const kv_list *l, bool *failed)
{
    if (l->n == 0)
        return NULL;
    json_t *o = api_json_kv(&l->items[0], false);
    *failed = !o;
    return o;
}

json_t *api_json_op_result(const kv_op_result *res, const kv_op *op)
{
    bool failed = false;
    bool keys_only = op && op->keys_only;
    switch (res->type) {
    case KV_OP_RANGE:
        return json_pack("{s:o,s:I,s:b}", "kvs", api_json_kvs(&res->kvs, keys_only), "count",
                         (json_int_t)res->count, "more", res->more);
    case KV_OP_PUT: {
        json_t *prev = first_kv(&res->kvs, &failed);
        return failed ? NULL : json_pack("{s:o*}", "prev_kv", prev);
    }
    case KV_OP_DELETE: {
        json_t *prev = res->kvs.n ? api_json_kvs(&res->kvs, false) : NULL;
        if (res->kvs.n && !prev)
            return NULL;
        return json_pack("{s:I,s:o*}", "deleted", (json_int_t)res->deleted, "prev_kvs", prev);
    }
    default:
        return NULL;
    }
}
