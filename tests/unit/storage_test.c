/* storage_test: the durable Raft state — append/load round trips, suffix
 * overwrite, crashes (close without cleanup, SIGKILL mid-appends),
 * snapshots (save + compaction, install, verify, orphan cleanup) and the
 * refusal of damaged or foreign data dirs; and raft.db opened, loaded and
 * appended to with each of SQLite's allocations failed in turn
 * (sqlite_oom.c, armed only by those two tests).
 *
 * Must never leave files behind: every case works in a fresh mkdtemp dir
 * that it removes.
 */
#include "storage/storage.h"
#include "../test.h"
#include "sqlite_oom.h"
#include "util/util.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

static char root[256];
static char data_dir[300];

/* A fresh root, and a data dir inside it that does not exist yet (so
 * storage_open's directory creation is exercised every time). */
static const char *fresh_dir(void)
{
    snprintf(root, sizeof root, "/tmp/storage_test.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        exit(2);
    }
    snprintf(data_dir, sizeof data_dir, "%s/data", root);
    return data_dir;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void remove_root(void) { nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static storage *open_ok(const char *dir)
{
    storage *s = NULL;
    char err[512] = "";
    int rc = storage_open(dir, &s, err, sizeof err);
    CHECK_MSG(rc == 0 && s, "open %s: %s", dir, err);
    return s;
}

/* Opens expecting refusal; returns the message in err. */
static int open_refused(const char *dir, char *err, size_t errlen)
{
    storage *s = NULL;
    err[0] = '\0';
    int rc = storage_open(dir, &s, err, errlen);
    if (rc == 0)
        storage_close(s);
    return rc != 0 && s == NULL && err[0] != '\0';
}

/* What storage_load gave back, kept together so a case reads one thing. */
typedef struct {
    raft_hard_state hs;
    storage_snapshot snap;
    raft_entry *le;
    size_t n;
} loaded;

/* storage_load into a zeroed *l; returns its result. Free with unload. */
static int load(storage *s, loaded *l)
{
    memset(l, 0, sizeof *l);
    return storage_load(s, &l->hs, &l->snap, &l->le, &l->n);
}

static void unload(loaded *l) { storage_free_entries(l->le, l->n); }

static void fill_pattern(uint64_t seed, uint8_t *p, size_t n)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static raft_term term_for(raft_index i) { return 1 + i / 7; }

/* Appends [first, last] with term_for(i) and pattern data of i % 40 bytes. */
/* Each entry's checksum, as the core makes it when an entry is proposed. */
static void seal(raft_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        e[i].crc = crc32c(0, e[i].data, e[i].len);
}

static int append_range(storage *s, raft_index first, raft_index last,
                        const raft_hard_state *hs)
{
    size_t n = (size_t)(last - first + 1);
    raft_entry *e = calloc(n, sizeof *e);
    uint8_t(*data)[40] = calloc(n, sizeof *data);
    int rc = -1;
    if (e && data) {
        for (size_t k = 0; k < n; k++) {
            raft_index i = first + k;
            fill_pattern(i, data[k], sizeof data[k]);
            e[k] = (raft_entry){.term = term_for(i), .index = i, .type = (uint8_t)(i % 2),
                                .len = (uint32_t)(i % 40), .data = i % 40 ? data[k] : NULL};
            e[k].crc = crc32c(0, e[k].data, e[k].len);
        }
        rc = storage_append(s, hs, e, n);
    }
    free(e);
    free(data);
    return rc;
}

/* Checks ents are [first, first+n) as written by append_range. */
static int entries_match(const raft_entry *ents, size_t n, raft_index first)
{
    for (size_t k = 0; k < n; k++) {
        raft_index i = first + k;
        uint8_t want[40];
        fill_pattern(i, want, sizeof want);
        const raft_entry *e = &ents[k];
        if (e->index != i || e->term != term_for(i) || e->type != i % 2 || e->len != i % 40 ||
            (e->len == 0 && e->data != NULL) ||
            (e->len > 0 && memcmp(e->data, want, e->len) != 0))
            return 0;
    }
    return 1;
}

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int rc = fwrite(p, 1, n, f) == n ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Runs SQL on <dir>/raft.db behind storage's back (to damage it, or to
 * look at what it stored); returns the first column of the first row. */
static long long raw_sql(const char *dir, const char *sql)
{
    char path[512];
    snprintf(path, sizeof path, "%s/raft.db", dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        else if (rc == SQLITE_DONE)
            v = 0;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static storage_snapshot save_snapshot(storage *s, raft_index index, raft_term term,
                                      raft_index compact_to, const uint8_t *body, size_t n)
{
    storage_snapshot out = {0};
    uint64_t size = 0;
    uint32_t crc = 0;
    /* as the node does: kv's job writes, fsyncs and sums a staged file,
     * then storage adopts it under its final name */
    char *staged = storage_staging_path(s);
    CHECK(staged && write_file(staged, body, n) == 0);
    CHECK(staged && file_sum(staged, true, &size, &crc) == 0);
    raft_snapshot_meta meta = {.index = index, .term = term};
    meta.conf.n_voters = 3;
    meta.conf.voters[0] = 1, meta.conf.voters[1] = 2, meta.conf.voters[2] = 3;
    meta.conf.n_learners = 1;
    meta.conf.learners[0] = 4;
    CHECK_MSG(staged && storage_snapshot_adopt(s, &meta, staged, size, crc, compact_to, &out) == 0,
              "%s", storage_errmsg(s));
    free(staged);
    return out;
}

/* ---- cases ---- */

static void test_fresh_dir_and_identity(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    uint64_t node = 9, cluster = 9;
    CHECK(storage_get_identity(s, &node, &cluster) == 1);

    raft_hard_state hs = {1, 1, 1};
    storage_snapshot snap = {.size = 1};
    raft_entry *ents = (raft_entry *)&hs;
    size_t n = 1;
    CHECK(storage_load(s, &hs, &snap, &ents, &n) == 0);
    CHECK(hs.term == 0 && hs.vote == 0 && hs.commit == 0);
    CHECK(snap.meta.index == 0 && ents == NULL && n == 0);

    uint64_t big = 0xF00DFACECAFEBEEFull; /* above 2^63: must survive int64 storage */
    CHECK(storage_set_identity(s, 3, big) == 0);
    storage_close(s);

    s = open_ok(dir);
    CHECK(storage_get_identity(s, &node, &cluster) == 0);
    CHECK(node == 3 && cluster == big);
    char err[512];
    CHECK(open_refused(dir, err, sizeof err)); /* one process per data dir */
    CHECK_MSG(strstr(err, "in use") != NULL, "message: %s", err);
    char snapdir[512];
    snprintf(snapdir, sizeof snapdir, "%s/snap", dir);
    CHECK(exists(snapdir));
    /* raft.db's locks are held for as long as it is open (locking_mode
     * EXCLUSIVE): another connection cannot even read it meanwhile */
    CHECK(raw_sql(dir, "SELECT count(*) FROM meta") == -1);
    storage_close(s);
    CHECK(raw_sql(dir, "SELECT count(*) FROM meta") > 0);
    /* WAL is a property of the file: a fresh raft.db must have it. */
    CHECK(raw_sql(dir, "SELECT journal_mode = 'wal' FROM pragma_journal_mode") == 1);
    remove_root();
}

static void test_append_load_roundtrip(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    uint8_t zeros[5] = {0, 0, 'x', 0, 0};
    uint8_t conf[3] = {1, 2, 3};
    raft_entry ents[] = {
        {.term = 1, .index = 1, .type = RAFT_ENTRY_CONF, .len = 3, .data = conf},
        {.term = 2, .index = 2, .type = RAFT_ENTRY_NORMAL, .len = 0, .data = NULL},
        {.term = 2, .index = 3, .type = RAFT_ENTRY_NORMAL, .len = 5, .data = zeros},
    };
    raft_hard_state hs = {.term = 2, .vote = 7, .commit = 2};
    seal(ents, 3);
    CHECK(storage_append(s, &hs, ents, 3) == 0);
    storage_close(s);

    s = open_ok(dir);
    loaded l;
    CHECK(load(s, &l) == 0);
    CHECK(l.hs.term == 2 && l.hs.vote == 7 && l.hs.commit == 2);
    CHECK(l.n == 3);
    for (size_t i = 0; l.le && i < l.n && i < 3; i++) {
        const raft_entry *e = &l.le[i];
        CHECK(e->index == ents[i].index && e->term == ents[i].term);
        CHECK(e->type == ents[i].type && e->len == ents[i].len);
        CHECK(ents[i].len == 0 ? e->data == NULL
                               : memcmp(e->data, ents[i].data, ents[i].len) == 0);
    }
    unload(&l);

    /* Hard state alone, no entries: the log is untouched. */
    hs.commit = 3;
    CHECK(storage_append(s, &hs, NULL, 0) == 0);
    CHECK(load(s, &l) == 0);
    CHECK(l.hs.commit == 3 && l.n == 3);
    unload(&l);
    storage_close(s);
    remove_root();
}

static void test_overwrite_conflicting_suffix(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    CHECK(append_range(s, 1, 10, NULL) == 0);

    uint8_t d[2] = {0xAB, 0xCD};
    raft_entry repl[] = {
        {.term = 9, .index = 6, .type = 0, .len = 2, .data = d},
        {.term = 9, .index = 7, .type = 0, .len = 0, .data = NULL},
    };
    seal(repl, 2);
    CHECK(storage_append(s, NULL, repl, 2) == 0);
    storage_close(s);

    s = open_ok(dir);
    loaded l;
    CHECK(load(s, &l) == 0);
    CHECK(l.n == 7);
    CHECK(l.n == 7 && entries_match(l.le, 5, 1));
    CHECK(l.n == 7 && l.le[5].term == 9 && l.le[5].len == 2 && memcmp(l.le[5].data, d, 2) == 0);
    CHECK(l.n == 7 && l.le[6].term == 9 && l.le[6].len == 0 && l.le[6].data == NULL);
    unload(&l);
    storage_close(s);
    remove_root();
}

static void test_rejects_bad_batches(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    CHECK(append_range(s, 1, 5, NULL) == 0);

    raft_hard_state hs = {.term = 5, .vote = 1, .commit = 5};
    CHECK(append_range(s, 8, 9, &hs) == -1); /* gap after 5 */
    CHECK(strstr(storage_errmsg(s), "gap") != NULL);
    raft_entry holey[] = {{.term = 3, .index = 6}, {.term = 3, .index = 8}};
    CHECK(storage_append(s, &hs, holey, 2) == -1);
    raft_entry backwards[] = {{.term = 3, .index = 6}, {.term = 2, .index = 7}};
    CHECK(storage_append(s, &hs, backwards, 2) == -1);
    raft_entry no_data[] = {{.term = 3, .index = 6, .len = 4, .data = NULL}};
    CHECK(storage_append(s, &hs, no_data, 1) == -1);

    /* A refused batch writes nothing, not even the hard state. */
    loaded l;
    CHECK(load(s, &l) == 0);
    CHECK(l.n == 5 && entries_match(l.le, l.n, 1) && l.hs.commit == 0);
    unload(&l);
    storage_close(s);
    remove_root();
}

/* "Crash" after an append: the handle is closed with nothing else done;
 * a new process (a new open) must find it all, and carry on from there. */
static void test_reopen_after_append(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    raft_hard_state hs = {.term = 3, .vote = 2, .commit = 4};
    CHECK(append_range(s, 1, 30, &hs) == 0);
    storage_close(s);

    s = open_ok(dir);
    CHECK(append_range(s, 31, 40, NULL) == 0);
    storage_close(s);

    s = open_ok(dir);
    loaded l;
    CHECK(load(s, &l) == 0);
    CHECK(l.n == 40 && entries_match(l.le, l.n, 1));
    CHECK(l.hs.term == 3 && l.hs.vote == 2 && l.hs.commit == 4);
    unload(&l);
    storage_close(s);
    remove_root();
}

static void load_hard_state(const char *dir, raft_hard_state *got)
{
    storage *s = open_ok(dir);
    loaded l;
    CHECK(load(s, &l) == 0);
    *got = l.hs;
    unload(&l);
    storage_close(s);
}

/* A write that moves only the commit index skips the fsync but is still a
 * normal committed transaction; a later term or vote change is synced
 * again. Both must read back after a clean reopen, in both orders. */
static void test_commit_only_writes(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    raft_hard_state hs = {.term = 3, .vote = 2, .commit = 4};
    CHECK(append_range(s, 1, 20, &hs) == 0);
    hs.commit = 15; /* commit only */
    CHECK(storage_append(s, &hs, NULL, 0) == 0);
    storage_close(s);
    raft_hard_state got;
    load_hard_state(dir, &got);
    CHECK(got.term == 3 && got.vote == 2 && got.commit == 15);

    s = open_ok(dir);
    loaded l;
    CHECK(load(s, &l) == 0); /* learns the durable term */
    unload(&l);
    hs = (raft_hard_state){.term = 3, .vote = 2, .commit = 18};
    CHECK(storage_append(s, &hs, NULL, 0) == 0);
    hs = (raft_hard_state){.term = 4, .vote = 0, .commit = 18}; /* synced */
    CHECK(storage_append(s, &hs, NULL, 0) == 0);
    CHECK(append_range(s, 21, 25, NULL) == 0); /* entries after a commit-only write */
    storage_close(s);
    load_hard_state(dir, &got);
    CHECK(got.term == 4 && got.vote == 0 && got.commit == 18);
    remove_root();
}

/* The child appends batches of 1..3 entries forever, reporting each
 * acknowledged last index through the pipe, until it is killed. */
static void appender_child(const char *dir, int wfd)
{
    storage *s = NULL;
    char err[512];
    if (storage_open(dir, &s, err, sizeof err) < 0)
        _exit(2);
    raft_index next = 1;
    for (;;) {
        raft_index last = next + next % 3;
        raft_hard_state hs = {.term = term_for(last), .vote = 1, .commit = last};
        if (append_range(s, next, last, &hs) < 0)
            _exit(3);
        if (write(wfd, &last, sizeof last) != (ssize_t)sizeof last)
            _exit(4);
        next = last + 1;
    }
}

static void test_kill_during_appends(void)
{
    const char *dir = fresh_dir();
    int p[2] = {-1, -1};
    pid_t pid = -1;
    CHECK(pipe(p) == 0 && (pid = fork()) >= 0);
    if (pid < 0) { /* kill(-1, SIGKILL) below would hit every process we may signal */
        close(p[0]);
        close(p[1]);
        remove_root();
        return;
    }
    if (pid == 0) {
        close(p[0]);
        appender_child(dir, p[1]);
    }
    close(p[1]);
    raft_index acked = 0, v;
    while (acked < 200 && read(p[0], &v, sizeof v) == (ssize_t)sizeof v)
        acked = v;
    CHECK(kill(pid, SIGKILL) == 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    while (read(p[0], &v, sizeof v) == (ssize_t)sizeof v) /* acks sent before the kill */
        acked = v;
    close(p[0]);
    CHECK(acked >= 200);

    storage *s = open_ok(dir);
    loaded l = {0};
    CHECK(s && load(s, &l) == 0);
    CHECK_MSG(l.n >= acked, "loaded %zu entries, %llu were acknowledged", l.n,
              (unsigned long long)acked);
    CHECK(entries_match(l.le, l.n, 1));
    CHECK(l.hs.commit == l.n); /* hard state went in the same transaction as its batch */
    unload(&l);
    storage_close(s);
    remove_root();
}

static void test_snapshot_saved_compacts(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    CHECK(append_range(s, 1, 20, NULL) == 0);
    uint8_t body[3000];
    fill_pattern(15, body, sizeof body);
    body[10] = 0;
    storage_snapshot out = save_snapshot(s, 15, term_for(15), 12, body, sizeof body);
    CHECK(out.meta.index == 15 && out.meta.term == term_for(15));
    CHECK(out.size == sizeof body && out.crc == crc32c(0, body, sizeof body));
    storage_close(s); /* it holds raft.db's locks while open */
    /* Entries 13..20 stay on disk (kept for slow followers), 1..12 are gone. */
    CHECK(raw_sql(dir, "SELECT count(*) FROM entries WHERE idx <= 12") == 0);
    CHECK(raw_sql(dir, "SELECT count(*) FROM entries") == 8);

    s = open_ok(dir);
    loaded l;
    CHECK(load(s, &l) == 0);
    const raft_snapshot_meta *m = &l.snap.meta;
    CHECK(m->index == 15 && m->term == term_for(15));
    CHECK(l.snap.size == out.size && l.snap.crc == out.crc);
    CHECK(m->conf.n_voters == 3 && m->conf.voters[2] == 3);
    CHECK(m->conf.n_learners == 1 && m->conf.learners[0] == 4);
    CHECK(l.n == 5 && entries_match(l.le, l.n, 16)); /* the log after the snapshot */
    unload(&l);
    CHECK(storage_verify_snapshot(s, &l.snap) == 0);

    /* A newer snapshot replaces the old file. */
    char *old = storage_snapshot_path(s, 15);
    save_snapshot(s, 18, term_for(18), 18, body, 100);
    CHECK(old && !exists(old));
    free(old);
    CHECK(append_range(s, 10, 12, NULL) == -1); /* below the snapshot */
    CHECK(append_range(s, 21, 22, NULL) == 0);
    CHECK(load(s, &l) == 0);
    CHECK(l.snap.meta.index == 18 && l.n == 4 && entries_match(l.le, l.n, 19));
    unload(&l);
    storage_close(s);
    remove_root();
}

/* A background snapshot is written before its index is known, then
 * adopted: moved into place, recorded, the log compacted. */
static void test_snapshot_adopt_from_staging(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    CHECK(append_range(s, 1, 20, NULL) == 0);
    uint8_t body[500];
    fill_pattern(7, body, sizeof body);
    char *staged = storage_staging_path(s);
    char *final = storage_snapshot_path(s, 15);
    CHECK(staged && final && write_file(staged, body, sizeof body) == 0);
    raft_snapshot_meta meta = {.index = 15, .term = term_for(15)};
    meta.conf.n_voters = 1;
    meta.conf.voters[0] = 1;
    storage_snapshot out = {0};
    /* the writer's sum, as kv's background job hands it over */
    uint64_t size = 0;
    uint32_t crc = 0;
    CHECK(file_sum(staged, true, &size, &crc) == 0);
    CHECK(storage_snapshot_adopt(s, &meta, staged, size, crc, 16, &out) == -1); /* compact beyond */
    CHECK(exists(staged) && !exists(final));
    CHECK_MSG(storage_snapshot_adopt(s, &meta, staged, size, crc, 12, &out) == 0, "%s",
              storage_errmsg(s));
    CHECK(!exists(staged) && exists(final));
    CHECK(out.meta.index == 15 && out.size == sizeof body && out.crc == crc32c(0, body, sizeof body));
    storage_close(s);
    CHECK(raw_sql(dir, "SELECT count(*) FROM entries") == 8);
    s = open_ok(dir);
    loaded l;
    CHECK(load(s, &l) == 0 && l.snap.meta.index == 15 && l.snap.crc == out.crc);
    unload(&l);
    free(staged);
    free(final);
    storage_close(s);
    remove_root();
}

static void test_install_snapshot(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    raft_hard_state hs = {.term = 3, .vote = 2, .commit = 3};
    CHECK(append_range(s, 1, 5, &hs) == 0);

    char *staged = storage_recv_path(s, 100, 7);
    CHECK(staged && strstr(staged, "/snap/recv-100-7.db") != NULL);
    uint8_t body[777];
    fill_pattern(100, body, sizeof body);
    CHECK(write_file(staged, body, sizeof body) == 0);
    raft_snapshot_meta meta = {.index = 100, .term = 7};
    meta.conf.n_voters = 1;
    meta.conf.voters[0] = 5;
    storage_snapshot out;
    CHECK_MSG(storage_install_snapshot(s, &meta, staged, &out) == 0, "%s", storage_errmsg(s));
    CHECK(out.size == sizeof body && out.crc == crc32c(0, body, sizeof body));
    CHECK(!exists(staged));
    char *final = storage_snapshot_path(s, 100);
    CHECK(final && strstr(final, "/snap/snap-00000000000000000100.db") != NULL);
    CHECK(final && exists(final));
    free(final);

    /* An older snapshot can no longer be installed. */
    CHECK(write_file(staged, body, 10) == 0);
    meta.index = 90;
    CHECK(storage_install_snapshot(s, &meta, staged, &out) == -1);
    CHECK(exists(staged));
    free(staged);
    storage_close(s);

    s = open_ok(dir);
    loaded l;
    CHECK(load(s, &l) == 0);
    CHECK(l.n == 0 && l.le == NULL);
    CHECK(l.hs.commit == 100 && l.hs.term == 7 && l.hs.vote == 2);
    const raft_snapshot_meta *m = &l.snap.meta;
    CHECK(m->index == 100 && m->term == 7 && m->conf.n_voters == 1 && m->conf.voters[0] == 5);
    CHECK(storage_verify_snapshot(s, &l.snap) == 0);
    CHECK(append_range(s, 101, 103, NULL) == 0);
    CHECK(append_range(s, 50, 51, NULL) == -1);
    storage_close(s);
    remove_root();
}

static void test_verify_detects_damage(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    CHECK(append_range(s, 1, 10, NULL) == 0);
    uint8_t body[4096];
    fill_pattern(8, body, sizeof body);
    storage_snapshot snap = save_snapshot(s, 8, term_for(8), 8, body, sizeof body);
    CHECK(storage_verify_snapshot(s, &snap) == 0);
    char *path = storage_snapshot_path(s, 8);

    body[2000] ^= 0x01; /* one flipped bit */
    CHECK(write_file(path, body, sizeof body) == 0);
    CHECK(storage_verify_snapshot(s, &snap) == -1);
    CHECK(strstr(storage_errmsg(s), "CRC") && strstr(storage_errmsg(s), "snap-"));

    CHECK(write_file(path, body, 100) == 0); /* truncated */
    CHECK(storage_verify_snapshot(s, &snap) == -1);
    CHECK(strstr(storage_errmsg(s), "size") != NULL);

    CHECK(unlink(path) == 0);
    CHECK(storage_verify_snapshot(s, &snap) == -1);
    free(path);
    storage_close(s);
    remove_root();
}

/* A crash between writing/renaming a snapshot file and recording it in
 * raft.db leaves an orphan; raft.db still names the old one. */
static void test_cleanup_removes_orphans(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    CHECK(append_range(s, 1, 12, NULL) == 0);
    uint8_t body[64] = {1, 2, 3};
    save_snapshot(s, 10, term_for(10), 10, body, sizeof body);
    storage_close(s);

    s = open_ok(dir);
    char *older = storage_snapshot_path(s, 5);
    char *orphan = storage_snapshot_path(s, 20); /* renamed, never recorded */
    char *staged = storage_recv_path(s, 30, 2);
    char *unfinished = storage_staging_path(s); /* a background copy cut short */
    char *kept = storage_snapshot_path(s, 10);
    char other[512];
    snprintf(other, sizeof other, "%s/snap/notes.txt", dir);
    CHECK(older && orphan && staged && kept && unfinished);
    CHECK(write_file(older, "o", 1) == 0 && write_file(orphan, "n", 1) == 0);
    CHECK(write_file(unfinished, "u", 1) == 0);
    CHECK(write_file(staged, "r", 1) == 0 && write_file(other, "x", 1) == 0);

    loaded l;
    CHECK(load(s, &l) == 0 && l.snap.meta.index == 10);
    unload(&l);
    CHECK(storage_verify_snapshot(s, &l.snap) == 0);
    storage_cleanup_snapshots(s);
    CHECK(!exists(older) && !exists(orphan) && !exists(staged) && !exists(unfinished));
    CHECK(exists(kept) && exists(other));
    free(unfinished);
    free(older);
    free(orphan);
    free(staged);
    free(kept);
    storage_close(s);
    remove_root();
}

static void test_refuses_garbage_db(void)
{
    const char *dir = fresh_dir();
    CHECK(mkdir(dir, 0700) == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/raft.db", dir);
    uint8_t junk[8192], back[8192];
    fill_pattern(42, junk, sizeof junk);
    CHECK(write_file(path, junk, sizeof junk) == 0);

    char err[512];
    CHECK(open_refused(dir, err, sizeof err));
    CHECK_MSG(strstr(err, "raft.db") && strstr(err, "not a database"), "message: %s", err);

    FILE *f = fopen(path, "rb"); /* refused, and left exactly as it was */
    CHECK(f && fread(back, 1, sizeof back, f) == sizeof back && fgetc(f) == EOF);
    CHECK(memcmp(junk, back, sizeof junk) == 0);
    if (f)
        fclose(f);
    remove_root();
}

static void test_refuses_wrong_version(void)
{
    const char *dir = fresh_dir();
    storage_close(open_ok(dir));
    CHECK(raw_sql(dir, "UPDATE meta SET v = 7 WHERE k = 'format_version'") == 0);
    char err[512];
    CHECK(open_refused(dir, err, sizeof err));
    CHECK_MSG(strstr(err, "raft.db: format version 7 unsupported (expected 2)") != NULL,
              "message: %s", err);
    /* format 1 had no entry checksums: refused with what to do */
    CHECK(raw_sql(dir, "UPDATE meta SET v = 1 WHERE k = 'format_version'") == 0);
    CHECK(open_refused(dir, err, sizeof err));
    CHECK_MSG(strstr(err, "format version 1 predates entry checksums") != NULL, "message: %s", err);
    remove_root();
}

/* A byte changed inside an entry's data (its checksum kept) is found at
 * load: the node refuses to start, naming raft.db and the index. */
static void test_load_refuses_damaged_entry(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    CHECK(append_range(s, 1, 8, NULL) == 0);
    storage_close(s);
    CHECK(raw_sql(dir, "UPDATE entries SET data = x'00112233' WHERE idx = 5") == 0);
    s = open_ok(dir);
    raft_hard_state hs;
    storage_snapshot snap;
    raft_entry *le = NULL;
    size_t n = 0;
    CHECK(storage_load(s, &hs, &snap, &le, &n) == STORAGE_ERR_CORRUPT);
    CHECK(le == NULL && n == 0);
    CHECK_MSG(strstr(storage_errmsg(s), "raft.db: entry 5 fails its checksum") != NULL,
              "message: %s", storage_errmsg(s));
    storage_close(s);
    remove_root();
}

static void test_refuses_foreign_and_damaged_meta(void)
{
    const char *dir = fresh_dir();
    CHECK(mkdir(dir, 0700) == 0);
    CHECK(raw_sql(dir, "CREATE TABLE t(x)") == 0); /* some other SQLite file */
    char err[512];
    CHECK(open_refused(dir, err, sizeof err));
    CHECK_MSG(strstr(err, "not a raftkv database") != NULL, "message: %s", err);
    remove_root();

    dir = fresh_dir();
    storage *s = open_ok(dir);
    CHECK(append_range(s, 1, 3, NULL) == 0);
    save_snapshot(s, 2, term_for(2), 2, (const uint8_t *)"abc", 3);
    storage_close(s);
    CHECK(raw_sql(dir, "UPDATE meta SET v = x'01ff' WHERE k = 'snap_conf'") == 0);
    CHECK(open_refused(dir, err, sizeof err));
    CHECK_MSG(strstr(err, "membership is damaged") != NULL, "message: %s", err);
    remove_root();
}

static void test_load_refuses_gap(void)
{
    const char *dir = fresh_dir();
    storage *s = open_ok(dir);
    CHECK(append_range(s, 1, 8, NULL) == 0);
    storage_close(s);
    CHECK(raw_sql(dir, "DELETE FROM entries WHERE idx = 4") == 0);

    s = open_ok(dir);
    raft_hard_state hs;
    storage_snapshot snap;
    raft_entry *le = (raft_entry *)&hs;
    size_t n = 9;
    CHECK(storage_load(s, &hs, &snap, &le, &n) == -1);
    CHECK(le == NULL && n == 0);
    CHECK_MSG(strstr(storage_errmsg(s), "raft.db: log gap at index 4") != NULL, "message: %s",
              storage_errmsg(s));
    storage_close(s);

    CHECK(raw_sql(dir, "INSERT INTO entries VALUES (4, 5, 0, NULL, 0)") == 0); /* then 5 goes back */
    s = open_ok(dir);
    CHECK(storage_load(s, &hs, &snap, &le, &n) == -1);
    CHECK_MSG(strstr(storage_errmsg(s), "entry 5 has term 1, expected at least 5") != NULL,
              "message: %s", storage_errmsg(s));
    storage_close(s);
    remove_root();
}

/* ---- out of memory: each of SQLite's allocations failed in turn, each
 * try on a fresh copy of the same raft.db. Opening and loading must give
 * back the whole durable state or an error, never a shorter log or an
 * older hard state (a member that loaded a log short of entries it had
 * acknowledged could let a leader be elected without them). An append
 * that fails must leave, after a restart, the state before it or the
 * state after it; one that returns 0 must be there whole. ---- */

static bool same_load(const loaded *a, const loaded *b)
{
    if (memcmp(&a->hs, &b->hs, sizeof a->hs) != 0 || a->snap.meta.index != b->snap.meta.index ||
        a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const raft_entry *x = &a->le[i], *y = &b->le[i];
        if (x->index != y->index || x->term != y->term || x->type != y->type ||
            x->len != y->len || x->crc != y->crc ||
            (x->len && memcmp(x->data, y->data, x->len) != 0))
            return false;
    }
    return true;
}

static char oom_db[400], oom_tmpl[400];

/* The template: a data dir with an identity, entries 1-60 and a hard state
 * at term 9, stopped cleanly; its raft.db is copied aside. */
static bool oom_template(void)
{
    const char *dir = fresh_dir();
    snprintf(oom_db, sizeof oom_db, "%s/raft.db", dir);
    snprintf(oom_tmpl, sizeof oom_tmpl, "%s/template.db", root);
    storage *s = open_ok(dir);
    raft_hard_state hs = {.term = 9, .vote = 2, .commit = 50};
    bool ok = s && storage_set_identity(s, 1, 0x1234) == 0 && append_range(s, 1, 60, &hs) == 0;
    storage_close(s);
    return ok && sqlite_oom_copy_file(oom_db, oom_tmpl);
}

/* Opens and loads the data dir with allocation n failed (0: none), from a
 * fresh copy of the template when `fresh`; 0 or the first error. */
static int oom_open_load(long n, bool fresh, loaded *l, bool *hit)
{
    storage *s = NULL;
    char err[256];
    memset(l, 0, sizeof *l);
    if (fresh && !sqlite_oom_copy_db(oom_tmpl, oom_db))
        return -1;
    sqlite_oom_arm(n);
    int rc = storage_open(data_dir, &s, err, sizeof err);
    if (rc == 0)
        rc = load(s, l);
    *hit = sqlite_oom_disarm(n);
    storage_close(s);
    return rc;
}

static void test_load_out_of_memory(void)
{
    loaded want, got;
    bool hit = false;
    CHECK(oom_template());
    CHECK(oom_open_load(0, true, &want, &hit) == 0 && want.n == 60 && want.hs.term == 9);
    long n = 1;
    for (;; n++) {
        int rc = oom_open_load(n, true, &got, &hit);
        CHECK_MSG(rc == 0 ? same_load(&want, &got) : got.n == 0,
                  "allocation %ld failed: rc %d, %zu entries, term %llu", n, rc, got.n,
                  (unsigned long long)got.hs.term);
        unload(&got);
        if (!hit)
            break;
    }
    printf("  %ld opens and loads each ran out of memory once\n", n - 1);
    CHECK(n - 1 > 20);
    unload(&want);
    remove_root();
}

/* A fresh copy, opened; entries 55-70 at term 10 (replacing 55-60) and a
 * new hard state appended with allocation n failed; then a restart's load. */
static int oom_append(long n, loaded *after, bool *hit)
{
    static uint8_t data[16][32];
    raft_entry e[16];
    for (int k = 0; k < 16; k++) {
        snprintf((char *)data[k], sizeof data[k], "entry %d of term 10", 55 + k);
        e[k] = (raft_entry){.term = 10, .index = (raft_index)(55 + k), .len = 32, .data = data[k]};
    }
    seal(e, 16);
    raft_hard_state hs = {.term = 10, .vote = 3, .commit = 54};
    storage *s = NULL;
    char err[256];
    int rc = -1;
    if (sqlite_oom_copy_db(oom_tmpl, oom_db) &&
        storage_open(data_dir, &s, err, sizeof err) == 0) {
        sqlite_oom_arm(n);
        rc = storage_append(s, &hs, e, 16);
        *hit = sqlite_oom_disarm(n);
    }
    storage_close(s); /* a failed append stops the node */
    bool unarmed;
    CHECK_MSG(oom_open_load(0, false, after, &unarmed) == 0,
              "allocation %ld: the data dir cannot be loaded after the append", n);
    return rc;
}

static void test_append_out_of_memory(void)
{
    loaded before, after, got;
    bool hit = false;
    CHECK(oom_template());
    CHECK(oom_open_load(0, true, &before, &hit) == 0);
    CHECK(oom_append(0, &after, &hit) == 0 && after.n == 70 && after.hs.term == 10);
    long n = 1;
    for (;; n++) {
        int rc = oom_append(n, &got, &hit);
        CHECK_MSG(rc == 0 ? same_load(&after, &got)
                          : (rc == STORAGE_ERR_IO || rc == STORAGE_ERR_NOSPACE) &&
                                (same_load(&before, &got) || same_load(&after, &got)),
                  "allocation %ld failed: rc %d, then %zu entries, term %llu", n, rc, got.n,
                  (unsigned long long)got.hs.term);
        unload(&got);
        if (!hit)
            break;
    }
    printf("  %ld appends each ran out of memory once\n", n - 1);
    CHECK(n - 1 > 10);
    unload(&before);
    unload(&after);
    remove_root();
}

int main(void)
{
    log_set_level(LOG_ERROR);
    if (!sqlite_oom_install()) /* before SQLite starts; inert until armed */
        return 1;
    RUN(test_fresh_dir_and_identity);
    RUN(test_append_load_roundtrip);
    RUN(test_overwrite_conflicting_suffix);
    RUN(test_rejects_bad_batches);
    RUN(test_reopen_after_append);
    RUN(test_commit_only_writes);
    RUN(test_kill_during_appends);
    RUN(test_snapshot_saved_compacts);
    RUN(test_snapshot_adopt_from_staging);
    RUN(test_install_snapshot);
    RUN(test_verify_detects_damage);
    RUN(test_cleanup_removes_orphans);
    RUN(test_refuses_garbage_db);
    RUN(test_refuses_wrong_version);
    RUN(test_refuses_foreign_and_damaged_meta);
    RUN(test_load_refuses_gap);
    RUN(test_load_refuses_damaged_entry);
    RUN(test_load_out_of_memory);
    RUN(test_append_out_of_memory);
    TEST_MAIN_END();
}
