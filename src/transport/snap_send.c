/* snap_send: one streamed snapshot upload (POST /raft/snapshot). The body
 * is read from the open file by curl's read callback, chunk by chunk, so a
 * snapshot of any size costs a few KiB of memory. The SNAP message, size and
 * CRC travel in headers (see snap_header.c).
 * Must never load the file whole, and never run a total timeout: a big
 * snapshot over a slow link is fine as long as bytes keep moving. */
#include "transport/transport_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SNAP_CONNECT_MS 1000L
#define SNAP_LOW_SPEED_BYTES 1024L /* abort below 1 KiB/s ... */
#define SNAP_LOW_SPEED_SECS 10L    /* ... sustained for 10 s */

static size_t read_file(char *p, size_t size, size_t nmemb, void *ud)
{
    FILE *f = ud;
    size_t n = fread(p, 1, size * nmemb, f);
    if (n == 0 && ferror(f))
        return CURL_READFUNC_ABORT;
    return n;
}

static int add_header(struct curl_slist **l, const char *name, const char *fmt_value)
{
    size_t len = strlen(name) + strlen(fmt_value) + 3;
    char *h = malloc(len);
    if (!h)
        return -1;
    snprintf(h, len, "%s: %s", name, fmt_value);
    struct curl_slist *n = curl_slist_append(*l, h);
    free(h);
    if (!n)
        return -1;
    *l = n;
    return 0;
}

static int build_headers(transport_snap_job *j, uint64_t cluster_id, const raft_msg *msg,
                         uint64_t size, uint32_t crc)
{
    char num[32];
    char *hex = transport_snap_header_encode(cluster_id, msg);
    if (!hex)
        return -1;
    int rc = add_header(&j->headers, TRANSPORT_HDR_SNAP_MSG, hex);
    free(hex);
    snprintf(num, sizeof num, "%" PRIu64, size);
    if (rc == 0)
        rc = add_header(&j->headers, TRANSPORT_HDR_SNAP_SIZE, num);
    snprintf(num, sizeof num, "%" PRIu32, crc);
    if (rc == 0)
        rc = add_header(&j->headers, TRANSPORT_HDR_SNAP_CRC, num);
    if (rc == 0)
        rc = add_header(&j->headers, "Content-Type", "application/octet-stream");
    return rc;
}

transport_snap_job *transport_snap_job_new(uint64_t cluster_id, const raft_msg *msg,
                                           const char *path, uint64_t size, uint32_t crc)
{
    transport_snap_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->peer = msg->to;
    j->file = fopen(path, "rb");
    j->easy = curl_easy_init();
    if (!j->file || !j->easy || build_headers(j, cluster_id, msg, size, crc) < 0) {
        transport_snap_job_free(j);
        return NULL;
    }
    CURL *e = j->easy;
    transport_curl_common(e, SNAP_CONNECT_MS);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_file);
    curl_easy_setopt(e, CURLOPT_READDATA, j->file);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, SNAP_LOW_SPEED_BYTES);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, SNAP_LOW_SPEED_SECS);
    return j;
}

int transport_snap_job_arm(transport_snap_job *j, const char *peer_url)
{
    char *url = transport_url_join(peer_url, "/raft/snapshot");
    if (!url)
        return -1;
    CURLcode rc = curl_easy_setopt(j->easy, CURLOPT_URL, url); /* curl copies it */
    free(url);
    return rc == CURLE_OK ? 0 : -1;
}

void transport_snap_job_free(transport_snap_job *j)
{
    if (!j)
        return;
    if (j->easy)
        curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->headers);
    if (j->file)
        fclose(j->file);
    free(j);
}
