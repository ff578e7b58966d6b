/* kv_db: one SQLite connection of the kv store and its statements, each
 * prepared once on first use and reused. Also the tiny helpers (meta
 * rows, read transactions) every kv file needs. Must never decide what a
 * command means: this file only talks to SQLite. */
#include "kv/kv_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const stmt_sql[KV_ST_COUNT] = {
    [KV_ST_BEGIN] = "BEGIN",
    [KV_ST_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [KV_ST_COMMIT] = "COMMIT",
    [KV_ST_ROLLBACK] = "ROLLBACK",
    [KV_ST_SAVEPOINT] = "SAVEPOINT kv_cmd",
    [KV_ST_RELEASE] = "RELEASE kv_cmd",
    [KV_ST_ROLLBACK_TO] = "ROLLBACK TO kv_cmd",
    [KV_ST_META_GET] = "SELECT value FROM kv_meta WHERE name = ?1",
    [KV_ST_META_SET] = "INSERT OR REPLACE INTO kv_meta(name, value) VALUES(?1, ?2)",
    [KV_ST_CUR_GET] = "SELECT key, create_rev, mod_rev, version, lease, value, 0, crc"
                      " FROM kv_cur WHERE key = ?1",
    [KV_ST_CUR_SCAN] = "SELECT key, create_rev, mod_rev, version, lease, value, 0, crc"
                       " FROM kv_cur WHERE key >= ?1 ORDER BY key",
    [KV_ST_CUR_PUT] = "INSERT OR REPLACE INTO kv_cur(key, create_rev, mod_rev, version,"
                      " lease, value, crc) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [KV_ST_CUR_DEL] = "DELETE FROM kv_cur WHERE key = ?1",
    [KV_ST_HIST_ADD] = "INSERT INTO kv_hist(rev, sub, key, tomb, create_rev, version,"
                       " lease, value, crc) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    /* Each key's latest record at or below ?2: SQLite takes the bare
     * columns from the row that holds max(rev). */
    [KV_ST_HIST_AT] = "SELECT key, create_rev, max(rev), version, lease, value, tomb, crc"
                      " FROM kv_hist WHERE key >= ?1 AND rev <= ?2 GROUP BY key ORDER BY key",
    [KV_ST_HIST_FROM] = "SELECT key, create_rev, rev, version, lease, value, tomb, crc"
                        " FROM kv_hist WHERE rev >= ?1 ORDER BY rev, sub",
    /* One key's changes from ?1: a seek on kv_hist_key (one record per key
     * and revision), so a quiet key's backlog does not read everyone's. */
    [KV_ST_HIST_KEY_FROM] = "SELECT key, create_rev, rev, version, lease, value, tomb, crc"
                            " FROM kv_hist WHERE key = ?2 AND rev >= ?1 ORDER BY rev",
    [KV_ST_HIST_PREV] = "SELECT key, create_rev, rev, version, lease, value, tomb, crc"
                        " FROM kv_hist WHERE key = ?1 AND rev < ?2 ORDER BY rev DESC LIMIT 1",
    /* Drop records below ?1 unless one is its key's latest record at or
     * below ?1 and not a tombstone: reads at ?1 keep working. */
    [KV_ST_COMPACT] = "DELETE FROM kv_hist WHERE rev < ?1 AND (tomb != 0 OR rev <"
                      " (SELECT max(h.rev) FROM kv_hist AS h WHERE h.key = kv_hist.key"
                      " AND h.rev <= ?1))",
    [KV_ST_MEMBER_PUT] = "INSERT OR REPLACE INTO kv_members(id, peer_url, learner)"
                         " VALUES(?1, ?2, ?3)",
    [KV_ST_MEMBER_DEL] = "DELETE FROM kv_members WHERE id = ?1",
    [KV_ST_MEMBER_PROMOTE] = "UPDATE kv_members SET learner = 0 WHERE id = ?1",
    [KV_ST_MEMBER_LIST] = "SELECT id, peer_url, learner FROM kv_members ORDER BY id",
    [KV_ST_REMOVED_PUT] = "INSERT OR IGNORE INTO kv_removed(id) VALUES (?1)",
    [KV_ST_REMOVED_LIST] = "SELECT id FROM kv_removed ORDER BY id",
    [KV_ST_LEASE_GET] = "SELECT ttl FROM kv_lease WHERE id = ?1",
    [KV_ST_LEASE_PUT] = "INSERT INTO kv_lease(id, ttl) VALUES(?1, ?2)",
    [KV_ST_LEASE_DEL] = "DELETE FROM kv_lease WHERE id = ?1",
    [KV_ST_LEASE_LIST] = "SELECT id, ttl FROM kv_lease ORDER BY id",
    /* kv-shaped rows (see kv_kv_from_row), through the kv_cur_lease index */
    [KV_ST_LEASE_KEYS] = "SELECT key, create_rev, mod_rev, version, lease, value, 0, crc"
                         " FROM kv_cur WHERE lease = ?1 AND lease != 0 ORDER BY key",
    [KV_ST_ALARM_PUT] = "INSERT OR IGNORE INTO kv_alarm(member, type) VALUES(?1, ?2)",
    [KV_ST_ALARM_DEL] = "DELETE FROM kv_alarm WHERE member = ?1 AND type = ?2",
    [KV_ST_ALARM_DEL_TYPE] = "DELETE FROM kv_alarm WHERE type = ?2 AND ?1 = 0",
    [KV_ST_ALARM_LIST] = "SELECT member, type FROM kv_alarm ORDER BY member, type",
    [KV_ST_EXECUTED_ADD] = "INSERT OR IGNORE INTO kv_executed(origin, seq) VALUES(?1, ?2)",
    /* the proposer's pairs older than its last KV_ONCE_WINDOW: a range of
     * the primary key, usually one row */
    [KV_ST_EXECUTED_TRIM] = "DELETE FROM kv_executed WHERE origin = ?1 AND seq < ?2",
};

