/* h_backup: GET /maintenance/snapshot — a backup of the key-value state,
 * streamed (docs/OPERATIONS.md, "Backups"); the gateway's
 * maintenance/snapshot sends the same bytes in etcd's result lines. The copy is taken off every
 * loop (offthread.c: kv_backup_take, VACUUM INTO on its own connection,
 * every row verified); then its bytes and the 24-byte trailer (size,
 * CRC-32C) are read from the unlinked file as the client takes them.
 *
 * Must never: stream a copy that failed verification, or keep the copy's
 * descriptor past the response.
 */
#include "api/api_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    kv_backup b;
    bool open; /* b.fd is ours to close */
    char msg[256];
} copy;

static int take(api *a, void *state)
{
    copy *c = state;
    int rc = kv_backup_take(a->kv, &c->b, c->msg, sizeof c->msg);
    c->open = rc == KV_OK;
    return rc;
}

static void copy_free(void *state)
{
    copy *c = state;
    if (c->open)
        close(c->b.fd);
}

/* The response's reader: the copy's bytes, then the trailer. */
typedef struct {
    int fd;
    uint64_t size;
    uint8_t trailer[KV_BACKUP_TRAILER];
} stream;

static ssize_t read_cb(void *cls, uint64_t pos, char *out, size_t max)
{
    stream *s = cls;
    if (pos >= s->size) {
        uint64_t off = pos - s->size;
        if (off >= KV_BACKUP_TRAILER)
            return MHD_CONTENT_READER_END_OF_STREAM;
        size_t n = KV_BACKUP_TRAILER - (size_t)off < max ? KV_BACKUP_TRAILER - (size_t)off : max;
        memcpy(out, s->trailer + off, n);
        return (ssize_t)n;
    }
    size_t want = s->size - pos < max ? (size_t)(s->size - pos) : max;
    ssize_t got = pread(s->fd, out, want, (off_t)pos);
    return got > 0 ? got : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    stream *s = cls;
    close(s->fd);
    free(s);
}

static struct MHD_Response *response_for(copy *c)
{
    stream *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    s->fd = c->b.fd;
    s->size = c->b.size;
    memcpy(s->trailer, c->b.trailer, KV_BACKUP_TRAILER);
    struct MHD_Response *resp = MHD_create_response_from_callback(
        c->b.size + KV_BACKUP_TRAILER, 64 * 1024, read_cb, s, stream_free);
    if (resp)
        c->open = false; /* the response's now */
    else
        free(s);
    return resp;
}

/* ---- etcd's gateway: the same bytes as {"result":{header,
 * remaining_bytes, blob}} lines, blob base64 ---- */

#define GW_CHUNK (32 * 1024)

typedef struct {
    stream s;
    uint64_t raw_pos;   /* bytes of copy + trailer put into lines so far */
    char *line;         /* the line being sent */
    size_t line_len, line_off;
    char header[200];   /* {"cluster_id":...} as etcd writes it */
} gw_stream;

static ssize_t raw_read(stream *s, uint64_t pos, uint8_t *out, size_t max)
{
    ssize_t n = read_cb(s, pos, (char *)out, max);
    return n < 0 ? -1 : n;
}

static int next_line(gw_stream *g)
{
    uint8_t raw[GW_CHUNK];
    uint64_t total = g->s.size + KV_BACKUP_TRAILER;
    size_t want = total - g->raw_pos < GW_CHUNK ? (size_t)(total - g->raw_pos) : GW_CHUNK, got = 0;
    while (got < want) {
        ssize_t n = raw_read(&g->s, g->raw_pos + got, raw + got, want - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    g->raw_pos += got;
    char *b64 = api_b64_encode(raw, got);
    free(g->line);
    g->line = NULL;
    if (!b64)
        return -1;
    size_t cap = strlen(b64) + sizeof g->header + 100;
    g->line = malloc(cap);
    if (g->line)
        g->line_len = (size_t)snprintf(g->line, cap,
                                       "{\"result\":{\"header\":%s,\"remaining_bytes\":\"%llu\","
                                       "\"blob\":\"%s\"}}\n",
                                       g->header, (unsigned long long)(total - g->raw_pos), b64);
    g->line_off = 0;
    free(b64);
    return g->line ? 0 : -1;
}

static ssize_t gw_read_cb(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    gw_stream *g = cls;
    if (g->line_off == g->line_len) {
        if (g->raw_pos == g->s.size + KV_BACKUP_TRAILER)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (next_line(g) < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = g->line_len - g->line_off < max ? g->line_len - g->line_off : max;
    memcpy(out, g->line + g->line_off, n);
    g->line_off += n;
    return (ssize_t)n;
}

static void gw_stream_free(void *cls)
{
    gw_stream *g = cls;
    close(g->s.fd);
    free(g->line);
    free(g);
}

static struct MHD_Response *gw_response_for(api_req *r, copy *c)
{
    gw_stream *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->s.fd = c->b.fd;
    g->s.size = c->b.size;
    memcpy(g->s.trailer, c->b.trailer, KV_BACKUP_TRAILER);
    node_info i;
    node_get_info(r->a->node, &i);
    snprintf(g->header, sizeof g->header,
             "{\"cluster_id\":\"%llu\",\"member_id\":\"%llu\",\"revision\":\"%lld\","
             "\"raft_term\":\"%llu\"}",
             (unsigned long long)i.cluster_id, (unsigned long long)i.member_id,
             (long long)c->b.revision, (unsigned long long)i.raft_term);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, gw_read_cb, g, gw_stream_free);
    if (resp)
        c->open = false;
    else
        free(g);
    return resp;
}

static bool copy_failed(api_req *r, int rc, const copy *c)
{
    if (rc == KV_OK)
        return false;
    log_error("backup: %s", c->msg[0] ? c->msg : "cannot copy the store");
    if (r->route.kind == ROUTE_V3)
        api_v3_error(r, 13, rc == KV_ERR_CORRUPT ? API_ETCD_CORRUPT_MSG
                                                : "etcdserver: cannot copy the store");
    else if (rc == KV_ERR_CORRUPT)
        api_reply_kv_error(r, rc, 0);
    else
        api_reply_error(r, 500, "internal", NULL, "cannot copy the store");
    return true;
}

static void send_gw_copy(api_req *r)
{
    int rc;
    copy *c = api_offthread_state(r, &rc);
    if (copy_failed(r, rc, c))
        return;
    struct MHD_Response *resp = gw_response_for(r, c);
    if (!resp)
        api_v3_error(r, 13, "etcdserver: out of memory");
    else
        api_reply_response(r, 200, "application/json", resp, NULL);
}

void api_v3_snapshot(api_req *r) { api_offthread(r, sizeof(copy), copy_free, take, send_gw_copy); }

static void send_copy(api_req *r)
{
    int rc;
    copy *c = api_offthread_state(r, &rc);
    if (copy_failed(r, rc, c))
        return;
    struct MHD_Response *resp = response_for(c);
    if (!resp) {
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    char rev[24], crc[16];
    snprintf(rev, sizeof rev, "%" PRId64, c->b.revision);
    snprintf(crc, sizeof crc, "%08x", (unsigned)c->b.crc);
    const char *h[] = {"X-Raftkv-Revision", rev, "X-Raftkv-Checksum", crc,
                       "Content-Disposition", "attachment; filename=\"raftkv.backup\"", NULL};
    api_reply_response(r, 200, "application/octet-stream", resp, h);
}

void api_h_backup(api_req *r) { api_offthread(r, sizeof(copy), copy_free, take, send_copy); }
