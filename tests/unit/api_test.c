/* api_test: the client API over real HTTP (libcurl) against a fake node
 * (fake_node.c) that applies to a real kv and calls back from its own
 * thread. Covers raftexample routes, native kv routes, txn, compact,
 * members, status/health/metrics, limits and error answers, and every
 * request kind with each of its JSON allocations failed in turn. */
#include "api/api.h"
#include "api/api_int.h" /* json_out.c against its jansson twin */
#include "auth/auth.h"
#include "../alloc_wrap.h"
#include "../test.h"

#include <curl/curl.h>
#include <execinfo.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void fake_node_fail_next(node *n, int status);
void fake_node_hold(node *n, bool hold);
void fake_node_wait_held(node *n, size_t count);
void fake_node_set_leader(node *n, uint64_t leader);

#define MAX_BODY (1536 * 1024)

static char tmpdir[] = "/tmp/raftkv-api-test-XXXXXX";
static node *nd;
static api *srv;
static uint16_t port;
static const char *auth_header; /* sent with every request while set */

typedef struct {
    long code;
    buf body;
    buf headers;
    json_t *json;
} resp;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    return buf_append(ud, p, sz * n) == 0 ? sz * n : 0;
}

static void resp_free(resp *r)
{
    buf_free(&r->body);
    buf_free(&r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* The answer's body as JSON, when it is JSON. */
static void resp_parse(resp *r)
{
    if (r->body.len)
        r->json = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
}

/* One request, its body not parsed yet. */
static long req_http(resp *r, const char *method, const char *path, const void *body, size_t len)
{
    resp_free(r);
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    if (auth_header)
        h = curl_slist_append(h, auth_header);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L); /* a request never answered fails, not hangs */
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    else
        r->code = -1;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r->code;
}

/* One request; the body is parsed as JSON when it is JSON. */
static long req(resp *r, const char *method, const char *path, const void *body, size_t len)
{
    req_http(r, method, path, body, len);
    resp_parse(r);
    return r->code;
}

static long req_s(resp *r, const char *method, const char *path, const char *body)
{
    return req(r, method, path, body, body ? strlen(body) : 0);
}

/* Value of a response header (case-insensitive name), or NULL. */
static char *header(resp *r, const char *name, char *out, size_t cap)
{
    buf_append(&r->headers, "", 1);
    r->headers.len--;
    size_t n = strlen(name);
    for (char *line = (char *)r->headers.data; line && *line;) {
        char *next = strstr(line, "\r\n");
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t len = next ? (size_t)(next - v) : strlen(v);
            snprintf(out, cap, "%.*s", (int)len, v);
            return out;
        }
        line = next ? next + 2 : NULL;
    }
    return NULL;
}

static const char *jstr(json_t *o, const char *path1, const char *path2)
{
    json_t *v = json_object_get(o, path1);
    if (path2)
        v = json_object_get(v, path2);
    return json_string_value(v);
}

static json_int_t jint(json_t *o, const char *path1, const char *path2)
{
    json_t *v = json_object_get(o, path1);
    if (path2)
        v = json_object_get(v, path2);
    return json_is_integer(v) ? json_integer_value(v) : -12345;
}

static bool body_is(resp *r, const char *s)
{
    return r->body.len == strlen(s) && memcmp(r->body.data, s, r->body.len) == 0;
}

static bool has_header_obj(resp *r)
{
    json_t *h = json_object_get(r->json, "header");
    return json_is_integer(json_object_get(h, "revision")) &&
           json_is_integer(json_object_get(h, "raft_term")) &&
           json_is_integer(json_object_get(h, "member_id")) &&
           json_is_integer(json_object_get(h, "cluster_id"));
}

/* ---- raftexample ---- */

static void test_root_put_get(void)
{
    resp r = {0};
    char v[128];
    CHECK(req_s(&r, "PUT", "/my-key", "hello") == 204);
    CHECK(r.body.len == 0);
    CHECK(req_s(&r, "GET", "/my-key", NULL) == 200);
    CHECK(body_is(&r, "hello"));
    CHECK(header(&r, "Content-Type", v, sizeof v) && strcmp(v, "application/octet-stream") == 0);
    CHECK(req_s(&r, "GET", "/kv/my-key", NULL) == 200); /* the same key natively */
    CHECK(strcmp(jstr(json_array_get(json_object_get(r.json, "kvs"), 0), "value", NULL), "hello") == 0);
    CHECK(req_s(&r, "PUT", "/a%20b", "spaced") == 204);
    CHECK(req_s(&r, "GET", "/kv/a%20b", NULL) == 200);
    CHECK(req_s(&r, "GET", "/nope", NULL) == 404);
    CHECK(r.json && strcmp(jstr(r.json, "reason", NULL), "key_not_found") == 0 && has_header_obj(&r));
    CHECK(req_s(&r, "GET", "/bad%zz", NULL) == 400);
    CHECK(req_s(&r, "PUT", "/", "x") == 400);
    CHECK(req_s(&r, "GET", "/", NULL) == 200 && has_header_obj(&r));
    resp_free(&r);
}

static void test_too_large(void)
{
    resp r = {0};
    size_t n = 8u << 20;
    char *big = malloc(n);
    CHECK(big != NULL);
    if (!big)
        return;
    memset(big, 'x', n);
    CHECK(req(&r, "PUT", "/big", big, n) == 413);
    CHECK(r.json && strcmp(jstr(r.json, "reason", NULL), "request_too_large") == 0);
    CHECK(req(&r, "PUT", "/kv/big", big, MAX_BODY + 1) == 413);
    CHECK(req_s(&r, "GET", "/big", NULL) == 404); /* nothing written */
    CHECK(req(&r, "PUT", "/kv/limit", big, MAX_BODY) == 200); /* exactly the limit is fine */
    free(big);
    resp_free(&r);
}

/* Feeds 64 KiB chunks until `left` runs out: a body with no length. */
static size_t feed(char *p, size_t sz, size_t n, void *ud)
{
    size_t *left = ud, k = sz * n < 65536 ? sz * n : 65536;
    if (k > *left)
        k = *left;
    memset(p, 'y', k);
    *left -= k;
    return k;
}

/* PUT /kv/chunked with a chunked body of `size` bytes; the HTTP code. */
static long put_chunked(size_t size)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/kv/chunked", (unsigned)port);
    size_t left = size;
    buf out;
    buf_init(&out);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Transfer-Encoding: chunked");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, feed);
    curl_easy_setopt(c, CURLOPT_READDATA, &left);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    buf_free(&out);
    return code;
}

