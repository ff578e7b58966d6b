/* info_client: asks a running node for its cluster id (GET /raft/info),
 * for a node that joins an existing cluster. Blocking, with a deadline.
 * Must never trust the answer: size-capped, strictly parsed. */
#include "transport/transport_int.h"

#include <jansson.h>
#include <stdlib.h>

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
    json_t *root = json_loadb((const char *)b->data, b->len, 0, NULL);
    const char *s = json_string_value(json_object_get(root, "cluster_id"));
    int rc = transport_parse_u64(s, cluster_id);
    json_decref(root);
    return rc;
}

int transport_fetch_cluster_id(const char *peer_url, uint64_t *cluster_id, int timeout_ms)
{
    transport_curl_global_init();
    char *url = transport_url_join(peer_url, "/raft/info");
    CURL *e = curl_easy_init();
    buf b;
    buf_init(&b);
    int rc = -1;
    if (url && e) {
        transport_curl_common(e, timeout_ms);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        if (transport_curl_ok(e, curl_easy_perform(e)))
            rc = parse_info(&b, cluster_id);
    }
    if (e)
        curl_easy_cleanup(e);
    free(url);
    buf_free(&b);
    return rc;
}
