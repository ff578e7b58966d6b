/* storage_open: opening a data dir — creating it on first use, refusing a
 * damaged or foreign raft.db with a message naming the file and the problem,
 * and closing the handle.
 *
 * Must never overwrite or "repair" an existing raft.db: a node with a
 * damaged data dir must refuse to start, not serve wrong data.
 */
#include "storage/storage_int.h"
#include "util/failpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char schema_sql[] =
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
    "CREATE TABLE entries(idx INTEGER PRIMARY KEY, term INTEGER NOT NULL,"
    " type INTEGER NOT NULL, data BLOB, crc INTEGER NOT NULL);";

static int make_dir(storage *s, const char *path)
{
    struct stat st;
    if (mkdir(path, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return storage_fail(s, "%s: cannot create directory: %s", path, strerror(errno));
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return storage_fail(s, "%s: exists and is not a directory", path);
    return 0;
}

static char *join_path(const char *dir, const char *name)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p; /* p undefined on failure */
}

static int init_paths(storage *s, const char *dir)
{
    s->dir = xstrdup(dir);
    s->snap_dir = join_path(dir, "snap");
    s->db_path = join_path(dir, "raft.db");
    if (!s->dir || !s->snap_dir || !s->db_path)
        return storage_fail(s, "%s: out of memory", dir);
    if (make_dir(s, s->dir) < 0 || make_dir(s, s->snap_dir) < 0)
        return -1;
    return storage_fsync_dir(s, s->dir); /* makes snap/ itself durable */
}

/* SQLite's own locking lets two processes share raft.db; two Raft nodes
 * sharing one log would not be safe, so the second one is refused. */
static int lock_dir(storage *s)
{
    char *path = join_path(s->dir, "LOCK");
    if (!path)
        return storage_fail(s, "%s: out of memory", s->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int rc = 0;
    if (s->lock_fd < 0)
        rc = storage_fail(s, "%s: cannot open: %s", path, strerror(errno));
    else if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0)
        rc = storage_fail(s, "%s: data dir is in use by another process (%s)", s->dir,
                          strerror(errno));
    free(path);
    return rc;
}

/* Runs a one-off statement and returns its first column as text in out
 * (empty if no row). Used for the pragmas, whose answers must be checked. */
static int query_text(storage *s, const char *sql, const char *what, char *out,
                      size_t outlen)
{
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return storage_sql_fail(s, what);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
    int ret = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0 : storage_sql_fail(s, what);
    sqlite3_finalize(st);
    return ret;
}

/* The first read of the file: a non-SQLite file fails here, untouched. */
static int is_empty_db(storage *s, bool *fresh)
{
    char n[32];
    if (query_text(s, "SELECT count(*) FROM sqlite_master", "cannot read", n, sizeof n) < 0)
        return -1;
    *fresh = strcmp(n, "0") == 0;
    return 0;
}

static int check_integrity(storage *s)
{
    char res[256];
    if (query_text(s, "PRAGMA quick_check", "integrity check", res, sizeof res) < 0)
        return -1;
    if (strcmp(res, "ok") != 0)
        return storage_fail(s, "%s: integrity check failed: %s", s->db_path, res);
    return 0;
}

static int set_pragmas(storage *s)
{
    char mode[32], ignored[32];
    if (query_text(s, "PRAGMA journal_mode=WAL", "set WAL mode", mode, sizeof mode) < 0)
        return -1;
    if (strcmp(mode, "wal") != 0)
        return storage_fail(s, "%s: cannot switch to WAL mode (got %s)", s->db_path, mode);
    return query_text(s, "PRAGMA synchronous=FULL", "set synchronous=FULL", ignored,
                      sizeof ignored);
}

static int create_schema(storage *s)
{
    char *sql = NULL;
    if (asprintf(&sql, "BEGIN IMMEDIATE; %s INSERT INTO meta(k, v) VALUES('format_version', %d);"
                       " COMMIT;", schema_sql, STORAGE_FORMAT_VERSION) < 0)
        return storage_fail(s, "%s: out of memory", s->db_path);
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    free(sql);
    if (rc != SQLITE_OK) {
        storage_sql_fail(s, "create schema");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

static int check_version(storage *s)
{
    uint64_t v;
    bool found;
    if (storage_meta_get_u64(s, "format_version", &v, &found) < 0)
        return -1;
    if (!found)
        return storage_fail(s, "%s: no format version (not a raftkv database)", s->db_path);
    if (v == 1) /* a checksum made now would vouch for whatever the rows hold */
        return storage_fail(s, "%s: format version 1 predates entry checksums; move the data "
                            "dir away and add this member back to the cluster as a new one",
                            s->db_path);
    if (v != STORAGE_FORMAT_VERSION)
        return storage_fail(s, "%s: format version %llu unsupported (expected %d)",
                            s->db_path, (unsigned long long)v, STORAGE_FORMAT_VERSION);
    return 0;
}

static int open_db(storage *s)
{
    int rc = sqlite3_open_v2(s->db_path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK)
        return storage_fail(s, "%s: cannot open: %s", s->db_path, sqlite3_errstr(rc));
    /* Only this connection ever opens raft.db while the node runs (the
     * data dir's LOCK keeps other processes out): holding SQLite's locks
     * for good, set before the first read so the WAL index lives in this
     * process's heap, spares every transaction its lock and unlock calls
     * and the shared-memory file. */
    char mode[32];
    if (query_text(s, "PRAGMA locking_mode=EXCLUSIVE", "set exclusive locking", mode,
                   sizeof mode) < 0)
        return -1;
    int e = failpoint_hit("storage.lock"); /* stands for SQLite keeping another mode */
    if (e || strcmp(mode, "exclusive") != 0)
        return storage_fail(s, "%s: cannot hold exclusive locks (got %s)", s->db_path,
                            e ? strerror(e) : mode);
    bool fresh;
    if (is_empty_db(s, &fresh) < 0)
        return -1;
    if (fresh ? create_schema(s) < 0 : check_integrity(s) < 0)
        return -1;
    /* Identify the file before the pragmas: switching a foreign database
     * to WAL would already be a write to it. */
    if (storage_prepare_all(s) < 0 || check_version(s) < 0 || set_pragmas(s) < 0)
        return -1;
    return storage_read_snapshot(s, &s->snap);
}

int storage_open(const char *dir, storage **out, char *err, size_t errlen)
{
    *out = NULL;
    storage *s = calloc(1, sizeof *s);
    if (!s) {
        if (errlen)
            snprintf(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    s->lock_fd = -1;
    if (init_paths(s, dir) < 0 || lock_dir(s) < 0 || open_db(s) < 0) {
        if (errlen)
            snprintf(err, errlen, "%s", s->err);
        storage_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void storage_close(storage *s)
{
    if (!s)
        return;
    storage_finalize_all(s);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        log_error("storage: closing %s: %s", s->db_path, sqlite3_errmsg(s->db));
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s->dir);
    free(s->snap_dir);
    free(s->db_path);
    free(s);
}

const char *storage_errmsg(const storage *s) { return s ? s->err : "no storage handle"; }

int storage_get_identity(storage *s, uint64_t *node_id, uint64_t *cluster_id)
{
    bool has_node, has_cluster;
    if (storage_meta_get_u64(s, "node_id", node_id, &has_node) < 0 ||
        storage_meta_get_u64(s, "cluster_id", cluster_id, &has_cluster) < 0)
        return -1;
    return has_node && has_cluster ? 0 : 1;
}

int storage_set_identity(storage *s, uint64_t node_id, uint64_t cluster_id)
{
    if (storage_tx_begin(s) < 0)
        return -1;
    if (storage_meta_set_u64(s, "node_id", node_id) < 0 ||
        storage_meta_set_u64(s, "cluster_id", cluster_id) < 0) {
        storage_tx_rollback(s);
        return -1;
    }
    return storage_tx_commit(s);
}

/* A counter bumped (durably) at every start: proposal sequence numbers and
 * read contexts start from it, so they never repeat across restarts
 * whatever the wall clock does. */
int storage_next_incarnation(storage *s, uint64_t *out)
{
    uint64_t v = 0;
    bool found = false;
    if (storage_meta_get_u64(s, "incarnation", &v, &found) < 0 || storage_tx_begin(s) < 0)
        return -1;
    if (storage_meta_set_u64(s, "incarnation", v + 1) < 0) {
        storage_tx_rollback(s);
        return -1;
    }
    *out = v + 1;
    return storage_tx_commit(s);
}
