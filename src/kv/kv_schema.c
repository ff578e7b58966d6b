/* kv_schema: the kv.db schema, its creation, and the check that a database
 * file (our own at startup, or a snapshot from the network) is exactly a kv
 * database of a known format. Must never modify a database it is checking:
 * a refused file is left as it was.
 *
 * Layout: kv_cur is the current state (point read and prefix range are
 * seeks on its primary key); kv_hist is every change, keyed (rev, sub) so a
 * watch catching up from revision R is one seek, with an index (key, rev)
 * for reads at an old revision and one key's history; kv_cur.lease is indexed for leases;
 * kv_lease holds the granted leases (id, ttl seconds); kv_alarm the active
 * alarms (member, type). Every kv_cur and kv_hist row carries crc, the
 * CRC-32C of its key, value and metadata (kv_row.c).
 *
 * Format versions: 1 had no crc column and no kv_alarm. A format-1 kv.db
 * (or snapshot) is refused with a message saying so, not migrated: a
 * checksum computed over bytes already on disk would vouch for whatever
 * they hold. */
#include "kv/kv_internal.h"

#include <stdio.h>
#include <string.h>

/* The last N_LATER objects were added to format 2 after it shipped (auth,
 * exactly-once, idempotency keys).
 * A database without them is still format 2: kv_schema_upgrade creates
 * them, empty, at open and after a restore, and the check accepts their
 * absence. */
static const struct {
    const char *type, *name, *sql;
} schema[] = {
    {"table", "kv_meta",
     "CREATE TABLE kv_meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID"},
    {"table", "kv_cur",
     "CREATE TABLE kv_cur(key BLOB PRIMARY KEY, create_rev INTEGER NOT NULL,"
     " mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL,"
     " value BLOB NOT NULL, crc INTEGER NOT NULL) WITHOUT ROWID"},
    {"table", "kv_hist",
     "CREATE TABLE kv_hist(rev INTEGER NOT NULL, sub INTEGER NOT NULL, key BLOB NOT NULL,"
     " tomb INTEGER NOT NULL, create_rev INTEGER NOT NULL, version INTEGER NOT NULL,"
     " lease INTEGER NOT NULL, value BLOB NOT NULL, crc INTEGER NOT NULL,"
     " PRIMARY KEY(rev, sub)) WITHOUT ROWID"},
    {"index", "kv_hist_key", "CREATE UNIQUE INDEX kv_hist_key ON kv_hist(key, rev)"},
    {"index", "kv_cur_lease", "CREATE INDEX kv_cur_lease ON kv_cur(lease) WHERE lease != 0"},
    {"table", "kv_members",
     "CREATE TABLE kv_members(id INTEGER PRIMARY KEY, peer_url TEXT NOT NULL,"
     " learner INTEGER NOT NULL)"},
    {"table", "kv_removed", "CREATE TABLE kv_removed(id INTEGER PRIMARY KEY)"},
    {"table", "kv_lease", "CREATE TABLE kv_lease(id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL)"},
    {"table", "kv_alarm",
     "CREATE TABLE kv_alarm(member INTEGER NOT NULL, type INTEGER NOT NULL,"
     " PRIMARY KEY(member, type)) WITHOUT ROWID"},
    /* auth (kv_auth.c): users with their password hash and generation,
     * roles, which user holds which role, and each role's key permissions
     * ([key, end); end '' = the key alone); the token signing secret. */
    {"table", "auth_user",
     "CREATE TABLE auth_user(name TEXT PRIMARY KEY, hash TEXT NOT NULL, gen INTEGER NOT NULL)"
     " WITHOUT ROWID"},
    {"table", "auth_role", "CREATE TABLE auth_role(name TEXT PRIMARY KEY) WITHOUT ROWID"},
    {"table", "auth_grant",
     "CREATE TABLE auth_grant(user TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY(user, role))"
     " WITHOUT ROWID"},
    {"table", "auth_perm",
     "CREATE TABLE auth_perm(role TEXT NOT NULL, key BLOB NOT NULL, end BLOB NOT NULL,"
     " perm INTEGER NOT NULL, PRIMARY KEY(role, key, end)) WITHOUT ROWID"},
    {"table", "auth_secret", "CREATE TABLE auth_secret(id INTEGER PRIMARY KEY, secret BLOB NOT NULL)"},
    /* exactly-once (kv_once.c): the proposals applied lately, by proposer
     * and sequence number */
    {"table", "kv_executed",
     "CREATE TABLE kv_executed(origin INTEGER NOT NULL, seq INTEGER NOT NULL,"
     " PRIMARY KEY(origin, seq)) WITHOUT ROWID"},
    /* Idempotency-Key (kv_idem.c): key, the request's fingerprint, the
     * proposer's time, the result kept */
    {"table", "kv_idem",
     "CREATE TABLE kv_idem(key TEXT PRIMARY KEY, fp INTEGER NOT NULL, ts INTEGER NOT NULL,"
     " result BLOB NOT NULL) WITHOUT ROWID"},
    {"index", "kv_idem_ts", "CREATE INDEX kv_idem_ts ON kv_idem(ts)"},
};
#define N_SCHEMA (sizeof schema / sizeof schema[0])
#define N_LATER 8
#define LATER(i) ((size_t)(i) >= N_SCHEMA - N_LATER)

