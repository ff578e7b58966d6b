/* fuzz_query: the query-string parameter functions of the api
 * (api_query_only, api_query_bool, api_query_i64, api_query_bytes; they
 * live in src/api/params.c today, the harness needs only their names).
 * The input is a query string ("a=1&b&c=%41"), split here as
 * libmicrohttpd splits it with raftkv's keep_escaped unescaper (values stay
 * percent-encoded). libmicrohttpd and the node are replaced at link time by
 * tests/fuzz/stubs.c (the program's own definitions win over the
 * shared library's), so a call runs the api's real reply path without a
 * socket.
 * Properties: no crash, and a call answers exactly when it returns -1, with
 * a 400 naming the parameter (500 only for out of memory). */
#include "fuzz.h"
#include "stubs.h"
#include "api/input.h"

#include <string.h>

static void add_pair(const char *s, size_t n)
{
    fuzz_conn *conn = &fuzz_the_conn;
    if (conn->n == FUZZ_MAX_PAIRS)
        return;
    fuzz_pair *p = &conn->pairs[conn->n++];
    const char *eq = memchr(s, '=', n);
    p->key = s;
    p->key_len = eq ? (size_t)(eq - s) : n;
    p->value = eq ? eq + 1 : NULL;
    p->value_len = eq ? n - p->key_len - 1 : 0;
}

/* Splits s (n bytes, NUL-terminated) at '&' like MHD; empty parts skipped. */
static void split_query(const char *s, size_t n)
{
    fuzz_the_conn.n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '&')
            continue;
        if (i > start)
            add_pair(s + start, i - start);
        start = i + 1;
    }
}

static void query_all(api *a)
{
    static const char *const allowed[] = {"prefix", "limit", "rev", "range_end", "keys_only", NULL};
    api_req r;
    bool b = false;
    int64_t i = 0;
    bool present = false;
    uint8_t *bytes = NULL;
    size_t len = 0;
    fuzz_req_init(&r, a);
    fuzz_check_answer(api_query_only(&r, allowed));
    fuzz_req_init(&r, a);
    fuzz_check_answer(api_query_bool(&r, "prefix", &b));
    fuzz_req_init(&r, a);
    int rc = api_query_i64(&r, "limit", 0, &i, &present);
    fuzz_check_answer(rc);
    FUZZ_CHECK(!present || (rc == 0 && i >= 0));
    fuzz_req_init(&r, a);
    rc = api_query_i64(&r, "rev", INT64_MIN, &i, NULL);
    fuzz_check_answer(rc);
    fuzz_req_init(&r, a);
    rc = api_query_bytes(&r, "range_end", &bytes, &len);
    fuzz_check_answer(rc);
    FUZZ_CHECK(rc == 0 || !bytes);
    free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static api a; /* only its answer counters are touched */
    char *s = fuzz_cstr(data, size);
    split_query(s, strlen(s)); /* a URL stops at its first NUL */
    query_all(&a);
    free(s);
    return 0;
}
