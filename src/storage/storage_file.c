/* storage_file: the snapshot files under <data-dir>/snap/ — their names,
 * checksums, fsync of files and directories, and removal of stale ones.
 *
 * Must never delete the snapshot raft.db records, nor a file whose name it
 * does not recognise (someone else may keep files there).
 */
#include "storage/storage_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SNAP_PREFIX "snap-"
#define SNAP_DIGITS 20
#define RECV_PREFIX "recv-"
#define STAGING_NAME "new-snapshot.db"

char *storage_snapshot_path(storage *s, raft_index index)
{
    char *p = NULL;
    if (asprintf(&p, "%s/" SNAP_PREFIX "%020llu.db", s->snap_dir,
                 (unsigned long long)index) < 0)
        return NULL;
    return p;
}

char *storage_staging_path(storage *s)
{
    char *p = NULL;
    if (asprintf(&p, "%s/" STAGING_NAME, s->snap_dir) < 0)
        return NULL;
    return p;
}

char *storage_recv_path(storage *s, raft_index index, raft_term term)
{
    char *p = NULL;
    if (asprintf(&p, "%s/" RECV_PREFIX "%llu-%llu.db", s->snap_dir,
                 (unsigned long long)index, (unsigned long long)term) < 0)
        return NULL;
    return p;
}

/* Size and CRC-32C of a file; with sync, also makes its data durable. */
int storage_file_sum(storage *s, const char *path, bool sync, uint64_t *size,
                     uint32_t *crc)
{
    if (file_sum(path, sync, size, crc) < 0)
        return storage_fail(s, "%s: cannot sum%s: %s", path, sync ? " and fsync" : "",
                            strerror(errno));
    return 0;
}

/* A rename or a new file is durable only once its directory is fsync'd. */
int storage_fsync_dir(storage *s, const char *path)
{
    if (fsync_path(path) < 0)
        return storage_fail(s, "%s: fsync: %s", path, strerror(errno));
    return 0;
}

/* Parses "snap-<20 digits>.db" with any suffix (SQLite may leave -wal,
 * -journal beside a copy). Returns 0 and the index, or -1. */
static int parse_snap_name(const char *name, raft_index *index)
{
    size_t plen = strlen(SNAP_PREFIX);
    if (strncmp(name, SNAP_PREFIX, plen) != 0)
        return -1;
    const char *d = name + plen;
    for (int i = 0; i < SNAP_DIGITS; i++)
        if (!isdigit((unsigned char)d[i]))
            return -1;
    if (strncmp(d + SNAP_DIGITS, ".db", 3) != 0)
        return -1;
    errno = 0;
    unsigned long long v = strtoull(d, NULL, 10);
    if (errno != 0)
        return -1;
    *index = v;
    return 0;
}

static bool is_stale(const char *name, raft_index keep, bool all_other)
{
    raft_index index;
    if (parse_snap_name(name, &index) == 0)
        return index < keep || (all_other && index != keep);
    return all_other && (strncmp(name, RECV_PREFIX, strlen(RECV_PREFIX)) == 0 ||
                         strncmp(name, STAGING_NAME, strlen(STAGING_NAME)) == 0);
}

static void remove_in_snap_dir(storage *s, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", s->snap_dir, name) < 0) {
        log_warn("storage: out of memory removing %s", name);
        return;
    }
    if (unlink(p) < 0 && errno != ENOENT)
        log_warn("storage: cannot remove %s: %s", p, strerror(errno));
    else
        log_debug("storage: removed stale %s", p);
    free(p);
}

void storage_prune_snapshots(storage *s, raft_index keep, bool all_other)
{
    DIR *d = opendir(s->snap_dir);
    if (!d) {
        log_warn("storage: cannot list %s: %s", s->snap_dir, strerror(errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (is_stale(e->d_name, keep, all_other))
            remove_in_snap_dir(s, e->d_name);
    closedir(d);
}

void storage_cleanup_snapshots(storage *s)
{
    storage_prune_snapshots(s, s->snap.meta.index, true);
}