static void test_too_large_chunked(void)
{
    CHECK(put_chunked(4u << 20) == 413); /* drained, then answered */
    CHECK(put_chunked(64u << 20) == 0);  /* endless: connection dropped */
    CHECK(put_chunked(1000) == 200);
    resp r = {0};
    CHECK(req_s(&r, "GET", "/kv/chunked", NULL) == 200);
    CHECK(jint(json_array_get(json_object_get(r.json, "kvs"), 0), "version", NULL) == 1);
    resp_free(&r);
}

static void test_405(void)
{
    resp r = {0};
    char v[128];
    CHECK(req_s(&r, "PATCH", "/k", "x") == 405);
    CHECK(header(&r, "Allow", v, sizeof v) && strcmp(v, "GET, PUT, POST, DELETE") == 0);
    CHECK(req_s(&r, "PUT", "/members", "x") == 405);
    CHECK(header(&r, "Allow", v, sizeof v) && strcmp(v, "GET, POST") == 0);
    CHECK(req_s(&r, "GET", "/txn", NULL) == 405);
    CHECK(header(&r, "Allow", v, sizeof v) && strcmp(v, "POST") == 0);
    CHECK(req_s(&r, "GET", "/status/x", NULL) == 404);
    CHECK(req_s(&r, "GET", "/members", NULL) == 200); /* not a key named "members" */
    resp_free(&r);
}

static void test_root_members(void)
{
    resp r = {0};
    CHECK(req_s(&r, "POST", "/abc", "http://127.0.0.1:42379") == 400);
    CHECK(r.json && strcmp(jstr(r.json, "reason", NULL), "invalid_member_id") == 0);
    CHECK(req_s(&r, "POST", "/4", "ftp://127.0.0.1:42379") == 400);
    CHECK(req_s(&r, "POST", "/4", "http://127.0.0.1:99999") == 400);
    CHECK(req_s(&r, "POST", "/4", "http://127.0.0.1:42379\n") == 204);
    CHECK(req_s(&r, "GET", "/members", NULL) == 200);
    json_t *m = json_object_get(r.json, "members");
    size_t before = json_array_size(m);
    bool found = false;
    for (size_t i = 0; i < json_array_size(m); i++) {
        json_t *e = json_array_get(m, i);
        if (jint(e, "id", NULL) == 4)
            found = strcmp(json_string_value(json_array_get(json_object_get(e, "peer_urls"), 0)),
                           "http://127.0.0.1:42379") == 0;
    }
    CHECK(found);
    CHECK(req_s(&r, "DELETE", "/4", NULL) == 204);
    CHECK(req_s(&r, "GET", "/members?serializable=true", NULL) == 200);
    CHECK(json_array_size(json_object_get(r.json, "members")) == before - 1);
    resp_free(&r);
}

/* ---- native kv ---- */

static void test_native_put_get(void)
{
    resp r = {0};
    CHECK(req_s(&r, "PUT", "/kv/a", "1") == 200 && has_header_obj(&r));
    json_int_t rev1 = jint(r.json, "header", "revision");
    CHECK(json_object_get(r.json, "prev_kv") == NULL);
    CHECK(req_s(&r, "PUT", "/kv/a?prev_kv=true", "2") == 200);
    CHECK(jint(r.json, "header", "revision") == rev1 + 1);
    CHECK(strcmp(jstr(r.json, "prev_kv", "value"), "1") == 0);
    CHECK(req_s(&r, "GET", "/kv/a", NULL) == 200);
    json_t *kv0 = json_array_get(json_object_get(r.json, "kvs"), 0);
    CHECK(strcmp(jstr(kv0, "key", NULL), "a") == 0 && strcmp(jstr(kv0, "value", NULL), "2") == 0);
    CHECK(jint(kv0, "version", NULL) == 2 && jint(kv0, "create_revision", NULL) == rev1);
    CHECK(jint(kv0, "mod_revision", NULL) == rev1 + 1 && jint(kv0, "lease", NULL) == 0);
    CHECK(jint(r.json, "count", NULL) == 1 && json_is_false(json_object_get(r.json, "more")));
    CHECK(req_s(&r, "GET", "/kv/a?serializable=true", NULL) == 200);
    CHECK(req_s(&r, "GET", "/kv/missing", NULL) == 404 && has_header_obj(&r));
    CHECK(req_s(&r, "GET", "/kv/a?rev=1", NULL) == 200 || r.code == 404);
    CHECK(req_s(&r, "GET", "/kv/a?rev=999999", NULL) == 400);
    resp_free(&r);
}

static void test_native_range_delete(void)
{
    resp r = {0};
    CHECK(req_s(&r, "PUT", "/kv/p/1", "x") == 200);
    CHECK(req_s(&r, "PUT", "/kv/p/2", "y") == 200);
    CHECK(req_s(&r, "PUT", "/kv/p/3", "z") == 200);
    CHECK(req_s(&r, "GET", "/kv/p/?prefix=true&limit=2", NULL) == 200);
    CHECK(jint(r.json, "count", NULL) == 3 && json_is_true(json_object_get(r.json, "more")));
    CHECK(json_array_size(json_object_get(r.json, "kvs")) == 2);
    CHECK(req_s(&r, "GET", "/kv/p/?prefix=true&keys_only=true", NULL) == 200);
    json_t *k = json_array_get(json_object_get(r.json, "kvs"), 2);
    CHECK(strcmp(jstr(k, "key", NULL), "p/3") == 0 && !json_object_get(k, "value"));
    CHECK(req_s(&r, "GET", "/kv/p/?prefix=true&count_only=true", NULL) == 200);
    CHECK(jint(r.json, "count", NULL) == 3 && json_array_size(json_object_get(r.json, "kvs")) == 0);
    CHECK(req_s(&r, "GET", "/kv/p/1?range_end=p/3", NULL) == 200);
    CHECK(jint(r.json, "count", NULL) == 2);
    CHECK(req_s(&r, "GET", "/kv/p/?prefix=true&range_end=x", NULL) == 400);
    CHECK(req_s(&r, "GET", "/kv/?prefix=true&count_only=true", NULL) == 200); /* every key */
    CHECK(jint(r.json, "count", NULL) >= 3);
    CHECK(req_s(&r, "PUT", "/kv/z%00z", "nul") == 200); /* a zero byte inside a key */
    CHECK(req_s(&r, "GET", "/z%00z", NULL) == 200 && body_is(&r, "nul"));
    CHECK(req_s(&r, "DELETE", "/kv/p/?prefix=true&prev_kv=true", NULL) == 200);
    CHECK(jint(r.json, "deleted", NULL) == 3);
    CHECK(json_array_size(json_object_get(r.json, "prev_kvs")) == 3);
    CHECK(req_s(&r, "GET", "/kv/p/1", NULL) == 404);
    CHECK(req_s(&r, "DELETE", "/kv/p/1", NULL) == 200 && jint(r.json, "deleted", NULL) == 0);
    resp_free(&r);
}

