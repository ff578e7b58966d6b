/* storage_load: reading back everything a restarting node needs — hard
 * state, the recorded snapshot and the log after it.
 *
 * Must never hand out a log that is not contiguous from snapshot index + 1
 * with non-decreasing terms, nor trust any stored row's type, size or
 * bytes: each entry's data must match the checksum stored with it.
 */
#include "storage/storage_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    raft_entry *v;
    size_t n, cap;
} entry_vec;

static int vec_push(entry_vec *vec, const raft_entry *e)
{
    if (xgrow(&vec->v, &vec->cap, vec->n, sizeof *vec->v) < 0)
        return -1;
    vec->v[vec->n++] = *e;
    return 0;
}

/* Decodes the current row of ST_ENT_AFTER into e (data malloc'd), checking
 * it continues the log: index == expect, term >= min_term. */
static int decode_row(storage *s, sqlite3_stmt *st, raft_index expect, raft_term min_term,
                      raft_entry *e)
{
    memset(e, 0, sizeof *e);
    e->index = (raft_index)sqlite3_column_int64(st, 0);
    e->term = (raft_term)sqlite3_column_int64(st, 1);
    sqlite3_int64 type = sqlite3_column_int64(st, 2);
    int dtype = sqlite3_column_type(st, 3);
    if (e->index != expect)
        return storage_fail(s, "%s: log gap at index %llu", s->db_path,
                            (unsigned long long)expect);
    if (e->term == 0 || e->term < min_term || sqlite3_column_type(st, 1) != SQLITE_INTEGER)
        return storage_fail(s, "%s: entry %llu has term %llu, expected at least %llu",
                            s->db_path, (unsigned long long)expect,
                            (unsigned long long)e->term, (unsigned long long)min_term);
    if (type < 0 || type > RAFT_ENTRY_CONF || (dtype != SQLITE_BLOB && dtype != SQLITE_NULL))
        return storage_fail(s, "%s: entry %llu is damaged (type or data)", s->db_path,
                            (unsigned long long)expect);
    e->type = (uint8_t)type;
    const void *p = sqlite3_column_blob(st, 3);
    int len = sqlite3_column_bytes(st, 3);
    if (len > 0) {
        e->data = xmemdup(p, (size_t)len);
        if (!e->data)
            return storage_fail(s, "%s: out of memory loading entry %llu", s->db_path,
                                (unsigned long long)expect);
        e->len = (uint32_t)len;
    }
    e->crc = (uint32_t)sqlite3_column_int64(st, 4);
    if (sqlite3_column_type(st, 4) != SQLITE_INTEGER || crc32c(0, e->data, e->len) != e->crc) {
        free(e->data);
        e->data = NULL;
        storage_fail(s, "%s: entry %llu fails its checksum (raft.db is damaged)", s->db_path,
                     (unsigned long long)expect);
        s->code = STORAGE_ERR_CORRUPT;
        return -1;
    }
    return 0;
}

static int load_entries(storage *s, entry_vec *vec)
{
    sqlite3_stmt *st = s->st[ST_ENT_AFTER];
    raft_index expect = s->snap.meta.index + 1;
    raft_term min_term = s->snap.meta.term;
    int ret = 0, rc = SQLITE_DONE;
    if (sqlite3_bind_int64(st, 1, (sqlite3_int64)s->snap.meta.index) != SQLITE_OK)
        ret = storage_sql_fail(s, "load entries");
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        raft_entry e;
        ret = decode_row(s, st, expect, min_term, &e);
        if (ret == 0 && vec_push(vec, &e) < 0) {
            free(e.data);
            ret = storage_fail(s, "%s: out of memory loading the log", s->db_path);
        }
        expect++;
        min_term = e.term;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = storage_sql_fail(s, "load entries");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

int storage_load(storage *s, raft_hard_state *hs, storage_snapshot *snap,
                 raft_entry **entries, size_t *n)
{
    *entries = NULL;
    *n = 0;
    *snap = s->snap;
    entry_vec vec = {0};
    if (storage_read_hard_state(s, hs) < 0 || load_entries(s, &vec) < 0) {
        storage_free_entries(vec.v, vec.n);
        return s->code; /* STORAGE_ERR_CORRUPT for an entry failing its checksum */
    }
    raft_index last = vec.n ? vec.v[vec.n - 1].index : snap->meta.index;
    if (hs->commit > last)
        log_warn("storage: %s: commit %llu is beyond the last index %llu", s->db_path,
                 (unsigned long long)hs->commit, (unsigned long long)last);
    *entries = vec.v;
    *n = vec.n;
    /* what was read is on disk: a commit-only write may now skip the sync */
    s->durable_known = true;
    s->durable_term = hs->term;
    s->durable_vote = hs->vote;
    return 0;
}

void storage_free_entries(raft_entry *entries, size_t n)
{
    if (!entries)
        return;
    for (size_t i = 0; i < n; i++)
        free(entries[i].data);
    free(entries);
}
