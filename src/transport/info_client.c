/* info_client: asks a running node for its cluster id (GET /raft/info),
 * for a node that joins an existing cluster, and for its hash of the
 * key-value state (GET /raft/hash), for the leader's replica comparison.
 * Blocking, with a deadline. Must never trust an answer: size-capped,
 * strictly parsed. */
#include "transport/transport_int.h"
#include "util/json_safe.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INFO_MAX_BYTES 4096

static size_t collect_body(char *p, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    size_t n = size * nmemb;
    if (n > INFO_MAX_BYTES - b->len || buf_append(b, p, n) < 0)
        return 0; /* makes curl fail the transfer */
    return n;
}

static int parse_info(const buf *b, uint64_t *cluster_id)
{
    json_t *root = json_safe_parse(b->data, b->len, 0, NULL, NULL);
    const char *s = json_string_value(json_object_get(root, "cluster_id"));
    int rc = transport_parse_u64(s, cluster_id);
    json_decref(root);
    return rc;
}

/* GETs path from peer_url into b; 0 with the HTTP status, -1 if no answer. */
static int get_json(const char *peer_url, const char *path, int timeout_ms, buf *b, long *status)
{
    transport_curl_global_init();
    char *url = transport_url_join(peer_url, path);
    CURL *e = curl_easy_init();
    int rc = -1;
    if (url && e) {
        transport_curl_common(e, timeout_ms);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
        if (curl_easy_perform(e) == CURLE_OK &&
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status) == CURLE_OK)
            rc = 0;
    }
    if (e)
        curl_easy_cleanup(e);
    free(url);
    return rc;
}

int transport_fetch_cluster_id(const char *peer_url, uint64_t *cluster_id, int timeout_ms)
{
    buf b;
    buf_init(&b);
    long status = 0;
    int rc = -1;
    if (get_json(peer_url, "/raft/info", timeout_ms, &b, &status) == 0 && status == 200)
        rc = parse_info(&b, cluster_id);
    buf_free(&b);
    return rc;
}

static int parse_hash(const buf *b, long status, transport_hash *out)
{
    json_t *root = json_safe_parse(b->data, b->len, 0, NULL, NULL);
    const char *reason = json_string_value(json_object_get(root, "reason"));
    json_t *h = json_object_get(root, "hash"), *rev = json_object_get(root, "revision"),
           *compact = json_object_get(root, "compact_revision");
    int rc = TRANSPORT_HASH_ERROR;
    if (status == 200 && json_is_integer(h) && json_is_integer(rev) && json_is_integer(compact) &&
        json_integer_value(h) >= 0 && json_integer_value(h) <= UINT32_MAX) {
        out->hash = (uint32_t)json_integer_value(h);
        out->revision = json_integer_value(rev);
        out->compact_revision = json_integer_value(compact);
        rc = TRANSPORT_HASH_OK;
    } else if (reason && strcmp(reason, "corrupt") == 0) {
        rc = TRANSPORT_HASH_CORRUPT;
    } else if (reason && strcmp(reason, "compacted") == 0) {
        rc = TRANSPORT_HASH_COMPACTED;
    } else if (reason && strcmp(reason, "future_revision") == 0) {
        rc = TRANSPORT_HASH_FUTURE;
    }
    json_decref(root);
    return rc;
}

int transport_fetch_hash(const char *peer_url, int64_t rev, int timeout_ms, transport_hash *out)
{
    char path[64];
    snprintf(path, sizeof path, "/raft/hash?revision=%lld", (long long)rev);
    buf b;
    buf_init(&b);
    long status = 0;
    int rc = get_json(peer_url, path, timeout_ms, &b, &status) == 0
                 ? parse_hash(&b, status, out)
                 : TRANSPORT_HASH_ERROR;
    buf_free(&b);
    return rc;
}
