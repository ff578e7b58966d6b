/* storage: the durable Raft state of one node in <data-dir>/raft.db (SQLite,
 * WAL, synchronous=FULL) and the snapshot files in <data-dir>/snap/.
 *
 * Owns: the log entries, the hard state, the node identity (node id,
 * cluster id, format version), the latest snapshot's metadata and its file.
 *
 * Must never: acknowledge anything itself, know what entries mean, or touch
 * the key-value database (that is kv's). Every write that returns 0 is
 * durable (fsync'd) — callers send acknowledgements only after that —
 * except a commit-index-only hard state (see storage_append).
 * Storage is used by one thread (the node loop) only.
 *
 * Snapshot files: <data-dir>/snap/snap-<index>.db is a consistent copy of
 * the key-value database at <index>; raft.db records its meta, size and
 * CRC-32C. Received snapshots are staged by the transport as
 * <data-dir>/snap/recv-<index>-<term>.db (already verified).
 *
 * Errors: functions return 0 on success, or a negative enum storage_err
 * code with the detail in storage_errmsg(). STORAGE_ERR_IO (-1) is the
 * generic failure; storage_append says more (see there).
 */
#ifndef RAFTKV_STORAGE_H
#define RAFTKV_STORAGE_H

#include "raft/raft.h"

#include <stddef.h>
#include <stdint.h>

typedef struct storage storage;

enum storage_err {
    STORAGE_OK = 0,
    STORAGE_ERR_IO = -1,      /* a write, an fsync or a read failed: internal, the node
                                 stops and never retries an fsync */
    STORAGE_ERR_NOSPACE = -2, /* the disk is full (SQLITE_FULL, ENOSPC): nothing was
                                 written; the node may retry once space is freed */
    STORAGE_ERR_CORRUPT = -3, /* raft.db or a snapshot file is damaged */
};
/* The short snake_case name of a storage_err code; never NULL. */
const char *storage_strerror(int code);

typedef struct {
    raft_snapshot_meta meta; /* meta.index == 0: none */
    uint64_t size;           /* bytes of the snapshot file */
    uint32_t crc;            /* CRC-32C of the file */
} storage_snapshot;

/* Opens (creating if absent) <dir>/raft.db. Refuses a damaged database
 * (integrity check) or an unknown format version, with a message that says
 * what is wrong, in err. */
int storage_open(const char *dir, storage **out, char *err, size_t errlen);
void storage_close(storage *s);
const char *storage_errmsg(const storage *s);

/* Identity of the data dir: returns 1 if none recorded yet (fresh dir). */
int storage_get_identity(storage *s, uint64_t *node_id, uint64_t *cluster_id);
int storage_set_identity(storage *s, uint64_t node_id, uint64_t cluster_id);
/* This start's number (1, 2, ...), made durable before it is returned. */
int storage_next_incarnation(storage *s, uint64_t *out);

/* Everything needed to restart: hard state, latest snapshot, and the log
 * entries after the snapshot (malloc'd array; free with
 * storage_free_entries). Verifies the log is contiguous. */
int storage_load(storage *s, raft_hard_state *hs, storage_snapshot *snap,
                 raft_entry **entries, size_t *n);
void storage_free_entries(raft_entry *entries, size_t n);

/* One transaction, one fsync: replaces entries at index >= ents[0].index
 * by ents, and writes hs if non-NULL. This is the group commit. A write
 * that changes only the commit index (no entries, same term and vote as
 * the last durable hard state) skips the fsync: the commit index is
 * volatile in Raft and may come back older after a crash.
 * STORAGE_ERR_NOSPACE: the disk was full and the transaction was rolled
 * back (nothing of it is on disk); any other failure is STORAGE_ERR_IO.
 * Failpoint "storage.commit" (util/failpoint.h) fails the commit with the
 * armed errno (ENOSPC: as a full disk; anything else: as a failed fsync). */
int storage_append(storage *s, const raft_hard_state *hs,
                   const raft_entry *ents, size_t n);

/* Path of the snapshot file for an index (caller frees). */
char *storage_snapshot_path(storage *s, raft_index index);
/* Staged received snapshot path for (index, term) (caller frees). */
char *storage_recv_path(storage *s, raft_index index, raft_term term);

/* Where a snapshot is written before its index is known (removed at
 * startup if a crash left it); caller frees. */
char *storage_staging_path(storage *s);
/* A snapshot taken locally: the file at `staged` (storage_staging_path),
 * whose data its writer already made durable and summed (size, CRC-32C; kv's
 * background job does both on its own thread), moves to
 * storage_snapshot_path(meta.index) (atomic rename) and the directory is
 * fsync'd, without reading the file again; then the meta is recorded, log
 * entries <= compact_to and older snapshot files are deleted. Crash-safe at
 * every step. STORAGE_ERR_NOSPACE: the disk was full and nothing was
 * recorded; any other error is the disk's (the node stops). */
int storage_snapshot_adopt(storage *s, const raft_snapshot_meta *meta, const char *staged,
                           uint64_t size, uint32_t crc, raft_index compact_to,
                           storage_snapshot *out);

/* Installs a received snapshot: moves the staged file `staged` to
 * storage_snapshot_path(meta.index) (atomic rename), records its meta,
 * drops the whole log, sets hard state commit to at least meta.index. */
int storage_install_snapshot(storage *s, const raft_snapshot_meta *meta,
                             const char *staged, storage_snapshot *out);

/* Checks a snapshot file against its recorded size and CRC (for startup). */
int storage_verify_snapshot(storage *s, const storage_snapshot *snap);

/* Deletes staged recv-* files and snapshot files other than the latest. */
void storage_cleanup_snapshots(storage *s);

#endif