static void test_if_mod_revision(void)
{
    resp r = {0};
    CHECK(req_s(&r, "PUT", "/kv/c?if_mod_revision=0", "first") == 200);
    json_int_t rev = jint(r.json, "header", "revision");
    CHECK(req_s(&r, "PUT", "/kv/c?if_mod_revision=0", "second") == 412);
    CHECK(strcmp(jstr(r.json, "reason", NULL), "precondition_failed") == 0);
    CHECK(strcmp(jstr(r.json, "kv", "value"), "first") == 0 && has_header_obj(&r));
    char path[64];
    snprintf(path, sizeof path, "/kv/c?if_mod_revision=%lld", (long long)rev);
    CHECK(req_s(&r, "PUT", path, "third") == 200);
    CHECK(req_s(&r, "DELETE", path, NULL) == 412); /* mod revision moved on */
    CHECK(req_s(&r, "GET", "/c", NULL) == 200 && body_is(&r, "third"));
    resp_free(&r);
}

static void test_bad_params(void)
{
    resp r = {0};
    CHECK(req_s(&r, "GET", "/kv/a?prefx=true", NULL) == 400);
    CHECK(r.json && strstr(jstr(r.json, "error", NULL), "prefx"));
    CHECK(req_s(&r, "GET", "/kv/a?limit=abc", NULL) == 400);
    CHECK(r.json && strstr(jstr(r.json, "error", NULL), "limit"));
    CHECK(req_s(&r, "GET", "/kv/a?prefix=maybe", NULL) == 400);
    CHECK(req_s(&r, "PUT", "/kv/a?lease=-1", "v") == 400);
    CHECK(req_s(&r, "PUT", "/kv/", "v") == 400);
    CHECK(req_s(&r, "GET", "/kv/a?range_end=%zz", NULL) == 400);
    resp_free(&r);
}

static void test_raw(void)
{
    resp r = {0};
    char v[64];
    CHECK(req_s(&r, "PUT", "/kv/rawkey", "raw-value") == 200);
    json_int_t rev = jint(r.json, "header", "revision");
    CHECK(req_s(&r, "GET", "/kv/rawkey?raw=true", NULL) == 200);
    CHECK(body_is(&r, "raw-value"));
    CHECK(header(&r, "X-Raftkv-Mod-Revision", v, sizeof v) && atoll(v) == rev);
    CHECK(header(&r, "X-Raftkv-Create-Revision", v, sizeof v) && atoll(v) == rev);
    CHECK(header(&r, "X-Raftkv-Version", v, sizeof v) && strcmp(v, "1") == 0);
    CHECK(header(&r, "X-Raftkv-Lease", v, sizeof v) && strcmp(v, "0") == 0);
    CHECK(header(&r, "X-Raftkv-Revision", v, sizeof v) && atoll(v) >= rev);
    CHECK(req_s(&r, "GET", "/kv/rawkey?raw=true&prefix=true", NULL) == 400);
    resp_free(&r);
}

static void test_base64(void)
{
    resp r = {0};
    static const uint8_t val[] = {0x00, 0xff, 0x41};
    CHECK(req(&r, "PUT", "/kv/bin%FF", val, sizeof val) == 200);
    CHECK(req_s(&r, "GET", "/kv/bin%FF", NULL) == 200);
    json_t *kv0 = json_array_get(json_object_get(r.json, "kvs"), 0);
    CHECK(jstr(kv0, "key_base64", NULL) && strcmp(jstr(kv0, "key_base64", NULL), "Ymlu/w==") == 0);
    CHECK(jstr(kv0, "value_base64", NULL) && strcmp(jstr(kv0, "value_base64", NULL), "AP9B") == 0);
    CHECK(!json_object_get(kv0, "key") && !json_object_get(kv0, "value"));
    CHECK(req_s(&r, "GET", "/bin%FF", NULL) == 200);
    CHECK(r.body.len == 3 && memcmp(r.body.data, val, 3) == 0);
    resp_free(&r);
}

/* ---- txn, compact ---- */

static void test_txn(void)
{
    resp r = {0};
    CHECK(req_s(&r, "PUT", "/kv/t", "old") == 200);
    const char *cas = "{\"compare\":[{\"key\":\"t\",\"target\":\"VALUE\",\"result\":\"EQUAL\","
                      "\"value\":\"old\"}],\"success\":[{\"request_put\":{\"key\":\"t\","
                      "\"value\":\"new\",\"prev_kv\":true}}],\"failure\":[{\"request_range\":"
                      "{\"key\":\"t\"}}]}";
    CHECK(req_s(&r, "POST", "/txn", cas) == 200 && has_header_obj(&r));
    CHECK(json_is_true(json_object_get(r.json, "succeeded")));
    json_t *resp0 = json_array_get(json_object_get(r.json, "responses"), 0);
    CHECK(strcmp(jstr(json_object_get(resp0, "response_put"), "prev_kv", "value"), "old") == 0);
    CHECK(req_s(&r, "POST", "/txn", cas) == 200); /* value is now "new" */
    CHECK(json_is_false(json_object_get(r.json, "succeeded")));
    resp0 = json_array_get(json_object_get(r.json, "responses"), 0);
    json_t *kvs = json_object_get(json_object_get(resp0, "response_range"), "kvs");
    CHECK(strcmp(jstr(json_array_get(kvs, 0), "value", NULL), "new") == 0);
    const char *b64 = "{\"success\":[{\"request_put\":{\"key_base64\":\"eHk=\",\"value\":\"v\"}},"
                      "{\"request_delete_range\":{\"key\":\"t\"}}]}";
    CHECK(req_s(&r, "POST", "/txn", b64) == 200);
    CHECK(req_s(&r, "GET", "/xy", NULL) == 200 && body_is(&r, "v"));
    CHECK(req_s(&r, "GET", "/t", NULL) == 404);
    resp_free(&r);
}

