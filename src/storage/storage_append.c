/* storage_append: writing the Raft log and hard state to raft.db — the
 * group commit (one transaction, one fsync per call).
 *
 * Must never accept a batch that would leave a gap in the log, or return
 * before the batch is durable.
 */
#include "storage/storage_int.h"

#include <stdlib.h>
#include <string.h>

/* Highest stored index, 0 if the table is empty. */
static int last_stored(storage *s, raft_index *last)
{
    sqlite3_stmt *st = s->st[ST_ENT_LAST];
    int rc = sqlite3_step(st);
    *last = rc == SQLITE_ROW ? (raft_index)sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : storage_sql_fail(s, "read last index");
}

/* The caller's batch is checked before anything is written: a bad batch
 * is a bug upstream and must not reach the disk. */
static int check_batch(storage *s, const raft_entry *ents, size_t n)
{
    if (ents[0].index <= s->snap.meta.index)
        return storage_fail(s, "%s: append at index %llu is at or below the snapshot index %llu",
                            s->db_path, (unsigned long long)ents[0].index,
                            (unsigned long long)s->snap.meta.index);
    for (size_t i = 0; i < n; i++) {
        const raft_entry *e = &ents[i];
        bool bad = e->index != ents[0].index + i || e->term == 0 ||
                   e->type > RAFT_ENTRY_CONF || (e->len > 0 && !e->data) ||
                   (i > 0 && e->term < ents[i - 1].term);
        if (bad)
            return storage_fail(s, "%s: invalid entry %llu in append batch", s->db_path,
                                (unsigned long long)e->index);
    }
    return 0;
}

static int insert_entry(storage *s, const raft_entry *e)
{
    sqlite3_stmt *st = s->st[ST_ENT_INSERT];
    int rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)e->index);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)e->term);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 3, e->type);
    if (rc == SQLITE_OK)
        rc = e->len ? sqlite3_bind_blob64(st, 4, e->data, e->len, SQLITE_STATIC)
                    : sqlite3_bind_null(st, 4);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, (sqlite3_int64)e->crc);
    if (rc != SQLITE_OK) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return storage_sql_fail(s, "bind entry");
    }
    return storage_exec(s, st, "insert entry");
}

int storage_delete_entries(storage *s, enum storage_stmt id, raft_index index,
                           const char *what)
{
    sqlite3_stmt *st = s->st[id];
    if (sqlite3_bind_int64(st, 1, (sqlite3_int64)index) != SQLITE_OK) {
        sqlite3_clear_bindings(st);
        return storage_sql_fail(s, what);
    }
    return storage_exec(s, st, what);
}

static int write_entries(storage *s, const raft_entry *ents, size_t n)
{
    raft_index stored;
    if (last_stored(s, &stored) < 0)
        return -1;
    raft_index last = stored > s->snap.meta.index ? stored : s->snap.meta.index;
    if (ents[0].index > last + 1)
        return storage_fail(s, "%s: append at index %llu leaves a gap after %llu",
                            s->db_path, (unsigned long long)ents[0].index,
                            (unsigned long long)last);
    /* Only a conflict pays for the delete; the common case is a pure append. */
    if (ents[0].index <= stored &&
        storage_delete_entries(s, ST_ENT_TRUNCATE, ents[0].index, "truncate log") < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (insert_entry(s, &ents[i]) < 0)
            return -1;
    return 0;
}

/* Raft needs term and vote on disk before any message depends on them,
 * but the commit index is volatile state: a node that loses it after a
 * crash learns it again from the leader. So a write that moves only the
 * commit index is committed without an fsync (WAL, synchronous=NORMAL);
 * the next synced commit flushes it anyway. On a leader this saves the
 * second fsync per write (one for the entries, one for the new commit). */
static bool commit_only(const storage *s, const raft_hard_state *hs, size_t n)
{
    return n == 0 && hs && s->durable_known && hs->term == s->durable_term &&
           hs->vote == s->durable_vote;
}

static int set_sync(storage *s, sqlite3_stmt *pragma)
{
    return storage_exec(s, pragma, "set synchronous");
}

static int append_tx(storage *s, const raft_hard_state *hs, const raft_entry *ents, size_t n)
{
    if (storage_tx_begin(s) < 0)
        return -1;
    if ((n > 0 && write_entries(s, ents, n) < 0) ||
        (hs && storage_write_hard_state(s, hs) < 0)) {
        storage_tx_rollback(s);
        return -1;
    }
    return storage_tx_commit(s);
}

static int append_synced(storage *s, const raft_hard_state *hs, const raft_entry *ents, size_t n)
{
    if (append_tx(s, hs, ents, n) < 0)
        return -1;
    if (hs) {
        s->durable_known = true;
        s->durable_term = hs->term;
        s->durable_vote = hs->vote;
    }
    return 0;
}

static int append(storage *s, const raft_hard_state *hs, const raft_entry *ents, size_t n)
{
    if (n > 0 && (!ents || check_batch(s, ents, n) < 0))
        return ents ? -1 : storage_fail(s, "%s: append without entries", s->db_path);
    if (n == 0 && !hs)
        return 0;
    if (!commit_only(s, hs, n))
        return append_synced(s, hs, ents, n);
    if (set_sync(s, s->st[ST_SYNC_NORMAL]) < 0)
        return -1;
    int rc = append_tx(s, hs, ents, n);
    if (set_sync(s, s->st[ST_SYNC_FULL]) < 0)
        return -1;
    return rc;
}

int storage_append(storage *s, const raft_hard_state *hs, const raft_entry *ents, size_t n)
{
    return append(s, hs, ents, n) < 0 ? s->code : 0;
}
