/* snap_recv: receives one POST /raft/snapshot body into a temp file under
 * <data_dir>/snap/, computing its CRC-32C on the way, and stages it as
 * <data_dir>/snap/recv-<index>-<term>.db (the name storage_recv_path uses)
 * once size, CRC and header have been verified and the bytes are on disk.
 * Must never keep a bad or partial file: every failure deletes the temp
 * file, and the callback runs only after fsync + rename. */
#include "transport/transport_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct transport_snap_recv {
    const transport_config *cfg;
    raft_msg msg;
    uint64_t size;     /* declared */
    uint32_t crc;      /* declared */
    uint64_t received;
    uint32_t crc_now;
    int fd;
    char *tmp;         /* temp path; NULL once renamed */
    int status;        /* 0 while all is well, else the HTTP status to answer */
    const char *err;
};

static char *snap_dir(const transport_config *cfg)
{
    return transport_url_join(cfg->data_dir, "/snap");
}

/* Creates the temp file; 0 or -1. */
static int open_temp(transport_snap_recv *r)
{
    char *dir = snap_dir(r->cfg);
    if (!dir)
        return -1;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        free(dir);
        return -1;
    }
    r->tmp = transport_url_join(dir, "/recv-XXXXXX.tmp");
    free(dir);
    if (!r->tmp)
        return -1;
    r->fd = mkstemps(r->tmp, 4);
    if (r->fd < 0) {
        free(r->tmp);
        r->tmp = NULL;
        return -1;
    }
    return 0;
}

static int check_headers(transport_snap_recv *r, const char *msg_hex, const char *size_s,
                         const char *crc_s, int *status, const char **err)
{
    uint64_t crc;
    int rc = transport_snap_header_decode(msg_hex, r->cfg->cluster_id, &r->msg, err);
    *status = rc == TRANSPORT_ERR_NOMEM ? 500 : 400;
    if (rc < 0)
        return -1;
    if (r->cfg->self && r->msg.to != r->cfg->self) {
        *err = "snapshot is for another node";
        return -1;
    }
    if (transport_parse_u64(size_s, &r->size) < 0 || transport_parse_u64(crc_s, &crc) < 0 ||
        crc > UINT32_MAX) {
        *err = "missing or malformed snapshot size or crc header";
        return -1;
    }
    r->crc = (uint32_t)crc;
    if (r->cfg->max_snapshot_bytes && r->size > r->cfg->max_snapshot_bytes) {
        *status = 413;
        *err = "snapshot too large";
        return -1;
    }
    return 0;
}

transport_snap_recv *transport_snap_recv_begin(const transport_config *cfg,
                                               const char *msg_hex, const char *size_s,
                                               const char *crc_s, int *status,
                                               const char **err)
{
    transport_snap_recv *r = calloc(1, sizeof *r);
    if (!r) {
        *status = 500;
        *err = "out of memory";
        return NULL;
    }
    r->cfg = cfg;
    r->fd = -1;
    if (check_headers(r, msg_hex, size_s, crc_s, status, err) < 0) {
        transport_snap_recv_free(r);
        return NULL;
    }
    if (open_temp(r) < 0) {
        log_warn("transport: cannot create snapshot temp file in %s/snap: %s", cfg->data_dir,
                 strerror(errno));
        *status = 500;
        *err = "cannot stage snapshot";
        transport_snap_recv_free(r);
        return NULL;
    }
    return r;
}

/* Drops the temp file now, so a failed upload leaves nothing behind even
 * while the rest of its body is still being drained. */
static int fail(transport_snap_recv *r, int status, const char *err)
{
    if (r->status == 0) {
        r->status = status;
        r->err = err;
    }
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    if (r->tmp)
        unlink(r->tmp);
    free(r->tmp);
    r->tmp = NULL;
    return -1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int transport_snap_recv_data(transport_snap_recv *r, const char *data, size_t n)
{
    if (r->status)
        return -1;
    if (n > r->size - r->received)
        return fail(r, 400, "snapshot longer than declared");
    if (write_all(r->fd, data, n) < 0)
        return fail(r, 500, "cannot write snapshot");
    r->received += n;
    r->crc_now = crc32c(r->crc_now, data, n);
    return 0;
}

/* fsync, rename to the final name, fsync the directory; returns the final
 * path or NULL. */
static char *stage(transport_snap_recv *r)
{
    char name[64];
    snprintf(name, sizeof name, "/recv-%llu-%llu.db", (unsigned long long)r->msg.snapshot.index,
             (unsigned long long)r->msg.snapshot.term);
    char *dir = snap_dir(r->cfg);
    char *path = dir ? transport_url_join(dir, name) : NULL;
    int rc = path ? fsync(r->fd) : -1;
    if (rc == 0) {
        rc = close(r->fd);
        r->fd = -1;
    }
    if (rc == 0)
        rc = rename(r->tmp, path);
    if (rc == 0) {
        free(r->tmp);
        r->tmp = NULL;
        rc = fsync_path(dir);
    }
    free(dir);
    if (rc != 0) {
        if (path && !r->tmp)
            unlink(path);
        free(path);
        return NULL;
    }
    return path;
}

int transport_snap_recv_finish(transport_snap_recv *r, const char **err)
{
    if (r->status == 0 && r->received != r->size)
        fail(r, 400, "snapshot shorter than declared");
    if (r->status == 0 && r->crc_now != r->crc)
        fail(r, 400, "snapshot checksum mismatch");
    raft_msg *m = r->status == 0 ? malloc(sizeof *m) : NULL;
    if (r->status == 0 && !m)
        fail(r, 500, "out of memory");
    char *path = m ? stage(r) : NULL;
    if (m && !path)
        fail(r, 500, "cannot stage snapshot");
    if (r->status) {
        free(m);
        *err = r->err;
        return r->status;
    }
    *m = r->msg;
    r->msg.n_entries = 0; /* ownership moves with m */
    r->msg.entries = NULL;
    if (r->cfg->cb.on_snapshot) {
        r->cfg->cb.on_snapshot(r->cfg->cb.ud, m, path);
    } else { /* nobody to hand it to: do not leave it behind */
        unlink(path);
        free(path);
        free(m);
    }
    return 204;
}

void transport_snap_recv_free(transport_snap_recv *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    if (r->tmp)
        unlink(r->tmp);
    free(r->tmp);
    transport_msg_clear(&r->msg);
    free(r);
}