void kv_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int kv_db_open(kv_db *d, const char *path, int flags, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    int rc = sqlite3_open_v2(path, &d->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        kv_errf(err, errlen, "%s: %s", path, d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
        kv_db_close(d);
        return -1;
    }
    sqlite3_busy_timeout(d->db, 5000);
    /* Databases also arrive from the network as snapshots: never let their
     * schema run code or corrupt the file through writable_schema. */
    sqlite3_db_config(d->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(d->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    return 0;
}

void kv_db_close(kv_db *d)
{
    for (int i = 0; i < KV_ST_COUNT; i++)
        sqlite3_finalize(d->st[i]);
    sqlite3_close(d->db);
    memset(d, 0, sizeof *d);
}

/* Returns the statement reset and unbound, ready for new bindings. */
sqlite3_stmt *kv_stmt(kv_db *d, enum kv_stmt_id id)
{
    sqlite3_stmt *st = d->st[id];
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
    }
    if (sqlite3_prepare_v3(d->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
        SQLITE_OK) {
        log_error("kv: prepare \"%s\": %s", stmt_sql[id], sqlite3_errmsg(d->db));
        return NULL;
    }
    d->st[id] = st;
    return st;
}

/* Steps a statement that returns no rows and resets it. */
int kv_step_done(kv_db *d, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        d->fail_code = rc;
        snprintf(d->msg, sizeof d->msg, "%s", sqlite3_errmsg(d->db));
        log_error("kv: \"%s\": %s", sqlite3_sql(st), d->msg);
        return -1;
    }
    return 0;
}

int kv_exec(kv_db *d, enum kv_stmt_id id)
{
    sqlite3_stmt *st = kv_stmt(d, id);
    return st ? kv_step_done(d, st) : -1;
}

/* A NULL pointer would bind SQL NULL; an empty key or value is a
 * zero-length BLOB. */
int kv_bind_bytes(sqlite3_stmt *st, int idx, const uint8_t *p, uint32_t n)
{
    return sqlite3_bind_blob64(st, idx, p ? (const void *)p : "", n, SQLITE_STATIC) == SQLITE_OK
               ? 0
               : -1;
}

/* One integer from an ad-hoc query (not worth a cached statement). A NULL
 * result gives 0. */
int kv_query_int(kv_db *d, const char *sql, int64_t *v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
    if (rc == 0)
        *v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

int kv_meta_get(kv_db *d, const char *name, int64_t *v)
{
    sqlite3_stmt *st = kv_stmt(d, KV_ST_META_GET);
    if (!st || sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK)
        return -1;
    int rc = -1;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
        *v = sqlite3_column_int64(st, 0);
        rc = 0;
    }
    sqlite3_reset(st);
    return rc;
}

int kv_meta_set(kv_db *d, const char *name, int64_t v)
{
    sqlite3_stmt *st = kv_stmt(d, KV_ST_META_SET);
    if (!st || sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, v) != SQLITE_OK)
        return -1;
    return kv_step_done(d, st);
}

/* A read transaction makes a range, its count and its header revision one
 * consistent view even while the writer commits. A pool connection keeps
 * it after the read (kv_pool.c drops it once the writer commits): beginning
 * and ending one, and reading the revisions, was half of a GET's SQLite
 * time. */
int kv_read_begin(kv_db *d)
{
    if (d->held)
        return 0;
    /* the generation before the view begins: the view holds at least it */
    if (d->reuse)
        d->held_gen = atomic_load(&d->owner->commit_gen);
    if (kv_exec(d, KV_ST_BEGIN) < 0)
        return -1;
    d->held = d->reuse;
    d->revs_cached = false;
    return 0;
}

void kv_read_end(kv_db *d)
{
    /* SQLite may have ended the transaction itself (it rolls back on
     * SQLITE_NOMEM): then there is nothing to end, and a kept view is gone */
    bool open = !sqlite3_get_autocommit(d->db);
    if (d->held && open)
        return;
    d->held = false;
    if (open && kv_exec(d, KV_ST_COMMIT) < 0)
        kv_exec(d, KV_ST_ROLLBACK);
}

int kv_load_revs(kv_db *d, int64_t *rev, int64_t *compact)
{
    if (d->held && d->revs_cached) {
        *rev = d->cached_rev;
        *compact = d->cached_compact;
        return 0;
    }
    if (kv_meta_get(d, "revision", rev) < 0 || kv_meta_get(d, "compact_revision", compact) < 0)
        return -1;
    d->cached_rev = *rev;
    d->cached_compact = *compact;
    d->revs_cached = d->held;
    return 0;
}
