/* fuzz_query: the query-string parameter functions of the api
 * (api_query_only, api_query_bool, api_query_i64, api_query_bytes; they
 * live in src/api/params.c today, the harness needs only their names).
 * The input is a query string ("a=1&b&c=%41"), split here as
 * libmicrohttpd splits it with raftkv's keep_escaped unescaper (values stay
 * percent-encoded). libmicrohttpd and the node are replaced at link time by
 * the stubs below (the program's own definitions win over the shared
 * library's), so a call runs the api's real reply path without a socket.
 * Properties: no crash, and a call answers exactly when it returns -1, with
 * a 400 naming the parameter (500 only for out of memory). */
#include "fuzz.h"
#include "api/api_int.h"
#include "api/input.h"
#include "server/node.h"

#include <string.h>

#define MAX_PAIRS 64

typedef struct {
    const char *key, *value; /* value NULL for a bare "?key" */
    size_t key_len, value_len;
} pair;

/* The fake connection: what MHD_lookup_connection_value_n searches. */
static struct {
    pair pairs[MAX_PAIRS];
    size_t n;
    int queued;       /* responses queued since the last reset */
    unsigned code;    /* status of the last one */
} conn;

/* ---- the stubs (libmicrohttpd, node) ---- */

struct MHD_Response {
    void *data;
    MHD_ContentReaderFreeCallback crfc;
};

int MHD_get_connection_values_n(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                MHD_KeyValueIteratorN it, void *cls)
{
    int n = 0;
    for (size_t i = 0; i < conn.n; i++, n++) {
        const pair *p = &conn.pairs[i];
        if (it && it(cls, kind, p->key, p->key_len, p->value, p->value_len) != MHD_YES)
            return n + 1;
    }
    return n;
}

enum MHD_Result MHD_lookup_connection_value_n(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                              const char *key, size_t key_size,
                                              const char **value, size_t *value_size)
{
    for (size_t i = 0; i < conn.n; i++) {
        const pair *p = &conn.pairs[i];
        if (p->key_len == key_size && memcmp(p->key, key, key_size) == 0) {
            *value = p->value;
            *value_size = p->value_len;
            return MHD_YES;
        }
    }
    return MHD_NO;
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer,
                                                     enum MHD_ResponseMemoryMode mode)
{
    (void)size, (void)buffer, (void)mode; /* the api only uses MUST_COPY */
    return calloc(1, sizeof(struct MHD_Response));
}

struct MHD_Response *MHD_create_response_from_buffer_with_free_callback(
    size_t size, void *buffer, MHD_ContentReaderFreeCallback crfc)
{
    struct MHD_Response *r = calloc(1, sizeof *r);
    if (r) {
        r->data = buffer;
        r->crfc = crfc;
    }
    return r;
}

enum MHD_Result MHD_add_response_header(struct MHD_Response *r, const char *h, const char *v)
{
    return MHD_YES;
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *c, unsigned int code,
                                   struct MHD_Response *r)
{
    conn.queued++;
    conn.code = code;
    return MHD_YES;
}

void MHD_destroy_response(struct MHD_Response *r)
{
    if (r && r->crfc)
        r->crfc(r->data);
    free(r);
}

void node_get_info(node *n, node_info *out) { memset(out, 0, sizeof *out); }
bool node_disk_full(node *n) { return n == NULL; }


/* ---- the harness ---- */

static void add_pair(const char *s, size_t n)
{
    if (conn.n == MAX_PAIRS)
        return;
    pair *p = &conn.pairs[conn.n++];
    const char *eq = memchr(s, '=', n);
    p->key = s;
    p->key_len = eq ? (size_t)(eq - s) : n;
    p->value = eq ? eq + 1 : NULL;
    p->value_len = eq ? n - p->key_len - 1 : 0;
}

/* Splits s (n bytes, NUL-terminated) at '&' like MHD; empty parts skipped. */
static void split_query(const char *s, size_t n)
{
    conn.n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '&')
            continue;
        if (i > start)
            add_pair(s + start, i - start);
        start = i + 1;
    }
}

static void fresh(api_req *r, api *a)
{
    memset(r, 0, sizeof *r);
    r->a = a;
    r->conn = (struct MHD_Connection *)&conn;
    conn.queued = 0;
}

/* -1 must come with exactly one answer, 0 with none. */
static void check_answer(int rc)
{
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK(conn.queued == (rc < 0 ? 1 : 0));
    FUZZ_CHECK(rc == 0 || conn.code == 400 || conn.code == 500);
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
    fresh(&r, a);
    check_answer(api_query_only(&r, allowed));
    fresh(&r, a);
    check_answer(api_query_bool(&r, "prefix", &b));
    fresh(&r, a);
    int rc = api_query_i64(&r, "limit", 0, &i, &present);
    check_answer(rc);
    FUZZ_CHECK(!present || (rc == 0 && i >= 0));
    fresh(&r, a);
    rc = api_query_i64(&r, "rev", INT64_MIN, &i, NULL);
    check_answer(rc);
    fresh(&r, a);
    rc = api_query_bytes(&r, "range_end", &bytes, &len);
    check_answer(rc);
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
