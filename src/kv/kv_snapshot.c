/* kv_snapshot: the whole kv database as one file — written with VACUUM
 * INTO for a follower, and restored from a received file with the online
 * backup API (one atomic write transaction). Must never restore a file it
 * has not verified to be a sound kv database of a known format: it comes
 * from the network. */
#include "kv/kv_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* The file and its directory entry must both be durable. */
static int fsync_file_and_dir(const char *path)
{
    char *copy = xstrdup(path);
    if (!copy)
        return -1;
    int rc = fsync_path(path, O_RDONLY);
    if (rc == 0)
        rc = fsync_path(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    return rc;
}

int kv_snapshot_write(kv *k, const char *path)
{
    if (k->in_batch) {
        log_error("kv: snapshot inside an apply batch");
        return KV_ERR_INTERNAL;
    }
    /* VACUUM INTO refuses an existing file; a stale one is ours to replace. */
    if (unlink(path) < 0 && errno != ENOENT) {
        log_error("kv: snapshot %s: %s", path, strerror(errno));
        return KV_ERR_INTERNAL;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(k->w.db, "VACUUM INTO ?1", -1, &st, NULL) != SQLITE_OK)
        return KV_ERR_INTERNAL;
    int rc = sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC) == SQLITE_OK
                 ? sqlite3_step(st)
                 : SQLITE_ERROR;
    if (rc != SQLITE_DONE)
        log_error("kv: snapshot %s: %s", path, sqlite3_errmsg(k->w.db));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return KV_ERR_INTERNAL;
    if (fsync_file_and_dir(path) < 0) {
        log_error("kv: snapshot %s: fsync: %s", path, strerror(errno));
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

static int copy_into(kv *k, kv_db *src, char *err, size_t errlen)
{
    sqlite3_backup *b = sqlite3_backup_init(k->w.db, "main", src->db, "main");
    if (!b) {
        kv_errf(err, errlen, "restore: %s", sqlite3_errmsg(k->w.db));
        return -1;
    }
    int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        kv_errf(err, errlen, "restore: %s", sqlite3_errstr(rc));
        return -1;
    }
    return 0;
}

int kv_restore(kv *k, const char *path, char *err, size_t errlen)
{
    if (k->in_batch) {
        kv_errf(err, errlen, "restore inside an apply batch");
        return KV_ERR_INTERNAL;
    }
    kv_db src;
    if (kv_db_open(&src, path, SQLITE_OPEN_READONLY, err, errlen) < 0)
        return KV_ERR_INVALID;
    int v = kv_schema_verify(&src, true, err, errlen);
    if (v != 0) {
        if (v == 1)
            kv_errf(err, errlen, "%s: empty database, not a kv snapshot", path);
        kv_db_close(&src);
        return KV_ERR_INVALID;
    }
    int rc = copy_into(k, &src, err, errlen);
    kv_db_close(&src);
    if (rc < 0)
        return KV_ERR_INTERNAL;
    if (kv_load_state(k) < 0) {
        kv_errf(err, errlen, "restore: cannot reload kv metadata");
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}
