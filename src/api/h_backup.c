/* h_backup: GET /maintenance/snapshot — a backup of the key-value state,
 * streamed (docs/OPERATIONS.md, "Backups"). The copy is taken off every
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

static void send_copy(api_req *r)
{
    int rc;
    copy *c = api_offthread_state(r, &rc);
    if (rc != KV_OK) {
        log_error("backup: %s", c->msg[0] ? c->msg : "cannot copy the store");
        if (rc == KV_ERR_CORRUPT)
            api_reply_error(r, 503, "corrupt", NULL, "data: a stored row fails its checksum");
        else
            api_reply_error(r, 500, "internal", NULL, "cannot copy the store");
        return;
    }
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