/* Revisions far below INT64_MAX so that +1 can never overflow. */
#define KV_REV_SANE_MAX ((int64_t)1 << 62)

static int exec_sql(kv_db *d, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(d->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("kv: %s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int kv_schema_create(kv_db *d)
{
    /* before any table: free pages can then be given back in small steps
     * (kv_defrag) instead of by a VACUUM that holds the writer */
    if (exec_sql(d, "PRAGMA auto_vacuum = INCREMENTAL") < 0 || exec_sql(d, "BEGIN IMMEDIATE") < 0)
        return -1;
    for (size_t i = 0; i < N_SCHEMA; i++)
        if (exec_sql(d, schema[i].sql) < 0)
            goto fail;
    char meta[200];
    snprintf(meta, sizeof meta,
             "INSERT INTO kv_meta(name, value) VALUES('format', %d),"
             " ('revision', 1), ('compact_revision', 0),"
             " ('applied_index', 0), ('applied_term', 0)",
             KV_FORMAT_VERSION);
    if (exec_sql(d, meta) < 0 || exec_sql(d, "COMMIT") < 0)
        goto fail;
    return 0;
fail:
    exec_sql(d, "ROLLBACK");
    return -1;
}

/* Creates the later objects a verified database lacks (none: no write). */
int kv_schema_upgrade(kv_db *d)
{
    for (size_t i = 0; i < N_SCHEMA; i++) {
        if (!LATER(i))
            continue;
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(d->db, "SELECT count(*) FROM sqlite_master WHERE name = ?1", -1,
                               &st, NULL) != SQLITE_OK)
            return -1;
        sqlite3_bind_text(st, 1, schema[i].name, -1, SQLITE_STATIC);
        int have = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
        sqlite3_finalize(st);
        if (have < 0 || (have == 0 && exec_sql(d, schema[i].sql) < 0))
            return -1;
    }
    return 0;
}

static int check_integrity(kv_db *d, bool full, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    const char *sql = full ? "PRAGMA integrity_check" : "PRAGMA quick_check";
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) {
        kv_errf(err, errlen, "not a usable kv database: %s", sqlite3_errmsg(d->db));
        return -1;
    }
    int rc = sqlite3_step(st);
    const char *txt = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    int ok = txt && strcmp(txt, "ok") == 0 && sqlite3_step(st) == SQLITE_DONE;
    if (!ok)
        kv_errf(err, errlen, "kv database is damaged: %s",
                txt ? txt : sqlite3_errmsg(d->db));
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

static int schema_index(const char *type, const char *name, const char *sql)
{
    for (size_t i = 0; i < N_SCHEMA; i++)
        if (strcmp(schema[i].name, name) == 0)
            return strcmp(schema[i].type, type) == 0 && strcmp(schema[i].sql, sql) == 0
                       ? (int)i
                       : -1;
    return -1;
}

/* Every object must be one of ours with exactly our definition: a foreign
 * table, trigger or view in a snapshot is refused, not ignored. */
static int check_objects(kv_db *d, size_t *n_found, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "SELECT type, name, sql FROM sqlite_master", -1, &st, NULL) !=
        SQLITE_OK) {
        kv_errf(err, errlen, "not a usable kv database: %s", sqlite3_errmsg(d->db));
        return -1;
    }
    bool seen[N_SCHEMA] = {false};
    size_t rows = 0;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *sql = (const char *)sqlite3_column_text(st, 2);
        int i = schema_index(type ? type : "", name ? name : "", sql ? sql : "");
        if (i < 0 || seen[i]) {
            kv_errf(err, errlen, "not a kv database: unexpected schema object %s",
                    name ? name : "?");
            rc = -1;
        } else {
            seen[i] = true;
            rows += !LATER(i);
        }
    }
    sqlite3_finalize(st);
    *n_found = rows;
    return rc;
}