static void test_txn_errors(void)
{
    resp r = {0};
    CHECK(req_s(&r, "POST", "/txn", "{\"compare\":[{\"key\":\"a\",\"target\":\"FOO\","
                                    "\"result\":\"EQUAL\"}]}") == 400);
    CHECK(r.json && strcmp(jstr(r.json, "error", NULL), "compare[0].target: unknown target \"FOO\"") == 0);
    CHECK(strcmp(jstr(r.json, "reason", NULL), "invalid_argument") == 0);
    CHECK(req_s(&r, "POST", "/txn", "{\"success\":[{\"request_put\":{\"key\":\"a\"}},"
                                    "{\"request_put\":{\"key\":\"a\",\"lease\":\"x\"}}]}") == 400);
    CHECK(r.json && strcmp(jstr(r.json, "error", NULL), "success[1].request_put.lease: expected an integer >= 0") == 0);
    CHECK(req_s(&r, "POST", "/txn", "{\"success\":[{\"request_pat\":{}}]}") == 400);
    CHECK(req_s(&r, "POST", "/txn", "{\"bogus\":1}") == 400);
    CHECK(req_s(&r, "POST", "/txn", "not json") == 400);
    CHECK(req_s(&r, "POST", "/txn", "{\"success\":[{\"request_put\":{\"key_base64\":\"!!\"}}]}") == 400);
    /* refused by the encoder, not the parser: the 400 still names the part */
    CHECK(req_s(&r, "POST", "/txn", "{\"failure\":[{\"request_put\":{\"key\":\"d\"}},"
                                    "{\"request_put\":{\"key\":\"d\"}}]}") == 400);
    CHECK(r.json && strncmp(jstr(r.json, "error", NULL), "failure: ", 9) == 0);
    CHECK(req_s(&r, "POST", "/txn", "{\"compare\":[{\"key\":\"\",\"target\":\"VERSION\","
                                    "\"result\":\"EQUAL\"}]}") == 400);
    CHECK(r.json && strncmp(jstr(r.json, "error", NULL), "compare: ", 9) == 0);
    CHECK(req_s(&r, "GET", "/kv/a?rev=0", NULL) == 200 || r.code == 404);
    resp_free(&r);
}

static void test_compact(void)
{
    resp r = {0};
    CHECK(req_s(&r, "PUT", "/kv/cmp", "1") == 200);
    CHECK(req_s(&r, "PUT", "/kv/cmp", "2") == 200);
    json_int_t rev = jint(r.json, "header", "revision");
    char body[64], path[64];
    snprintf(body, sizeof body, "{\"revision\":%lld}", (long long)rev);
    CHECK(req_s(&r, "POST", "/compact", body) == 200);
    CHECK(req_s(&r, "POST", "/compact", body) == 410);
    CHECK(strcmp(jstr(r.json, "reason", NULL), "compacted") == 0);
    snprintf(path, sizeof path, "/kv/cmp?rev=%lld", (long long)rev - 1);
    CHECK(req_s(&r, "GET", path, NULL) == 410);
    CHECK(jint(r.json, "compact_revision", NULL) == rev);
    CHECK(req_s(&r, "POST", "/compact", "{\"revision\":99999999}") == 400);
    CHECK(req_s(&r, "POST", "/compact", "{\"revision\":\"x\"}") == 400);
    resp_free(&r);
}

/* ---- input helpers (input.c): bad input is a clear 400, nothing written ---- */

static json_int_t store_revision(void)
{
    resp r = {0};
    json_int_t rev = req_s(&r, "GET", "/status", NULL) == 200 ? jint(r.json, "revision", NULL) : -1;
    resp_free(&r);
    return rev;
}

/* A 400 JSON error body with the given reason, whose message starts with want. */
static bool is_400(resp *r, const char *reason, const char *want)
{
    const char *err = jstr(r->json, "error", NULL), *why = jstr(r->json, "reason", NULL);
    return r->code == 400 && has_header_obj(r) && err && why && strcmp(why, reason) == 0 &&
           strncmp(err, want, strlen(want)) == 0;
}

static void test_input_errors(void)
{
    resp r = {0};
    CHECK(req_s(&r, "PUT", "/kv/in/a", "v") == 200);
    json_int_t rev = store_revision();
    /* api_body_json */
    req_s(&r, "POST", "/txn", "{\"success\":");
    CHECK(is_400(&r, "invalid_json", "body: "));
    req_s(&r, "POST", "/lease", "[1]");
    CHECK(is_400(&r, "invalid_json", "body: expected a JSON object"));
    req_s(&r, "POST", "/compact", "{\"revision\":1,\"revision\":2}");
    CHECK(is_400(&r, "invalid_json", "body: "));
    req_s(&r, "POST", "/lock/in", "");
    CHECK(is_400(&r, "invalid_json", "body: "));
    /* api_body_int */
    req_s(&r, "POST", "/lease", "{\"ttl\":\"5\"}");
    CHECK(is_400(&r, "invalid_argument", "ttl: expected an integer from 1 to "));
    req_s(&r, "POST", "/lease", "{\"ttl\":5,\"id\":0}");
    CHECK(is_400(&r, "invalid_argument", "id: expected an integer from 1 to "));
    req_s(&r, "POST", "/lock/in", "{\"lease\":-3}");
    CHECK(is_400(&r, "invalid_argument", "lease: expected an integer from 1 to "));
    req_s(&r, "POST", "/election/in/resign", "{\"lease\":7,\"rev\":0}");
    CHECK(is_400(&r, "invalid_argument", "rev: expected an integer from 1 to "));
    /* api_parse_span (also before /watch looks for its hub) */
    req_s(&r, "DELETE", "/kv/in/?prefix=true&range_end=in0", NULL);
    CHECK(is_400(&r, "invalid_argument", "prefix: cannot be combined with range_end"));
    req_s(&r, "DELETE", "/kv/", NULL);
    CHECK(is_400(&r, "invalid_argument", "key: must not be empty"));
    req_s(&r, "GET", "/watch/in/?prefix=1&range_end=%zz", NULL);
    CHECK(is_400(&r, "invalid_argument", "range_end: bad percent-encoding"));
    CHECK(store_revision() == rev);
    CHECK(req_s(&r, "GET", "/kv/in/a", NULL) == 200); /* still there */
    /* api_reader_after_barrier: a failed barrier is answered, nothing read */
    fake_node_fail_next(nd, NODE_ERR_TIMEOUT);
    CHECK(req_s(&r, "GET", "/lease", NULL) == 503 && has_header_obj(&r));
    CHECK(strcmp(jstr(r.json, "reason", NULL), "timeout") == 0);
    resp_free(&r);
}

/* ---- cluster, status, node errors ---- */

static void test_members_native(void)
{
    resp r = {0};
    CHECK(req_s(&r, "POST", "/members", "{\"peer_urls\":[\"http://10.0.0.9:2380\"],"
                                        "\"is_learner\":true}") == 201);
    json_int_t id = jint(r.json, "member", "id");
    CHECK(id > 0 && json_is_true(json_object_get(json_object_get(r.json, "member"), "is_learner")));
    char path[64];
    snprintf(path, sizeof path, "/members/%lld/promote", (long long)id);
    CHECK(req_s(&r, "POST", path, NULL) == 200);
    snprintf(path, sizeof path, "/members/%lld", (long long)id);
    CHECK(req_s(&r, "DELETE", path, NULL) == 200);
    CHECK(req_s(&r, "DELETE", "/members/x", NULL) == 400);
    CHECK(req_s(&r, "POST", "/members", "{\"peer_urls\":[\"nope\"]}") == 400);
    CHECK(req_s(&r, "POST", "/members", "{\"peer_urls\":[\"http://a:1\"],\"x\":1}") == 400);
    resp_free(&r);
}

