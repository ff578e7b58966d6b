/* params: the URL's query-string parameters (?name=value), strictly.
 * Unknown names and bad values are answered 400 naming the parameter, so
 * a typo ("prefx=true") never silently turns a range into a single-key
 * read. (Named apart from src/raft/query.c, the Raft core's accessors.)
 * Must never trust a value's length or encoding: values arrive still
 * percent-encoded (see server.c) and are decoded here. */
#include "api/api_int.h"
#include "api/input.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *const *allowed;
    char *unknown; /* first unknown name, malloc'd */
    bool oom;
} scan;

static enum MHD_Result check_name(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size)
{
    scan *s = cls;
    for (size_t i = 0; s->allowed[i]; i++) {
        if (strlen(s->allowed[i]) == key_size && memcmp(s->allowed[i], key, key_size) == 0)
            return MHD_YES;
    }
    s->unknown = xmemdup(key, key_size + 1);
    s->oom = !s->unknown;
    if (s->unknown)
        s->unknown[key_size] = 0;
    return MHD_NO;
}

int api_query_only(api_req *r, const char *const *allowed)
{
    scan s = {allowed, NULL, false};
    MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, check_name, &s);
    if (!s.unknown && !s.oom)
        return 0;
    if (s.oom)
        api_reply_error(r, 500, "internal", NULL, "out of memory");
    else
        api_reply_error(r, 400, "invalid_argument", NULL, "%.100s: unknown query parameter",
                        s.unknown);
    free(s.unknown);
    return -1;
}

/* Returns true if present; *v is NULL for a bare "?name". */
static bool lookup(api_req *r, const char *name, const char **v, size_t *n)
{
    *v = NULL;
    *n = 0;
    return MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), v,
                                         n) == MHD_YES;
}

static bool is(const char *v, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(v, word, n) == 0;
}

int api_query_bool(api_req *r, const char *name, bool *out)
{
    const char *v;
    size_t n;
    if (!lookup(r, name, &v, &n))
        return 0;
    if (!v || n == 0 || is(v, n, "true") || is(v, n, "1")) {
        *out = true; /* a bare "?prefix" reads as true */
    } else if (is(v, n, "false") || is(v, n, "0")) {
        *out = false;
    } else {
        api_reply_error(r, 400, "invalid_argument", NULL, "%s: expected true or false", name);
        return -1;
    }
    return 0;
}

static bool parse_i64(const char *v, size_t n, int64_t *out)
{
    bool neg = n > 0 && v[0] == '-';
    size_t i = neg ? 1 : 0;
    uint64_t x = 0;
    if (!parse_decimal(v + i, n - i, &x) || x > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? -(int64_t)x : (int64_t)x;
    return true;
}

int api_query_i64(api_req *r, const char *name, int64_t min, int64_t *out, bool *present)
{
    const char *v;
    size_t n;
    if (present)
        *present = false;
    if (!lookup(r, name, &v, &n))
        return 0;
    int64_t x;
    if (!v || !parse_i64(v, n, &x) || x < min) {
        api_reply_error(r, 400, "invalid_argument", NULL, "%s: expected an integer >= %lld",
                        name, (long long)min);
        return -1;
    }
    *out = x;
    if (present)
        *present = true;
    return 0;
}

int api_query_bytes(api_req *r, const char *name, uint8_t **out, size_t *len)
{
    const char *v;
    size_t n;
    *out = NULL;
    *len = 0;
    if (!lookup(r, name, &v, &n))
        return 0;
    int rc = api_pct_decode(v ? v : "", v ? n : 0, out, len);
    if (rc == 0)
        return 0;
    if (rc == -2)
        api_reply_error(r, 500, "internal", NULL, "out of memory");
    else
        api_reply_error(r, 400, "invalid_argument", NULL, "%s: bad percent-encoding", name);
    return -1;
}