/* Before the objects are compared: a database of another format fails
 * that comparison, and "format 1 is not supported" says more than
 * "unexpected schema object". No kv_meta (an empty or foreign file): 0,
 * the object check decides. */
static int check_format_first(kv_db *d, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "SELECT value FROM kv_meta WHERE name = 'format'", -1, &st,
                           NULL) != SQLITE_OK)
        return 0;
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        int64_t format = sqlite3_column_int64(st, 0);
        if (format != KV_FORMAT_VERSION) {
            kv_errf(err, errlen,
                    "kv database format %lld is not supported (expected %d%s)",
                    (long long)format, KV_FORMAT_VERSION,
                    format == 1 ? ": format 1 has no value checksums and is not migrated;"
                                  " move kv.db away and let the node catch up from a peer's"
                                  " snapshot"
                                : "");
            rc = -1;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Alarm rows are only ever (member != 0, known type): a snapshot holding
 * anything else is not one we wrote. */
static int check_alarms(kv_db *d, char *err, size_t errlen)
{
    int64_t bad = 0;
    if (kv_query_int(d, "SELECT count(*) FROM kv_alarm WHERE member = 0 OR type NOT IN (1, 2)",
                     &bad) < 0 ||
        bad != 0) {
        kv_errf(err, errlen, "kv database is damaged: %lld invalid alarm rows", (long long)bad);
        return -1;
    }
    return 0;
}

static int check_meta(kv_db *d, char *err, size_t errlen)
{
    int64_t format, rev, compact, idx, term, max_hist;
    if (kv_meta_get(d, "format", &format) < 0) {
        kv_errf(err, errlen, "not a kv database: no format version");
        return -1;
    }
    if (format != KV_FORMAT_VERSION) {
        kv_errf(err, errlen, "kv database format %lld is not supported (expected %d)",
                (long long)format, KV_FORMAT_VERSION);
        return -1;
    }
    if (kv_load_revs(d, &rev, &compact) < 0 || kv_meta_get(d, "applied_index", &idx) < 0 ||
        kv_meta_get(d, "applied_term", &term) < 0 ||
        kv_query_int(d, "SELECT max(rev) FROM kv_hist", &max_hist) < 0) {
        kv_errf(err, errlen, "kv database is damaged: missing metadata");
        return -1;
    }
    if (rev < 1 || rev > KV_REV_SANE_MAX || compact < 0 || compact > rev || max_hist > rev) {
        kv_errf(err, errlen, "kv database is damaged: revision %lld, compact %lld, history %lld",
                (long long)rev, (long long)compact, (long long)max_hist);
        return -1;
    }
    return check_alarms(d, err, errlen);
}

int kv_schema_verify(kv_db *d, bool full, char *err, size_t errlen)
{
    size_t found;
    if (check_integrity(d, full, err, errlen) < 0 || check_format_first(d, err, errlen) < 0 ||
        check_objects(d, &found, err, errlen) < 0)
        return -1;
    if (found == 0)
        return 1;
    size_t required = N_SCHEMA - N_LATER;
    if (found != required) {
        kv_errf(err, errlen, "not a kv database: %zu of %zu schema objects", found, required);
        return -1;
    }
    return check_meta(d, err, errlen);
}