static void test_status_health_metrics(void)
{
    resp r = {0};
    CHECK(req_s(&r, "GET", "/status", NULL) == 200 && has_header_obj(&r));
    CHECK(jint(r.json, "member_id", NULL) == 1 && strcmp(jstr(r.json, "version", NULL), "0.1.0") == 0);
    CHECK(json_is_integer(json_object_get(r.json, "raft_applied_index")));
    CHECK(req_s(&r, "GET", "/health", NULL) == 200);
    CHECK(json_is_true(json_object_get(r.json, "health")));
    fake_node_set_leader(nd, 0);
    CHECK(req_s(&r, "GET", "/health", NULL) == 503);
    CHECK(json_is_false(json_object_get(r.json, "health")));
    fake_node_set_leader(nd, 1);
    CHECK(req_s(&r, "GET", "/metrics", NULL) == 200);
    buf_append(&r.body, "", 1);
    CHECK(strstr((char *)r.body.data, "raftkv_revision "));
    CHECK(strstr((char *)r.body.data, "raftkv_http_responses_total{code=\"2xx\"} "));
    CHECK(req_s(&r, "GET", "/watch/k", NULL) == 503); /* the fake node has no watch hub */
    CHECK(req_s(&r, "GET", "/watch/k?timeout=x", NULL) == 400);
    CHECK(req_s(&r, "GET", "/watch/k?filters=noput,bogus", NULL) == 400);
    CHECK(req_s(&r, "POST", "/lease", "{}") == 400); /* no ttl */
    resp_free(&r);
}

static void test_node_errors(void)
{
    resp r = {0};
    fake_node_fail_next(nd, NODE_ERR_NO_LEADER);
    CHECK(req_s(&r, "PUT", "/kv/ne", "v") == 503);
    CHECK(strcmp(jstr(r.json, "reason", NULL), "no_leader") == 0);
    fake_node_fail_next(nd, NODE_ERR_TIMEOUT);
    CHECK(req_s(&r, "GET", "/ne", NULL) == 503);
    fake_node_fail_next(nd, NODE_ERR_CONF_PENDING);
    CHECK(req_s(&r, "POST", "/7", "http://127.0.0.1:7000") == 409);
    fake_node_fail_next(nd, NODE_ERR_NOT_READY);
    CHECK(req_s(&r, "POST", "/members/2/promote", NULL) == 409);
    CHECK(strcmp(jstr(r.json, "reason", NULL), "learner_not_ready") == 0);
    fake_node_fail_next(nd, NODE_ERR_URL_EXISTS);
    CHECK(req_s(&r, "POST", "/members", "{\"peer_urls\":[\"http://127.0.0.1:7000\"]}") == 409);
    CHECK(strcmp(jstr(r.json, "reason", NULL), "peer_url_exists") == 0);
    fake_node_fail_next(nd, NODE_ERR_INTERNAL);
    CHECK(req_s(&r, "POST", "/txn", "{}") == 500);
    CHECK(req_s(&r, "GET", "/kv/ne", NULL) == 404); /* nothing was written */
    resp_free(&r);
}

/* ---- out of memory: every jansson allocation a request makes, failed in turn ---- */

/* Every allocation the server makes with malloc, calloc or realloc in
 * raftkv's own code, the fake node's and jansson's (json_safe allocates
 * with malloc): this program is linked with -Wl,--wrap for the three
 * (src/api/local.mk), so those calls ask alloc_wrap_fails (alloc_wrap.c). While oom_at is n > 0, the
 * n-th of them counted from arming fails, once. Only threads other than
 * the test's own count: the client side of a request never fails. */
static atomic_long oom_at, oom_seen;
static _Thread_local bool client_thread;

static bool oom_now(void)
{
    return !client_thread && atomic_load(&oom_at) > 0 &&
           atomic_fetch_add(&oom_seen, 1) + 1 == atomic_load(&oom_at);
}

/* With OOM_TRACE=1 in the environment, each failed allocation's backtrace
 * goes to stderr first (to find the code behind a failure). */
bool alloc_wrap_fails(void)
{
    if (!oom_now())
        return false;
    if (getenv("OOM_TRACE")) {
        void *frames[12];
        int n = backtrace(frames, 12);
        fputs("OOMTRACE\n", stderr);
        backtrace_symbols_fd(frames, n, 2);
    }
    return true;
}

/* Same kinds, object keys and array lengths all the way down: what an
 * answer must keep when only its revisions and ids may differ. */
static bool same_shape(json_t *a, json_t *b)
{
    if (json_typeof(a) != json_typeof(b) && !(json_is_boolean(a) && json_is_boolean(b)))
        return false;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_shape(json_array_get(a, i), json_array_get(b, i)))
                return false;
    } else if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v) {
            json_t *w = json_object_get(b, k);
            if (!w || !same_shape(v, w))
                return false;
        }
    }
    return true;
}

typedef struct {
    const char *method, *path, *body;
    bool reads; /* changes nothing: the answer must be byte-identical */
} oom_case;

