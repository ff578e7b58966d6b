/* fuzz_body: the readers of a request's JSON body — the etcd v3 gateway's
 * (src/api/v3/gw.c: gw_body, gw_i64, gw_bool, gw_bytes, gw_enum, gw_span)
 * and the native API's (src/api/input.c: api_body_json, api_body_int).
 *
 * Input: an HTTP request body, exactly as a gateway route receives it.
 * gw_body loads it (an empty body is {}); when that gives an object, each
 * reader is called on a fixed list of etcd's field names, first of the
 * object, then of its "perm" member (of any type, or absent: gw_role_grant
 * reads a Permission so). libmicrohttpd and the node are replaced at link
 * time by stubs.c, so a refusal runs the api's real reply path.
 *
 * Properties, beyond no crash, leak or UB:
 * - gw_body returns the object exactly when the body is empty or a JSON
 *   object as jansson reads it with the gateway's flags (the same object),
 *   else answers once;
 * - a reader returns 0 with no answer, or -1 with exactly one; nothing
 *   runs out of memory here, so that answer is a 400;
 * - an absent or null field leaves *out alone (gw_bytes: NULL, 0);
 * - gw_i64: a JSON integer is its value; a string is accepted exactly
 *   when Go's strconv.ParseInt takes it (as etcd's gateway): [+-]?[0-9]+
 *   within int64, with its value; any other type is refused;
 * - gw_bool: true and false only;
 * - gw_bytes: accepted exactly when padded standard base64 (RFC 4648); the
 *   length is the decoded one, and the bytes are the decoded ones: their
 *   api_b64_encode is the input string but for the bits the last digit
 *   carries past the last byte, and decodes back to them;
 * - gw_enum: a name of the list or an index into it, *out that index;
 *   anything else refused;
 * - gw_span: refused when key or range_end is refused or key is empty;
 *   else key and end are the decoded bytes, has_end exactly when range_end
 *   has a byte, and the span is kv_span_valid within kv's length limits;
 * - api_body_json: the object exactly when jansson reads the body as one
 *   (an empty body is not); api_body_int, required or not, on fields with
 *   the native routes' ranges: an absent optional field is left alone, an
 *   accepted one is a JSON integer within the range, with its value.
 *
 * Must never: check a reader against gw.c's own helpers (the expectations
 * here are computed independently), or feed a reader a JSON value the
 * gateway could not have loaded. */
#include "fuzz.h"
#include "stubs.h"
#include "api/input.h"
#include "api/v3/gw.h"
#include "kv/kv_internal.h"

#include <string.h>

#define I64_UNSET INT64_C(0x5a5a5a5a5a5a5a5a)
#define ENUM_UNSET (-7)

/* Fields by reader (etcd's RangeRequest, PutRequest, Compare, ...). */
static const char *const i64_fields[] = {"limit", "revision", "min_mod_revision",
                                         "max_create_revision", "lease", "ID", "TTL", NULL};
static const char *const bool_fields[] = {"keys_only", "count_only", "serializable", "prev_kv",
                                          "physical", NULL};
static const char *const bytes_fields[] = {"key", "range_end", "value", NULL};

/* Enums: etcd's, in protobuf order as the gateway lists them, and the
 * edges, a list of one name and an empty one (nothing is accepted). */
#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})
static const struct {
    const char *field;
    const char *const *names;
} enum_fields[] = {
    {"sort_order", NAMES("NONE", "ASCEND", "DESCEND")},
    {"sort_target", NAMES("KEY", "VERSION", "CREATE", "MOD", "VALUE")},
    {"permType", NAMES("READ", "WRITE", "READWRITE")},
    {"only", NAMES("ONLY")},
    {"never", (const char *const[]){NULL}},
};

/* A reader's outcome: the api's contract, and a 400 when refused (no
 * allocation fails under the fuzzer, so a 500 would be a wrong answer). */
static void answered(int rc)
{
    fuzz_check_answer(rc);
    FUZZ_CHECK(rc == 0 || fuzz_the_conn.code == 400);
}

static bool absent(const json_t *v) { return !v || json_is_null(v); }

/* ---- the independent readings ---- */

/* s (n bytes) as Go's strconv.ParseInt reads it, as etcd's gateway does:
 * an optional sign, then decimal digits. False out of int64's range. */
static bool decimal(const char *s, size_t n, int64_t *out)
{
    bool neg = n && s[0] == '-';
    size_t sign = n && (neg || s[0] == '+');
    uint64_t v;
    if (!parse_decimal(s + sign, n - sign, &v) || v > (uint64_t)INT64_MAX + neg)
        return false;
    *out = !neg ? (int64_t)v : v > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)v;
    return true;
}

static int b64_digit(char c)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

