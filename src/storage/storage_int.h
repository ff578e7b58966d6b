/* storage_int.h: what the storage files share privately — the handle, the
 * prepared-statement table and the small helpers built on it.
 *
 * Must never be included outside src/storage/: callers see storage.h only.
 */
#ifndef RAFTKV_STORAGE_INT_H
#define RAFTKV_STORAGE_INT_H

#include "storage/storage.h"
#include "util/util.h"

#include <sqlite3.h>
#include <stdbool.h>

#define STORAGE_FORMAT_VERSION 2 /* 2: every entry row keeps its checksum (crc) */

/* Statements prepared once at open and reused: storage_append is the
 * group-commit hot path, so it must not re-parse SQL per call. */
enum storage_stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SYNC_NORMAL, /* for a commit-index-only write: no fsync */
    ST_SYNC_FULL,
    ST_META_GET,
    ST_META_SET,
    ST_ENT_INSERT,
    ST_ENT_TRUNCATE, /* idx >= ?: drops a conflicting suffix */
    ST_ENT_COMPACT,  /* idx <= ?: drops a compacted prefix */
    ST_ENT_CLEAR,    /* all: an installed snapshot replaces the log */
    ST_ENT_LAST,
    ST_ENT_AFTER,    /* idx > ? in order: what storage_load returns */
    ST_COUNT
};

struct storage {
    sqlite3 *db;
    char *dir;
    char *snap_dir;
    char *db_path;
    int lock_fd; /* flock'd <dir>/LOCK: one node process per data dir */
    sqlite3_stmt *st[ST_COUNT];
    /* Mirror of the snapshot recorded in raft.db; changed only after the
     * transaction that records a new one has committed. */
    storage_snapshot snap;
    /* Term and vote of the last hard state known durable (valid when
     * durable_known): a later write that changes only the commit index
     * needs no fsync. */
    bool durable_known;
    raft_term durable_term;
    raft_id durable_vote;
    char err[512];
    int code; /* enum storage_err of the last failure */
};

/* ---- errors (storage_sql.c) ---- */
int storage_fail(storage *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))); /* always returns -1 */
int storage_sql_fail(storage *s, const char *what); /* adds sqlite's reason */

/* ---- statements and transactions (storage_sql.c) ---- */
int storage_prepare_all(storage *s);
void storage_finalize_all(storage *s);
int storage_exec(storage *s, sqlite3_stmt *st, const char *what);
int storage_tx_begin(storage *s);
int storage_tx_commit(storage *s);
void storage_tx_rollback(storage *s);

/* ---- meta table (storage_meta.c) ---- */
int storage_meta_get_u64(storage *s, const char *key, uint64_t *v, bool *found);
int storage_meta_set_u64(storage *s, const char *key, uint64_t v);
int storage_meta_get_blob(storage *s, const char *key, buf *out, bool *found);
int storage_meta_set_blob(storage *s, const char *key, const void *p, size_t n);
int storage_read_hard_state(storage *s, raft_hard_state *hs);
int storage_write_hard_state(storage *s, const raft_hard_state *hs);
int storage_read_snapshot(storage *s, storage_snapshot *out);
int storage_write_snapshot(storage *s, const storage_snapshot *snap);

/* ---- log (storage_append.c): id is ST_ENT_TRUNCATE or ST_ENT_COMPACT ---- */
int storage_delete_entries(storage *s, enum storage_stmt id, raft_index index,
                           const char *what);

/* ---- membership codec for the snapshot meta (storage_conf.c) ---- */
int storage_conf_encode(const raft_conf *conf, buf *out);
int storage_conf_decode(const uint8_t *p, size_t n, raft_conf *conf);

/* ---- files (storage_file.c) ---- */
int storage_file_sum(storage *s, const char *path, bool sync, uint64_t *size,
                     uint32_t *crc);
int storage_fsync_dir(storage *s, const char *path);
/* Removes snapshot files with index < keep (and, if all_other, every snapshot
 * file but keep's and every staged recv file). */
void storage_prune_snapshots(storage *s, raft_index keep, bool all_other);

#endif