static const oom_case oom_cases[] = {
    {"GET", "/oom", NULL, true},
    {"GET", "/kv/oom", NULL, true},
    {"GET", "/kv/oom?keys_only=true", NULL, true},
    {"GET", "/kv/oo?prefix=true", NULL, true},
    {"GET", "/kv/nothing-here", NULL, true},
    {"GET", "/kv/oom?rev=x", NULL, true},
    {"GET", "/members", NULL, true},
    {"GET", "/status", NULL, true},
    {"GET", "/health", NULL, true},
    {"GET", "/version", NULL, true},
    {"GET", "/lease", NULL, true},
    {"GET", "/maintenance/alarms", NULL, true},
    {"PUT", "/kv/", "v", true},
    {"POST", "/txn", "not json", true},
    {"POST", "/txn", "{\"success\":[{\"request_pat\":{}}]}", true},
    {"POST", "/v3/kv/range", "{\"key\":\"b29t\"}", true},
    {"POST", "/v3/kv/range", "{\"key\":\"!!\"}", true},
    {"POST", "/v3/cluster/member/list", "{}", true},
    {"POST", "/v3/cluster/member/list", NULL, true}, /* no body: an empty request */
    {"POST", "/v3/maintenance/status", "{}", false},
    {"POST", "/v3/maintenance/alarm", "{\"action\":\"GET\"}", true},
    {"PUT", "/oom", "v", false},
    {"PUT", "/kv/oom", "value", false},
    {"PUT", "/kv/oom?prev_kv=true", "value", false},
    {"DELETE", "/kv/oom-gone", NULL, false},
    {"POST", "/txn",
     "{\"compare\":[{\"key\":\"oom\",\"target\":\"VALUE\",\"result\":\"EQUAL\",\"value\":"
     "\"value\"}],\"success\":[{\"request_put\":{\"key\":\"oom\",\"value\":\"value\","
     "\"prev_kv\":true}},{\"request_range\":{\"key\":\"oo\",\"range_end\":\"op\"}}],"
     "\"failure\":[{\"request_delete_range\":{\"key\":\"x\"}}]}",
     false},
    {"POST", "/lease", "{\"ttl\":60}", false},
    {"POST", "/v3/kv/put", "{\"key\":\"b29t\",\"value\":\"dmFsdWU=\",\"prev_kv\":true}", false},
    {"POST", "/v3/kv/txn",
     "{\"compare\":[{\"key\":\"b29t\",\"target\":\"VERSION\",\"result\":\"GREATER\","
     "\"version\":\"0\"}],\"success\":[{\"request_range\":{\"key\":\"b29t\"}}]}",
     false},
    {"POST", "/v3/kv/deleterange", "{\"key\":\"bm9uZQ==\"}", false},
    {"POST", "/v3/lease/grant", "{\"TTL\":60}", false},
    {"POST", "/v3/lease/leases", "{}", true},
    {"POST", "/v3/lease/timetolive", "{\"ID\":\"12345\"}", true},
    {"POST", "/v3/lease/revoke", "{\"ID\":\"12345\"}", false},
    {"POST", "/v3/maintenance/hash", "{}", false},
    {"POST", "/v3/auth/user/list", "{}", true},
    {"POST", "/v3/auth/role/get", "{\"role\":\"nobody\"}", true},
    {"POST", "/v3/auth/authenticate", "{\"name\":\"root\",\"password\":\"x\"}", true},
    {"POST", "/v3/nope", "{}", true},
    {"GET", "/auth/users", NULL, true},
    {"GET", "/auth/roles/nobody", NULL, true},
    {"POST", "/auth/roles", "{\"name\":\"r1\"}", false},
    {"POST", "/auth/roles/r1/permissions", "{\"key\":\"a\",\"prefix\":true,\"perm\":\"read\"}", false},
    {"GET", "/auth/roles", NULL, true},
    {"POST", "/auth/enable", NULL, true},
    {"POST", "/members", "{\"peer_urls\":[\"nope\"]}", true},
    {"DELETE", "/members/99", NULL, false},
    {"GET", "/maintenance/hash", NULL, false},
    {"POST", "/maintenance/alarms/disarm", "{\"alarm\":\"NOSPACE\"}", false},
    {"POST", "/compact", "{\"revision\":99999999}", true},
    {"GET", "/kv/oom?rev=1", NULL, true},
    {"POST", "/lock/oom", "{}", true},
};

/* An answer under one failed allocation: the one it gives without any
 * (same code; the same bytes for a read, the same shape for a write), or a
 * 500 that says so. Never a short answer with a 2xx or 4xx. */
static bool oom_answer_ok(const oom_case *c, resp *want, resp *got)
{
    const char *why = jstr(got->json, "reason", NULL);
    if (got->code == 500) /* the native API's reason, or the gateway's gRPC code */
        return json_is_string(json_object_get(got->json, "error")) &&
               ((why && strcmp(why, "internal") == 0) || jint(got->json, "code", NULL) == 13);
    /* a watch cannot tell a failed history read from no free reader: retry */
    if (got->code == 503 && strncmp(c->path, "/watch/", 7) == 0)
        return why && strcmp(why, "unavailable") == 0;
    if (got->code != want->code)
        return false;
    if (c->reads && strcmp(c->path, "/status") != 0) /* status: counters move */
        return want->json ? json_equal(want->json, got->json) /* a newline may be missing */
                          : got->body.len == want->body.len &&
                                memcmp(got->body.data, want->body.data, got->body.len) == 0;
    return want->json ? got->json && same_shape(want->json, got->json)
                      : got->body.len == want->body.len;
}

/* Fails the 1st, 2nd, ... allocation of c until one run of it makes fewer
 * allocations than the one failed; the number of runs that hit one. */
static long oom_sweep(const oom_case *c)
{
    resp want = {0}, got = {0};
    req_s(&want, c->method, c->path, c->body); /* a create: its answer once it exists */
    req_s(&want, c->method, c->path, c->body);
    CHECK_MSG(want.code > 0 && want.code < 500, "%s %s: %ld", c->method, c->path, want.code);
    long n = 1;
    for (; n < 10000; n++) {
        atomic_store(&oom_seen, 0);
        atomic_store(&oom_at, n);
        req_http(&got, c->method, c->path, c->body, c->body ? strlen(c->body) : 0);
        bool hit = atomic_load(&oom_seen) >= n;
        atomic_store(&oom_at, 0);
        resp_parse(&got);
        if (!hit)
            break;
        CHECK_MSG(oom_answer_ok(c, &want, &got),
                  "%s %s with allocation %ld failed: %ld %.*s (without: %.*s)", c->method,
                  c->path, n, got.code, (int)got.body.len, (char *)got.body.data,
                  (int)want.body.len, (char *)want.body.data);
    }
    resp_free(&want);
    resp_free(&got);
    return n - 1;
}

static void test_out_of_memory(void)
{
    resp r = {0};
    CHECK(req_s(&r, "PUT", "/kv/oom", "value") == 200);
    CHECK(req_s(&r, "PUT", "/kv/oom-gone", "x") == 200);
    resp_free(&r);
    long total = 0;
    for (size_t i = 0; i < sizeof oom_cases / sizeof oom_cases[0]; i++)
        total += oom_sweep(&oom_cases[i]);
    printf("  %ld requests each ran out of memory once\n", total);
    CHECK(total > 100); /* the allocator is jansson's: the sweep reached the handlers */
}

/* ---- streams: the first two lines with events, or the stream's end ---- */

/* The first two complete lines of b holding events, joined (malloc'd), or
 * NULL while they are not both in. The first comes with the answer's head
 * (api_h_watch reads it); the second is the stream's own (render_batch). */
static char *events_line(const buf *b)
{
    const char *p = (const char *)b->data, *end = p + b->len, *first = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        char *line = strndup(p, (size_t)(nl - p));
        bool events = line && strstr(line, "\"events\":[{");
        free(line);
        if (events && first)
            return strndup(first, (size_t)(nl - first));
        if (events)
            first = p;
        p = nl + 1;
    }
    return NULL;
}

/* Takes the stream's bytes until two lines with events are in (then stops
 * it). */
static size_t on_stream(char *p, size_t sz, size_t n, void *ud)
{
    buf *b = ud;
    if (buf_append(b, p, sz * n) < 0)
        return 0;
    char *lines = events_line(b);
    free(lines);
    return lines ? 0 : sz * n;
}

/* Reads the stream at path until its first two events lines (returned,
 * malloc'd) or its end (NULL; *ended says it ended rather than timed out). */
