/* storage_sql: the prepared-statement table, transactions and error text of
 * a storage handle.
 *
 * Must never leave a statement un-reset (a reset statement holds no read
 * lock) or a transaction open after a failure.
 */
#include "storage/storage_int.h"

#include "util/failpoint.h"

#include <errno.h>
#include <string.h>

#include <stdarg.h>
#include <stdio.h>

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
    [ST_SYNC_FULL] = "PRAGMA synchronous=FULL",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_META_GET] = "SELECT v FROM meta WHERE k = ?1",
    [ST_META_SET] = "INSERT OR REPLACE INTO meta(k, v) VALUES (?1, ?2)",
    [ST_ENT_INSERT] = "INSERT INTO entries(idx, term, type, data, crc) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_ENT_TRUNCATE] = "DELETE FROM entries WHERE idx >= ?1",
    [ST_ENT_COMPACT] = "DELETE FROM entries WHERE idx <= ?1",
    [ST_ENT_CLEAR] = "DELETE FROM entries",
    [ST_ENT_LAST] = "SELECT max(idx) FROM entries",
    [ST_ENT_AFTER] = "SELECT idx, term, type, data, crc FROM entries WHERE idx > ?1 ORDER BY idx",
};

const char *storage_strerror(int code)
{
    switch (code) {
    case STORAGE_OK: return "ok";
    case STORAGE_ERR_IO: return "io_error";
    case STORAGE_ERR_NOSPACE: return "no_space";
    case STORAGE_ERR_CORRUPT: return "corrupt";
    default: return "unknown";
    }
}

int storage_fail(storage *s, const char *fmt, ...)
{
    s->code = STORAGE_ERR_IO;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return -1;
}

int storage_sql_fail(storage *s, const char *what)
{
    const char *why = s->db ? sqlite3_errmsg(s->db) : "out of memory";
    int ec = s->db ? sqlite3_errcode(s->db) & 0xff : SQLITE_NOMEM;
    storage_fail(s, "%s: %s: %s", s->db_path, what, why);
    if (ec == SQLITE_FULL)
        s->code = STORAGE_ERR_NOSPACE;
    else if (ec == SQLITE_CORRUPT || ec == SQLITE_NOTADB)
        s->code = STORAGE_ERR_CORRUPT;
    return -1;
}

int storage_prepare_all(storage *s)
{
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &s->st[i], NULL) != SQLITE_OK)
            return storage_fail(s, "%s: not a raftkv database (%s)", s->db_path,
                                sqlite3_errmsg(s->db));
    }
    return 0;
}

void storage_finalize_all(storage *s)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(s->st[i]);
        s->st[i] = NULL;
    }
}

/* Runs a statement that returns no rows, then resets it and its bindings. */
int storage_exec(storage *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : storage_sql_fail(s, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

int storage_tx_begin(storage *s)
{
    return storage_exec(s, s->st[ST_BEGIN], "begin transaction");
}

/* A COMMIT that fails (I/O error, full disk) may leave the transaction
 * open; roll it back so the next call starts from the durable state. */
/* The failpoint stands for the commit's write or fsync failing. */
static int commit_failpoint(storage *s)
{
    int e = failpoint_hit("storage.commit");
    if (!e)
        return 0;
    storage_fail(s, "%s: commit: %s (failpoint)", s->db_path, strerror(e));
    if (e == ENOSPC)
        s->code = STORAGE_ERR_NOSPACE;
    return -1;
}

int storage_tx_commit(storage *s)
{
    if (commit_failpoint(s) == 0 && storage_exec(s, s->st[ST_COMMIT], "commit") == 0)
        return 0;
    storage_tx_rollback(s);
    return -1;
}

void storage_tx_rollback(storage *s)
{
    if (sqlite3_get_autocommit(s->db))
        return; /* sqlite already rolled back */
    char keep[sizeof s->err];
    snprintf(keep, sizeof keep, "%s", s->err); /* the first error is the useful one */
    if (storage_exec(s, s->st[ST_ROLLBACK], "rollback") < 0)
        log_error("%s", s->err);
    snprintf(s->err, sizeof s->err, "%s", keep);
}
