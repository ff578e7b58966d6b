/* kv_backup: the backup file — kv.db's bytes as one consistent copy
 * (kv_backup_take, in kv_snapshot.c) followed by a 24-byte trailer: magic
 * "RKVBAK01", the database's size (u64) and CRC-32C (u32), and a CRC-32C
 * of those 20 bytes (little endian). `raftkv snapshot save` writes the
 * stream as it comes; `status` and `restore` check the trailer, then the
 * database itself as kv_restore checks a snapshot from the network (every
 * row's checksum), before using any of it; `restore` then turns the state
 * into the first state of a new cluster (kv_backup_reset: no members, no
 * alarms, no proposals remembered as applied).
 *
 * Must never: accept a file whose trailer, size or checksum disagree, or
 * leave a half-written database where one was asked for.
 */
#include "kv/kv_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char magic[8] = {'R', 'K', 'V', 'B', 'A', 'K', '0', '1'};

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void kv_backup_frame(kv_backup *b)
{
    memcpy(b->trailer, magic, 8);
    put_le(b->trailer + 8, b->size, 8);
    put_le(b->trailer + 16, b->crc, 4);
    put_le(b->trailer + 20, crc32c(0, b->trailer, 20), 4);
}

int kv_backup_revision(const char *db_path, int64_t *rev)
{
    kv_db d;
    char err[256];
    if (kv_db_open(&d, db_path, SQLITE_OPEN_READONLY, err, sizeof err) < 0)
        return -1;
    int rc = kv_meta_get(&d, "revision", rev);
    kv_db_close(&d);
    return rc;
}

/* Sums the first size bytes of in, copying them to out_path (made
 * durable) unless it is NULL. */
static int copy_prefix(int in, const char *out_path, uint64_t size, uint32_t *crc)
{
    int out = out_path ? open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -2;
    if (out == -1)
        return -1;
    uint8_t chunk[64 * 1024];
    uint64_t done = 0;
    *crc = 0;
    while (done < size) {
        size_t want = size - done < sizeof chunk ? (size_t)(size - done) : sizeof chunk;
        ssize_t got = pread(in, chunk, want, (off_t)done);
        if (got <= 0 || (out >= 0 && write(out, chunk, (size_t)got) != got)) {
            if (got < 0 && errno == EINTR)
                continue;
            if (out >= 0) {
                close(out);
                unlink(out_path);
            }
            return -1;
        }
        *crc = crc32c(*crc, chunk, (size_t)got);
        done += (uint64_t)got;
    }
    if (out < 0)
        return 0;
    int rc = fsync(out);
    close(out);
    if (rc < 0)
        unlink(out_path);
    return rc;
}

int kv_backup_extract(const char *file, const char *db_path, char *err, size_t errlen)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    uint8_t t[KV_BACKUP_TRAILER];
    if (fd < 0 || fstat(fd, &sb) < 0) {
        kv_errf(err, errlen, "%s: %s", file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return KV_ERR_INVALID;
    }
    uint64_t total = (uint64_t)sb.st_size;
    int rc = KV_ERR_INVALID;
    if (total < KV_BACKUP_TRAILER ||
        pread(fd, t, sizeof t, (off_t)(total - KV_BACKUP_TRAILER)) != (ssize_t)sizeof t ||
        memcmp(t, magic, 8) != 0 || get_le(t + 20, 4) != crc32c(0, t, 20)) {
        kv_errf(err, errlen, "%s: not a raftkv backup, or its end is cut off or damaged", file);
    } else if (get_le(t + 8, 8) != total - KV_BACKUP_TRAILER) {
        kv_errf(err, errlen, "%s: %llu bytes of data, the trailer says %llu: truncated or padded",
                file, (unsigned long long)(total - KV_BACKUP_TRAILER),
                (unsigned long long)get_le(t + 8, 8));
    } else {
        uint32_t crc;
        if (copy_prefix(fd, db_path, total - KV_BACKUP_TRAILER, &crc) < 0) {
            kv_errf(err, errlen, "%s: %s", db_path ? db_path : file, strerror(errno));
            rc = KV_ERR_INTERNAL;
        } else if (crc != (uint32_t)get_le(t + 16, 4)) {
            kv_errf(err, errlen, "%s: checksum mismatch (CRC-32C %08x, the trailer says %08x): "
                    "the file is damaged", file, crc, (unsigned)get_le(t + 16, 4));
            if (db_path)
                unlink(db_path);
        } else {
            rc = KV_OK;
        }
    }
    close(fd);
    return rc;
}

int kv_backup_reset(kv *k)
{
    static const char *const sql[] = {
        "DELETE FROM kv_members", "DELETE FROM kv_removed", "DELETE FROM kv_alarm",
        /* the new cluster's members number their proposals afresh */
        "DELETE FROM kv_executed",
    };
    if (kv_apply_begin(k) != KV_OK)
        return KV_ERR_INTERNAL;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        if (sqlite3_exec(k->w.db, sql[i], NULL, NULL, NULL) != SQLITE_OK) {
            kv_apply_rollback(k);
            return KV_ERR_INTERNAL;
        }
    }
    /* applied index 0: the new cluster's log starts over at 1 */
    if (kv_apply_commit(k, 0, 0) != KV_OK || kv_load_state(k) < 0)
        return KV_ERR_INTERNAL;
    return KV_OK;
}
