/* kv_snapshot: the whole kv database as one file — written with VACUUM
 * INTO in the background, on a thread and connection of its own, and
 * restored from a received file with the online backup API (one atomic
 * write transaction). Every row's checksum is verified in each copy written
 * (a damaged row is never shipped) and in each file restored. Must never
 * restore a file it has not verified to be a sound kv database of a known
 * format with sound rows: it comes from the network; the background thread
 * must never touch the writer connection or the kv struct (what it finds,
 * the node thread reports at poll). */
#include "kv/kv_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* VACUUM INTO reads one consistent state of the source (a WAL reader, so
 * the writer goes on) and writes it compacted to path; the caller makes
 * it durable. */
static int vacuum_into(kv_db *d, const char *path)
{
    /* VACUUM INTO refuses an existing file; a stale one is ours to replace. */
    if (unlink(path) < 0 && errno != ENOENT) {
        log_error("kv: snapshot %s: %s", path, strerror(errno));
        return KV_ERR_INTERNAL;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "VACUUM INTO ?1", -1, &st, NULL) != SQLITE_OK)
        return KV_ERR_INTERNAL;
    int rc = sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC) == SQLITE_OK
                 ? sqlite3_step(st)
                 : SQLITE_ERROR;
    if (rc != SQLITE_DONE)
        log_error("kv: snapshot %s: %s", path, sqlite3_errmsg(d->db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? KV_OK : KV_ERR_INTERNAL;
}

/* Checks every row of the copy at path; a damaged copy is removed. msg
 * gets what was wrong. */
static int verify_copy(const char *path, char *msg, size_t msglen)
{
    kv_db d;
    if (kv_db_open(&d, path, SQLITE_OPEN_READONLY, msg, msglen) < 0)
        return KV_ERR_INTERNAL;
    int rc = kv_verify_rows(&d, msg, msglen);
    kv_db_close(&d);
    if (rc != KV_OK) {
        log_error("kv: snapshot %s: %s", path, msg);
        unlink(path);
    }
    return rc;
}

struct kv_snapjob {
    pthread_t thread;
    kv *k; /* read by the node thread only (poll) */
    char *src, *path;
    atomic_int state; /* 1 running, KV_OK done, KV_ERR_CORRUPT / KV_ERR_INTERNAL failed */
    kv_snapfile file; /* read once state is KV_OK */
    char msg[256];    /* read once state is KV_ERR_CORRUPT */
    bool reported;
};

/* The applied index and term recorded inside a snapshot file. */
static int file_applied(const char *path, uint64_t *index, uint64_t *term)
{
    kv_db d;
    char err[256];
    int64_t i = 0, t = 0; /* clang: t is unset when the first read fails */
    if (kv_db_open(&d, path, SQLITE_OPEN_READONLY, err, sizeof err) < 0) {
        log_error("kv: snapshot: %s", err);
        return KV_ERR_INTERNAL;
    }
    int rc = kv_meta_get(&d, "applied_index", &i) == 0 && kv_meta_get(&d, "applied_term", &t) == 0
                 ? KV_OK
                 : KV_ERR_INTERNAL;
    kv_db_close(&d);
    *index = (uint64_t)i;
    *term = (uint64_t)t;
    return rc;
}

/* The copy a backup streams (kv_backup.c frames it). */
int kv_backup_take(kv *k, kv_backup *out, char *msg, size_t msglen)
{
    kv_wait_visible(k); /* the copy is of kv.db: what this node applied is in it */
    static atomic_uint seq;
    char path[4200];
    snprintf(path, sizeof path, "%s.backup-%ld-%u", k->path, (long)getpid(),
             atomic_fetch_add(&seq, 1));
    memset(out, 0, sizeof *out);
    out->fd = -1;
    kv_db d;
    int rc = kv_db_open(&d, k->path, SQLITE_OPEN_READWRITE, msg, msglen) < 0 ? KV_ERR_INTERNAL
                                                                            : KV_OK;
    if (rc == KV_OK) {
        rc = vacuum_into(&d, path);
        kv_db_close(&d);
    }
    if (rc == KV_OK)
        rc = verify_copy(path, msg, msglen);
    if (rc == KV_ERR_CORRUPT)
        kv_note_corrupt(k, msg);
    if (rc == KV_OK && (file_sum(path, false, &out->size, &out->crc) < 0 ||
                        kv_backup_revision(path, &out->revision) < 0 ||
                        (out->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)) {
        kv_errf(msg, msglen, "backup copy %s: %s", path, strerror(errno));
        rc = KV_ERR_INTERNAL;
    }
    unlink(path); /* the descriptor keeps it while the stream lasts */
    if (rc == KV_OK)
        kv_backup_frame(out);
    return rc;
}

static void *snapjob_main(void *arg)
{
    kv_snapjob *j = arg;
    kv_db d;
    char err[256];
    int rc = KV_ERR_INTERNAL;
    if (kv_db_open(&d, j->src, SQLITE_OPEN_READWRITE, err, sizeof err) < 0) {
        log_error("kv: snapshot: %s", err);
    } else {
        rc = vacuum_into(&d, j->path);
        kv_db_close(&d);
    }
    if (rc == KV_OK)
        rc = verify_copy(j->path, j->msg, sizeof j->msg);
    /* The directory entry is storage's to make durable: it renames the
     * file before anything may name it. */
    if (rc == KV_OK && file_sum(j->path, true, &j->file.size, &j->file.crc) < 0) {
        log_error("kv: snapshot %s: sum and fsync: %s", j->path, strerror(errno));
        rc = KV_ERR_INTERNAL;
    }
    if (rc == KV_OK)
        rc = file_applied(j->path, &j->file.index, &j->file.term);
    atomic_store(&j->state, rc);
    return NULL;
}

static void snapjob_free_fields(kv_snapjob *j)
{
    free(j->src);
    free(j->path);
    free(j);
}

kv_snapjob *kv_snapjob_start(kv *k, const char *path)
{
    kv_snapjob *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->k = k;
    j->src = xstrdup(k->path);
    j->path = xstrdup(path);
    atomic_init(&j->state, 1);
    if (!j->src || !j->path || pthread_create(&j->thread, NULL, snapjob_main, j) != 0) {
        snapjob_free_fields(j);
        return NULL;
    }
    return j;
}

int kv_snapjob_poll(kv_snapjob *j, kv_snapfile *out)
{
    int rc = atomic_load(&j->state);
    if (rc == KV_OK)
        *out = j->file;
    if (rc == KV_ERR_CORRUPT && !j->reported) {
        kv_note_corrupt(j->k, j->msg);
        j->reported = true;
    }
    return rc;
}

void kv_snapjob_free(kv_snapjob *j)
{
    if (!j)
        return;
    pthread_join(j->thread, NULL);
    snapjob_free_fields(j);
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
    if (kv_apply_flush(k) != KV_OK) { /* a copy cannot land in an open transaction */
        kv_errf(err, errlen, "restore: cannot commit the applied batches first");
        return KV_ERR_INTERNAL;
    }
    kv_db src;
    if (kv_db_open(&src, path, SQLITE_OPEN_READONLY, err, errlen) < 0)
        return KV_ERR_INVALID;
    int v = kv_schema_verify(&src, true, err, errlen);
    if (v == 1)
        kv_errf(err, errlen, "%s: empty database, not a kv snapshot", path);
    if (v != 0 || kv_verify_rows(&src, err, errlen) != KV_OK) {
        kv_db_close(&src);
        return KV_ERR_INVALID;
    }
    int rc = copy_into(k, &src, err, errlen);
    kv_db_close(&src);
    kv_pool_committed(k); /* the readers' views are of the old database */
    if (rc < 0)
        return KV_ERR_INTERNAL;
    if (kv_schema_upgrade(&k->w) < 0 || kv_load_state(k) < 0) {
        kv_errf(err, errlen, "restore: cannot reload kv metadata");
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}