static char *first_events(const char *path, bool *ended)
{
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    buf b;
    buf_init(&b);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    char *line = events_line(&b);
    *ended = rc != CURLE_OPERATION_TIMEDOUT;
    buf_free(&b);
    return line;
}

/* A stream from a stored revision, with each allocation failed in turn:
 * its first events lines are the ones it has without the failure (the
 * events read again after a failed rendering, none skipped), or the
 * stream ends (the client resumes from its cursor); it never hangs. */
static long oom_sweep_stream(const char *path)
{
    bool ended;
    char *want = first_events(path, &ended);
    CHECK_MSG(want != NULL, "%s: not two events lines", path);
    long n = 1;
    for (; want && n < 10000; n++) {
        atomic_store(&oom_seen, 0);
        atomic_store(&oom_at, n);
        char *got = first_events(path, &ended);
        bool hit = atomic_load(&oom_seen) >= n;
        atomic_store(&oom_at, 0);
        CHECK_MSG(got ? strcmp(got, want) == 0 : ended,
                  "%s with allocation %ld failed: %s", path, n, got ? got : "timed out");
        free(got);
        if (!hit)
            break;
    }
    free(want);
    return n - 1;
}

/* The same for watches (long-poll from a stored revision: answered at
 * once; streams) and the lock, on a second server that has a watch hub. */
static void test_out_of_memory_watch(void)
{
    watch_hub *hub = watch_hub_create(node_kv(nd));
    char err[256];
    api_config ac = {.port = 0, .max_request_bytes = MAX_BODY, .threads = 2, .node = nd,
                     .kv = node_kv(nd), .hub = hub};
    api *with_hub = hub ? api_start(&ac, err, sizeof err) : NULL;
    CHECK(with_hub != NULL);
    if (!with_hub) {
        watch_hub_destroy(hub);
        return;
    }
    uint16_t plain = port;
    port = api_port(with_hub);
    json_int_t from = store_revision() - 4;
    resp r = {0};
    CHECK(req_s(&r, "GET", "/watch/oom?start_revision=1", NULL) == 410);
    json_int_t compacted_at = jint(r.json, "compact_revision", NULL);
    CHECK(req_s(&r, "POST", "/lease", "{\"ttl\":600}") == 200);
    json_int_t lease = jint(r.json, "id", NULL);
    resp_free(&r);
    static char paths[4][96], lock_body[64], v3_body[96];
    snprintf(lock_body, sizeof lock_body, "{\"lease\":%lld}", (long long)lease);
    snprintf(v3_body, sizeof v3_body, "{\"name\":\"bG9jaw==\",\"lease\":\"%lld\"}",
             (long long)lease);
    snprintf(paths[0], sizeof paths[0], "/watch/oom?start_revision=%lld", (long long)from);
    snprintf(paths[1], sizeof paths[1], "/watch/oo?prefix=true&prev_kv=true&start_revision=%lld",
             (long long)from);
    snprintf(paths[2], sizeof paths[2], "/watch/oom?start_revision=1"); /* compacted: 410 */
    snprintf(paths[3], sizeof paths[3], "/watch/oom?start_revision=x");
    const oom_case cases[] = {{"GET", paths[0], NULL, true},
                              {"GET", paths[1], NULL, true},
                              {"GET", paths[2], NULL, true},
                              {"GET", paths[3], NULL, true},
                              {"POST", "/lock/oom-lock", lock_body, false},
                              {"POST", "/v3/lock/lock", v3_body, false}};
    long total = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        total += oom_sweep(&cases[i]);
    /* a few more events than one line holds (128) */
    json_int_t start = from + 4 - 132 > compacted_at ? from + 4 - 132 : compacted_at + 1;
    char stream[128];
    snprintf(stream, sizeof stream, "/watch/?prefix=true&stream=true&start_revision=%lld",
             (long long)start);
    long streams = oom_sweep_stream(stream);
    printf("  %ld requests and %ld streams each ran out of memory once\n", total, streams);
    CHECK(total > 20 && streams > 10);
    port = plain;
    api_stop(with_hub);
    watch_hub_destroy(hub);
}

/* The same with auth on: logins (a password checked, a token made), and
 * requests as root by password and by token. A login the server could
 * not check is a 500, never a wrong password: that would also count
 * against the client's address, and the limit would then refuse root. */
static void test_out_of_memory_auth(void)
{
    resp r = {0};
    CHECK(req_s(&r, "POST", "/auth/users", "{\"name\":\"root\",\"password\":\"pw\"}") == 200);
    CHECK(req_s(&r, "POST", "/auth/roles", "{\"name\":\"root\"}") == 200);
    CHECK(req_s(&r, "POST", "/auth/users/root/roles", "{\"role\":\"root\"}") == 200);
    CHECK(req_s(&r, "POST", "/auth/enable", NULL) == 200);
    CHECK(req_s(&r, "GET", "/kv/oom", NULL) == 401);
    CHECK(req_s(&r, "POST", "/auth/authenticate", "{\"name\":\"root\",\"password\":\"pw\"}") ==
          200);
    static char bearer[AUTH_TOKEN_MAX + 32];
    snprintf(bearer, sizeof bearer, "Authorization: Bearer %s", jstr(r.json, "token", NULL));
    const char *basic = "Authorization: Basic cm9vdDpwdw=="; /* root:pw */
    const char *login = "{\"name\":\"root\",\"password\":\"pw\"}";
    const struct {
        oom_case c;
        const char *auth; /* the Authorization header sent */
    } cases[] = {
        {{"POST", "/auth/authenticate", login, false}, NULL},
        {{"POST", "/v3/auth/authenticate", login, false}, NULL},
        {{"GET", "/kv/oom", NULL, true}, basic},
        {{"GET", "/auth/users", NULL, true}, bearer},
        {{"POST", "/v3/kv/range", "{\"key\":\"b29t\"}", true}, bearer},
    };
    long total = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        auth_header = cases[i].auth;
        total += oom_sweep(&cases[i].c);
    }
    printf("  %ld requests with auth on each ran out of memory once\n", total);
    CHECK(total > 20);
    auth_header = basic;
    CHECK(req_s(&r, "POST", "/auth/disable", NULL) == 200);
    auth_header = NULL;
    resp_free(&r);
}

/* ---- a request still waiting on the node when the server stops ---- */

static void *put_in_thread(void *arg)
{
    resp r = {0};
    *(long *)arg = req_s(&r, "PUT", "/kv/held", "v");
    resp_free(&r);
    return NULL;
}

static void test_stop_while_waiting(void)
{
    fake_node_hold(nd, true);
    long code = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, put_in_thread, &code) == 0);
    fake_node_wait_held(nd, 1); /* the request is suspended on the node */
    api_stop(srv);               /* MHD drops the connection */
    srv = NULL;
    pthread_join(t, NULL);
    CHECK(code != 200);
    fake_node_hold(nd, false); /* the callback now fires on a finished request */
}

