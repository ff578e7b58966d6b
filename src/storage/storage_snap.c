/* storage_snap: recording snapshots in raft.db — one taken locally (then
 * compacting the log), one received from the leader (then dropping the log)
 * — and checking a snapshot file against what raft.db recorded.
 *
 * Must never let raft.db name a snapshot file that is not durable yet, nor
 * delete the file raft.db names. The order is always: file durable, then
 * one transaction in raft.db, then removal of older files. A crash at any
 * point leaves raft.db consistent with the files it names; leftovers are
 * orphans that storage_cleanup_snapshots removes.
 */
#include "storage/storage_int.h"

#include "util/failpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_meta(storage *s, const raft_snapshot_meta *meta, bool allow_same)
{
    raft_index cur = s->snap.meta.index;
    if (!meta || meta->index == 0 || meta->term == 0)
        return storage_fail(s, "%s: invalid snapshot meta", s->db_path);
    if (meta->index < cur || (meta->index == cur && !allow_same))
        return storage_fail(s, "%s: snapshot at %llu is not newer than the recorded %llu",
                            s->db_path, (unsigned long long)meta->index,
                            (unsigned long long)cur);
    return 0;
}

/* Makes the snapshot durable under its final name, so raft.db may name it:
 * sums the file (fsync'ing its data) unless its writer did, moves it there
 * if it was staged elsewhere, then fsyncs the directory once — that one
 * fsync makes both the rename and a new file's entry durable. */
static int make_durable(storage *s, const char *staged, const char *final, bool summed,
                        storage_snapshot *next)
{
    if (!summed &&
        storage_file_sum(s, staged ? staged : final, true, &next->size, &next->crc) < 0)
        return -1;
    /* the failpoint stands for the rename or the directory's fsync failing */
    int e = failpoint_hit("storage.snapshot");
    if (e) {
        storage_fail(s, "%s: cannot make it durable: %s (failpoint)", final, strerror(e));
        if (e == ENOSPC)
            s->code = STORAGE_ERR_NOSPACE;
        return -1;
    }
    if (staged && rename(staged, final) < 0)
        return storage_fail(s, "%s: cannot move to %s: %s", staged, final, strerror(errno));
    return storage_fsync_dir(s, s->snap_dir);
}

/* The new snapshot is recorded: mirror it and drop the files it replaces. */
static void adopt(storage *s, const storage_snapshot *next, storage_snapshot *out)
{
    s->snap = *next;
    storage_prune_snapshots(s, next->meta.index, false);
    if (out)
        *out = *next;
}

static int record_saved(storage *s, const storage_snapshot *next, raft_index compact_to)
{
    if (storage_tx_begin(s) < 0)
        return -1;
    if (storage_write_snapshot(s, next) < 0 ||
        storage_delete_entries(s, ST_ENT_COMPACT, compact_to, "compact log") < 0) {
        storage_tx_rollback(s);
        return -1;
    }
    return storage_tx_commit(s);
}

int storage_snapshot_adopt(storage *s, const raft_snapshot_meta *meta, const char *staged,
                           uint64_t size, uint32_t crc, raft_index compact_to,
                           storage_snapshot *out)
{
    storage_snapshot next = {.meta = *meta, .size = size, .crc = crc};
    if (check_meta(s, meta, true) < 0)
        return -1;
    if (!staged)
        return storage_fail(s, "%s: no staged snapshot file", s->db_path);
    if (compact_to > meta->index)
        return storage_fail(s, "%s: compact_to %llu is beyond the snapshot index %llu",
                            s->db_path, (unsigned long long)compact_to,
                            (unsigned long long)meta->index);
    char *path = storage_snapshot_path(s, meta->index);
    if (!path)
        return storage_fail(s, "%s: out of memory", s->db_path);
    int rc = make_durable(s, staged, path, true, &next);
    free(path);
    if (rc < 0 || record_saved(s, &next, compact_to) < 0)
        return s->code;
    adopt(s, &next, out);
    return 0;
}

/* Term and commit only move forward: the snapshot proves its entries were
 * committed in meta.term, so the node is at least there. */
static int raise_hard_state(storage *s, const raft_snapshot_meta *meta)
{
    raft_hard_state hs;
    if (storage_read_hard_state(s, &hs) < 0)
        return -1;
    if (hs.commit < meta->index)
        hs.commit = meta->index;
    if (hs.term < meta->term)
        hs.term = meta->term;
    s->durable_known = false; /* the next append syncs and relearns it */
    return storage_write_hard_state(s, &hs);
}

static int record_installed(storage *s, const storage_snapshot *next)
{
    if (storage_tx_begin(s) < 0)
        return -1;
    if (storage_write_snapshot(s, next) < 0 ||
        storage_exec(s, s->st[ST_ENT_CLEAR], "drop log") < 0 ||
        raise_hard_state(s, &next->meta) < 0) {
        storage_tx_rollback(s);
        return -1;
    }
    return storage_tx_commit(s);
}

int storage_install_snapshot(storage *s, const raft_snapshot_meta *meta,
                             const char *staged, storage_snapshot *out)
{
    if (check_meta(s, meta, false) < 0)
        return -1;
    if (!staged)
        return storage_fail(s, "%s: no staged snapshot file", s->db_path);
    char *final = storage_snapshot_path(s, meta->index);
    if (!final)
        return storage_fail(s, "%s: out of memory", s->db_path);
    storage_snapshot next = {.meta = *meta};
    int rc = make_durable(s, staged, final, false, &next);
    if (rc == 0 && record_installed(s, &next) < 0) {
        rc = -1;
        /* Not recorded: put the file back so the caller may retry. */
        if (rename(final, staged) < 0)
            log_warn("storage: cannot move %s back to %s: %s", final, staged, strerror(errno));
    }
    free(final);
    if (rc == 0)
        adopt(s, &next, out);
    return rc;
}

int storage_verify_snapshot(storage *s, const storage_snapshot *snap)
{
    if (snap->meta.index == 0)
        return 0; /* nothing recorded, nothing to check */
    char *path = storage_snapshot_path(s, snap->meta.index);
    if (!path)
        return storage_fail(s, "%s: out of memory", s->db_path);
    uint64_t size;
    uint32_t crc;
    int rc = storage_file_sum(s, path, false, &size, &crc);
    if (rc == 0 && size != snap->size)
        rc = storage_fail(s, "%s: size %llu, expected %llu (file truncated or damaged)", path,
                          (unsigned long long)size, (unsigned long long)snap->size);
    else if (rc == 0 && crc != snap->crc)
        rc = storage_fail(s, "%s: CRC-32C %08x, expected %08x (file damaged)", path,
                          (unsigned)crc, (unsigned)snap->crc);
    free(path);
    return rc;
}
