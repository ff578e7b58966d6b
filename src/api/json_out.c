/* json_out: range answers written straight into a buf, byte-identical to
 * what jansson's json_dumps(..., JSON_COMPACT) prints for the same tree
 * (json.c builds that tree; api_test compares the two). It exists because
 * building and dumping a jansson tree per kv was most of a range read's CPU.
 *
 * Must never: write a string that is not valid UTF-8 (bytes that are not
 * go out as *_base64, as in json.c), escape differently from jansson
 * (only '"', '\\' and bytes < 0x20; '/' and non-ASCII stay as they are),
 * or leave a half-written value unreported (every writer returns -1 on
 * allocation failure; the caller drops the buffer).
 */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

static int put_lit(buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

/* Decimal like jansson's "%lld", without snprintf's cost. */
static int put_i64(buf *b, int64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    /* negate in unsigned arithmetic: INT64_MIN has no positive twin */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    return buf_append(b, tmp + i, sizeof tmp - i);
}

/* The escape of one byte jansson escapes, into out; its length. */
static size_t escape_byte(uint8_t c, char out[6])
{
    static const char hex[] = "0123456789ABCDEF";
    char s = 0;
    switch (c) {
    case '"': s = '"'; break;
    case '\\': s = '\\'; break;
    case '\b': s = 'b'; break;
    case '\f': s = 'f'; break;
    case '\n': s = 'n'; break;
    case '\r': s = 'r'; break;
    case '\t': s = 't'; break;
    default: break;
    }
    out[0] = '\\';
    if (s) {
        out[1] = s;
        return 2;
    }
    memcpy(out + 1, "u00", 3);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 15];
    return 6;
}

static bool needs_escape(uint8_t c) { return c < 0x20 || c == '"' || c == '\\'; }

/* A quoted JSON string of p (valid UTF-8, checked by the caller): runs of
 * plain bytes are copied whole. */
static int jw_string(buf *b, const uint8_t *p, size_t n)
{
    if (buf_reserve(b, n + 2) < 0 || buf_put_u8(b, '"') < 0)
        return -1;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (!needs_escape(p[i]))
            continue;
        char esc[6];
        size_t len = escape_byte(p[i], esc);
        if (buf_append(b, p + run, i - run) < 0 || buf_append(b, esc, len) < 0)
            return -1;
        run = i + 1;
    }
    return buf_append(b, p + run, n - run) < 0 ? -1 : buf_put_u8(b, '"');
}

/* "name":value as a key, without the separator before it. */
static int put_name(buf *b, const char *name, const char *suffix)
{
    if (buf_put_u8(b, '"') < 0 || put_lit(b, name) < 0 || put_lit(b, suffix) < 0)
        return -1;
    return put_lit(b, "\":");
}

/* "name":"..." (valid UTF-8) or "name_base64":"...". */
static int jw_bytes(buf *b, const char *name, const uint8_t *p, size_t n)
{
    if (api_utf8_valid(p, n))
        return put_name(b, name, "") < 0 ? -1 : jw_string(b, p, n);
    char *b64 = api_b64_encode(p, n); /* base64 never needs escaping */
    int rc = !b64 || put_name(b, name, "_base64") < 0 || buf_put_u8(b, '"') < 0 ||
                     put_lit(b, b64) < 0 || buf_put_u8(b, '"') < 0
                 ? -1 : 0;
    free(b64);
    return rc;
}

/* ,"name":v (first: without the comma). */
static int put_int_field(buf *b, const char *name, int64_t v, bool first)
{
    if ((!first && buf_put_u8(b, ',') < 0) || put_name(b, name, "") < 0)
        return -1;
    return put_i64(b, v);
}

int api_jw_kv(buf *b, const kv_kv *item, bool keys_only)
{
    if (buf_put_u8(b, '{') < 0 ||
        put_int_field(b, "create_revision", item->create_revision, true) < 0 ||
        put_int_field(b, "mod_revision", item->mod_revision, false) < 0 ||
        put_int_field(b, "version", item->version, false) < 0 ||
        put_int_field(b, "lease", item->lease, false) < 0 || buf_put_u8(b, ',') < 0 ||
        jw_bytes(b, "key", item->key, item->key_len) < 0)
        return -1;
    if (!keys_only && (buf_put_u8(b, ',') < 0 ||
                       jw_bytes(b, "value", item->value, item->value_len) < 0))
        return -1;
    return buf_put_u8(b, '}');
}

static int jw_header_info(buf *b, const node_info *info, int64_t revision)
{
    if (buf_put_u8(b, '{') < 0 ||
        put_int_field(b, "revision", revision >= 0 ? revision : (int64_t)info->revision,
                      true) < 0 ||
        put_int_field(b, "raft_term", (int64_t)info->raft_term, false) < 0 ||
        put_int_field(b, "member_id", (int64_t)info->member_id, false) < 0 ||
        put_int_field(b, "cluster_id", (int64_t)info->cluster_id, false) < 0)
        return -1;
    return buf_put_u8(b, '}');
}

/* Room for the whole body at once (escapes and base64 may still grow it):
 * the bytes plus the field names and numbers of each kv. */
static size_t range_estimate(const kv_op_result *res, bool keys_only)
{
    size_t n = 256;
    for (size_t i = 0; i < res->kvs.n; i++) {
        const kv_kv *it = &res->kvs.items[i];
        n += 160 + it->key_len + (keys_only ? 0 : it->value_len);
    }
    return n;
}

int api_jw_range(buf *b, api *a, const kv_op_result *res, bool keys_only, int64_t revision)
{
    if (buf_reserve(b, range_estimate(res, keys_only)) < 0 || put_lit(b, "{\"kvs\":[") < 0)
        return -1;
    for (size_t i = 0; i < res->kvs.n; i++) {
        if ((i && buf_put_u8(b, ',') < 0) || api_jw_kv(b, &res->kvs.items[i], keys_only) < 0)
            return -1;
    }
    node_info info;
    node_get_info(a->node, &info);
    if (buf_put_u8(b, ']') < 0 || put_int_field(b, "count", res->count, false) < 0 ||
        put_lit(b, res->more ? ",\"more\":true" : ",\"more\":false") < 0 ||
        put_lit(b, ",\"header\":") < 0 || jw_header_info(b, &info, revision) < 0)
        return -1;
    return put_lit(b, "}\n");
}