/* ---- json_out.c: byte-identical to json_dumps(JSON_COMPACT) ---- */

typedef struct {
    const char *p;
    size_t n;
} bytes;
#define B(s) {s, sizeof s - 1}

/* Keys and values that exercise every escaping and base64 rule. */
static const bytes samples[] = {
    B(""), B("hello"), B("a/b"), B("h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e"),
    B("\""), B("\\"), B("say \"hi\" \\o/"), B("del\x7f"), B("nul\0inside"),
    B("\xff"), B("\xc0\x80"), B("\xed\xa0\x80"), B("\xe2\x82"), B("ok\xf4\x90\x80\x80"),
    B("\b\f\n\r\t"), B("\x01\x1f tail"),
    /* past the 8-byte ASCII scan of api_utf8_valid */
    B("0123456789abcdefg\xff"), B("0123456789abcdef\xc3\xa9\x1f"), B("01234567\xed\xa0\x80"),
};

static const int64_t ints[] = {0, 1, -1, INT64_MAX, INT64_MIN, 1234567890123, -42};

/* Compares the writer's text for item with jansson's; both keys_only forms. */
static void check_kv(const kv_kv *item)
{
    for (int ko = 0; ko < 2; ko++) {
        json_t *o = api_json_kv(item, ko);
        char *want = o ? json_dumps(o, JSON_COMPACT) : NULL;
        buf got;
        buf_init(&got);
        CHECK(want && api_jw_kv(&got, item, ko) == 0);
        CHECK_MSG(want && got.len == strlen(want) && memcmp(got.data, want, got.len) == 0,
                  "want %s got %.*s", want ? want : "(null)", (int)got.len, (char *)got.data);
        buf_free(&got);
        free(want);
        json_decref(o);
    }
}

static kv_kv make_kv(const bytes *k, const bytes *v, int64_t n)
{
    kv_kv item = {(uint8_t *)k->p, (uint32_t)k->n, (uint8_t *)v->p, (uint32_t)v->n,
                  n, n, n, n};
    return item;
}

static void test_jw_kv(void)
{
    size_t ns = sizeof samples / sizeof samples[0], ni = sizeof ints / sizeof ints[0];
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < ns; j++) {
            kv_kv item = make_kv(&samples[i], &samples[j], ints[(i + j) % ni]);
            check_kv(&item);
        }
    for (int c = 0; c < 256; c++) { /* every single byte, alone and amid text */
        char one = (char)c, mid[3] = {'a', (char)c, 'z'};
        bytes k = {&one, 1}, v = {mid, 3};
        kv_kv item = make_kv(&k, &v, c);
        check_kv(&item);
    }
    for (size_t i = 0; i < ni; i++) {
        kv_kv item = make_kv(&samples[1], &samples[2], 0);
        item.create_revision = ints[i];
        item.mod_revision = ints[(i + 1) % ni];
        item.version = ints[(i + 2) % ni];
        item.lease = ints[(i + 3) % ni];
        check_kv(&item);
    }
}

/* The whole range body against what reply_range used to dump. */
static void check_range(const kv_op_result *res, bool keys_only, int64_t rev)
{
    kv_op op = {0};
    op.type = KV_OP_RANGE;
    op.keys_only = keys_only;
    json_t *o = api_json_op_result(res, &op);
    CHECK(o && json_object_set_new(o, "header", api_json_header(srv, rev)) == 0);
    char *want = o ? json_dumps(o, JSON_COMPACT) : NULL;
    buf got;
    buf_init(&got);
    CHECK(want && api_jw_range(&got, srv, res, keys_only, rev) == 0);
    size_t n = want ? strlen(want) : 0;
    CHECK_MSG(want && got.len == n + 1 && memcmp(got.data, want, n) == 0 && got.data[n] == '\n',
              "want %s got %.*s", want ? want : "(null)", (int)got.len, (char *)got.data);
    buf_free(&got);
    free(want);
    json_decref(o);
}

static void test_jw_range(void)
{
    resp r = {0};
    CHECK(req_s(&r, "PUT", "/kv/jw-header", "x") == 200); /* a nonzero node revision */
    resp_free(&r);
    size_t ns = sizeof samples / sizeof samples[0];
    kv_kv items[sizeof samples / sizeof samples[0]];
    for (size_t i = 0; i < ns; i++)
        items[i] = make_kv(&samples[i], &samples[ns - 1 - i], (int64_t)i * 7);
    kv_op_result res = {0};
    res.type = KV_OP_RANGE;
    for (int ko = 0; ko < 2; ko++) {
        res.kvs.items = items, res.kvs.n = 0, res.count = 0, res.more = false;
        check_range(&res, ko, -1); /* empty (count_only looks like this) */
        res.count = 99;
        check_range(&res, ko, 3);
        res.kvs.n = 1, res.more = true;
        check_range(&res, ko, INT64_MAX);
        res.kvs.n = ns, res.count = (int64_t)ns, res.more = false;
        check_range(&res, ko, -1);
        check_range(&res, ko, 0);
    }
}

int main(void)
{
    json_safe_install(); /* as raftkv's main: jansson allocates with (wrapped) malloc */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!mkdtemp(tmpdir))
        return 1;
    config cfg = {0};
    cfg.data_dir = tmpdir;
    if (node_create(&cfg, &nd) != 0)
        return 1;
    char err[256];
    /* no watch hub: /watch answers 503 (lock and election are not tested here) */
    api_config ac = {.port = 0, .max_request_bytes = MAX_BODY, .threads = 2, .node = nd,
                     .kv = node_kv(nd), .hub = NULL};
    srv = api_start(&ac, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "api_start: %s\n", err);
        return 1;
    }
    port = api_port(srv);
    client_thread = true;
    RUN(test_root_put_get);
    RUN(test_too_large);
    RUN(test_too_large_chunked);
    RUN(test_405);
    RUN(test_root_members);
    RUN(test_native_put_get);
    RUN(test_native_range_delete);
    RUN(test_if_mod_revision);
    RUN(test_bad_params);
    RUN(test_raw);
    RUN(test_base64);
    RUN(test_txn);
    RUN(test_txn_errors);
    RUN(test_compact);
    RUN(test_input_errors);
    RUN(test_members_native);
    RUN(test_status_health_metrics);
    RUN(test_node_errors);
    RUN(test_jw_kv);
    RUN(test_jw_range);
    RUN(test_out_of_memory);
    RUN(test_out_of_memory_watch);
    RUN(test_out_of_memory_auth);
    RUN(test_stop_while_waiting); /* last: it stops the server */
    api_stop(srv);
    node_destroy(nd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    curl_global_cleanup();
    TEST_MAIN_END();
}