/* How many '=' end s if it is padded standard base64, else -1. */
static int b64_pad(const char *s, size_t n)
{
    if (n % 4)
        return -1;
    int pad = n && s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - (size_t)pad; i++)
        if (b64_digit(s[i]) < 0)
            return -1;
    return pad;
}

/* What gw_bytes must give for v: -1 refused, else the decoded length. */
static long long b64_len(const json_t *v)
{
    if (absent(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    size_t n = json_string_length(v);
    int pad = b64_pad(json_string_value(v), n);
    return pad < 0 ? -1 : (long long)(n / 4 * 3) - pad;
}

/* p (n bytes) are what v decodes to (see the top of the file). */
static void check_decoded(const json_t *v, const uint8_t *p, size_t n)
{
    const char *s = absent(v) ? "" : json_string_value(v);
    size_t sn = absent(v) ? 0 : json_string_length(v);
    FUZZ_CHECK((n == 0) == (p == NULL));
    char *e = api_b64_encode(p, n);
    FUZZ_CHECK(e && strlen(e) == sn);
    int pad = b64_pad(s, sn);
    for (size_t i = 0; i < sn; i++) {
        int unused = pad && i == sn - (size_t)pad - 1 ? 2 * pad : 0;
        if (s[i] == '=')
            FUZZ_CHECK(e[i] == '=');
        else
            FUZZ_CHECK(b64_digit(e[i]) >> unused == b64_digit(s[i]) >> unused);
    }
    uint8_t *back = NULL;
    size_t bn = 0;
    FUZZ_CHECK(api_b64_decode(e, sn, &back, &bn) == 0 && bn == n);
    FUZZ_CHECK(n == 0 || memcmp(back, p, n) == 0);
    free(back);
    free(e);
}

/* ---- one reader each ---- */

static void check_i64(api_req *r, json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    int64_t out = I64_UNSET, want = 0;
    fuzz_conn_reset(r);
    int rc = gw_i64(r, o, name, &out);
    answered(rc);
    if (absent(v)) {
        FUZZ_CHECK(rc == 0 && out == I64_UNSET);
    } else if (json_is_integer(v)) {
        FUZZ_CHECK(rc == 0 && out == json_integer_value(v));
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (decimal(s, n, &want))
            FUZZ_CHECK(rc == 0 && out == want);
        else
            FUZZ_CHECK(rc == -1 && out == I64_UNSET);
    } else {
        FUZZ_CHECK(rc == -1);
    }
}

static void check_bool(api_req *r, json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    for (int unset = 0; unset < 2; unset++) { /* both starting values survive absence */
        bool out = unset;
        fuzz_conn_reset(r);
        int rc = gw_bool(r, o, name, &out);
        answered(rc);
        if (absent(v))
            FUZZ_CHECK(rc == 0 && out == (bool)unset);
        else if (json_is_boolean(v))
            FUZZ_CHECK(rc == 0 && out == json_is_true(v));
        else
            FUZZ_CHECK(rc == -1);
    }
}

static void check_bytes(api_req *r, json_t *o, const char *name)
{
    static const uint8_t unset[1];
    json_t *v = json_object_get(o, name);
    const uint8_t *p = unset;
    uint32_t len = 77;
    fuzz_conn_reset(r);
    int rc = gw_bytes(r, o, name, &p, &len);
    answered(rc);
    long long want = b64_len(v);
    FUZZ_CHECK((rc == -1) == (want < 0));
    if (rc == 0) {
        FUZZ_CHECK(len == want);
        check_decoded(v, p, len);
    }
}

/* The index gw_enum must give for v, -1 refused; ENUM_UNSET when absent. */
static int enum_index(const json_t *v, const char *const *names)
{
    if (absent(v))
        return ENUM_UNSET;
    for (int i = 0; names[i]; i++) {
        if (json_is_string(v) && json_string_length(v) == strlen(names[i]) &&
            memcmp(json_string_value(v), names[i], strlen(names[i])) == 0)
            return i;
        if (json_is_integer(v) && json_integer_value(v) == i)
            return i;
    }
    return -1;
}

static void check_enum(api_req *r, json_t *o, const char *name, const char *const *names)
{
    int out = ENUM_UNSET;
    fuzz_conn_reset(r);
    int rc = gw_enum(r, o, name, names, &out);
    answered(rc);
    int want = enum_index(json_object_get(o, name), names);
    FUZZ_CHECK((rc == -1) == (want == -1));
    FUZZ_CHECK(rc == -1 || out == want);
}

static void check_span(api_req *r, json_t *o)
{
    json_t *key = json_object_get(o, "key"), *end = json_object_get(o, "range_end");
    long long key_len = b64_len(key), end_len = b64_len(end);
    kv_span sp;
    fuzz_conn_reset(r);
    int rc = gw_span(r, o, &sp);
    answered(rc);
    FUZZ_CHECK((rc == -1) == (key_len <= 0 || end_len < 0));
    if (rc < 0)
        return;
    FUZZ_CHECK(sp.key_len == key_len && sp.end_len == end_len);
    check_decoded(key, sp.key, sp.key_len);
    check_decoded(end, sp.end, sp.end_len);
    FUZZ_CHECK(sp.has_end == (end_len > 0));
    if (sp.key_len <= KV_MAX_KEY_LEN && sp.end_len <= KV_MAX_KEY_LEN + 1)
        FUZZ_CHECK(kv_span_valid(&sp));
}

static void check_readers(api_req *r, json_t *o)
{
    for (size_t i = 0; i64_fields[i]; i++)
        check_i64(r, o, i64_fields[i]);
    for (size_t i = 0; bool_fields[i]; i++)
        check_bool(r, o, bool_fields[i]);
    for (size_t i = 0; bytes_fields[i]; i++)
        check_bytes(r, o, bytes_fields[i]);
    for (size_t i = 0; i < sizeof enum_fields / sizeof enum_fields[0]; i++)
        check_enum(r, o, enum_fields[i].field, enum_fields[i].names);
    check_span(r, o);
}

/* ---- the body ---- */

/* gw_body's answer against jansson's own reading of the body. */
static json_t *check_body(api_req *r, const uint8_t *data, size_t size)
{
    json_error_t e;
    json_t *want = size ? json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &e)
                        : json_object();
    bool ok = want && json_is_object(want);
    fuzz_conn_reset(r);
    json_t *o = gw_body(r);
    answered(o ? 0 : -1);
    FUZZ_CHECK((o != NULL) == ok);
    FUZZ_CHECK(!o || (o == r->doc && json_equal(o, want)));
    json_decref(want);
    return o;
}

/* ---- the native API's body ---- */

/* The native routes' integer fields and their ranges (lease grant's ttl
 * and id, a lock's or an election's lease, a proclaim's rev, move-leader's
 * target), and one over the whole int64 range. */
static const struct {
    const char *field;
    int64_t min, max;
} native_ints[] = {
    {"ttl", 1, KV_LEASE_MAX_TTL}, {"id", 1, KV_LEASE_MAX_ID}, {"lease", 1, KV_LEASE_MAX_ID},
    {"rev", 1, INT64_MAX}, {"to", 1, API_MAX_ID}, {"any", INT64_MIN, INT64_MAX},
};

static void check_native_int(api_req *r, const char *name, int64_t min, int64_t max, bool req)
{
    json_t *v = json_object_get(r->doc, name);
    int64_t out = I64_UNSET;
    fuzz_conn_reset(r);
    int rc = api_body_int(r, name, min, max, req, &out);
    answered(rc);
    bool fits = json_is_integer(v) && json_integer_value(v) >= min &&
                json_integer_value(v) <= max;
    if (!v && !req)
        FUZZ_CHECK(rc == 0 && out == I64_UNSET);
    else if (fits)
        FUZZ_CHECK(rc == 0 && out == json_integer_value(v));
    else
        FUZZ_CHECK(rc == -1 && out == I64_UNSET);
}

static void check_native(api *a, const uint8_t *data, size_t size)
{
    api_req r;
    fuzz_req_init(&r, a);
    r.body.data = (uint8_t *)data; /* only read */
    r.body.len = size;
    json_error_t e;
    json_t *want = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &e);
    fuzz_conn_reset(&r);
    r.doc = api_body_json(&r);
    answered(r.doc ? 0 : -1);
    FUZZ_CHECK((r.doc != NULL) == (want && json_is_object(want)));
    FUZZ_CHECK(!r.doc || json_equal(r.doc, want));
    json_decref(want);
    for (size_t i = 0; r.doc && i < sizeof native_ints / sizeof native_ints[0]; i++)
        for (int req = 0; req < 2; req++)
            check_native_int(&r, native_ints[i].field, native_ints[i].min, native_ints[i].max,
                             req);
    json_decref(r.doc);
    api_arena_free(&r.arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static api a; /* only its answer counters are touched */
    static bool installed;
    if (!installed) { /* as main does: a failed allocation is then seen */
        json_safe_install();
        installed = true;
    }
    api_req r;
    fuzz_req_init(&r, &a);
    r.body.data = (uint8_t *)data; /* only read; never freed here */
    r.body.len = size;
    json_t *o = check_body(&r, data, size);
    if (o) {
        check_readers(&r, o);
        check_readers(&r, json_object_get(o, "perm"));
    }
    json_decref(r.doc);
    api_arena_free(&r.arena);
    check_native(&a, data, size);
    return 0;
}
