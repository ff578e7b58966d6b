/* storage_oom_test: raft.db with each of SQLite's allocations failed in
 * turn (sqlite_oom.c), each try on a fresh copy of the same data dir.
 * Opening and loading must give back the whole durable state or an error,
 * never a shorter log or an older hard state (a node that loaded a log
 * short of entries it had acknowledged could let a leader be elected
 * without them). An append that fails must leave, after a restart, the
 * state before it or the state after it; one that returns 0 must be there
 * whole. */
#include "storage/storage.h"
#include "../test.h"
#include "sqlite_oom.h"
#include "util/util.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char root[64];
static char dir[128], db[160], tmpl[160];

typedef struct {
    raft_hard_state hs;
    storage_snapshot snap;
    raft_entry *le;
    size_t n;
} loaded;

static void unload(loaded *l)
{
    storage_free_entries(l->le, l->n);
    memset(l, 0, sizeof *l);
}

static bool same_entry(const raft_entry *a, const raft_entry *b)
{
    return a->index == b->index && a->term == b->term && a->type == b->type &&
           a->len == b->len && a->crc == b->crc &&
           (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static bool same_load(const loaded *a, const loaded *b)
{
    if (memcmp(&a->hs, &b->hs, sizeof a->hs) != 0 || a->snap.meta.index != b->snap.meta.index ||
        a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!same_entry(&a->le[i], &b->le[i]))
            return false;
    return true;
}

/* Entries [first, last] of term t, with data that names them. */
static raft_entry *make_entries(raft_index first, raft_index last, raft_term t, uint8_t *data)
{
    size_t n = (size_t)(last - first + 1);
    raft_entry *e = calloc(n, sizeof *e);
    for (size_t k = 0; e && k < n; k++) {
        uint8_t *p = data + 32 * k;
        snprintf((char *)p, 32, "entry %llu of term %llu", (unsigned long long)(first + k),
                 (unsigned long long)t);
        e[k] = (raft_entry){.term = t, .index = first + k, .type = RAFT_ENTRY_NORMAL,
                            .len = 32, .data = p};
        e[k].crc = crc32c(0, p, 32);
    }
    return e;
}

static int append(storage *s, const raft_hard_state *hs, raft_index first, raft_index last,
                  raft_term t)
{
    static uint8_t data[32 * 64];
    raft_entry *e = make_entries(first, last, t, data);
    int rc = e ? storage_append(s, hs, e, (size_t)(last - first + 1)) : -1;
    free(e);
    return rc;
}

/* Opens and loads dir; 0, or the first error. */
static int open_load(storage **s, loaded *l)
{
    char err[256];
    memset(l, 0, sizeof *l);
    *s = NULL;
    int rc = storage_open(dir, s, err, sizeof err);
    if (rc == 0)
        rc = storage_load(*s, &l->hs, &l->snap, &l->le, &l->n);
    return rc;
}

/* A fresh copy of the template, opened and loaded with allocation n
 * failed (0: none); the code, and whether the allocation was hit. */
static int try_open_load(long n, loaded *l, bool *hit)
{
    storage *s = NULL;
    int rc = -1;
    if (sqlite_oom_copy_db(tmpl, db)) {
        sqlite_oom_arm(n);
        rc = open_load(&s, l);
        *hit = sqlite_oom_disarm(n);
    }
    storage_close(s);
    return rc;
}

static void test_load_out_of_memory(void)
{
    loaded want, got;
    bool hit = false;
    CHECK(try_open_load(0, &want, &hit) == 0 && want.n == 60 && want.hs.term == 9);
    long n = 1;
    for (;; n++) {
        int rc = try_open_load(n, &got, &hit);
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
}

/* A fresh copy, opened; an append of [55, 70] at term 10 (replacing
 * 55-60 of term 9) with allocation n failed; then a restart's load. */
static int try_append(long n, loaded *after, bool *hit)
{
    storage *s = NULL;
    loaded l;
    int rc = -1;
    raft_hard_state hs = {.term = 10, .vote = 3, .commit = 54};
    if (sqlite_oom_copy_db(tmpl, db) && open_load(&s, &l) == 0) {
        unload(&l);
        sqlite_oom_arm(n);
        rc = append(s, &hs, 55, 70, 10);
        *hit = sqlite_oom_disarm(n);
    }
    storage_close(s); /* a stop after a failed append: the node exits */
    s = NULL;
    if (open_load(&s, after) != 0)
        CHECK_MSG(false, "allocation %ld: the data dir cannot be loaded after the append", n);
    storage_close(s);
    return rc;
}

static void test_append_out_of_memory(void)
{
    loaded before, after, got;
    bool hit = false;
    CHECK(try_open_load(0, &before, &hit) == 0);
    CHECK(try_append(0, &after, &hit) == 0 && after.n == 70 && after.hs.term == 10);
    long n = 1;
    for (;; n++) {
        int rc = try_append(n, &got, &hit);
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
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* The template: a data dir with an identity, 60 entries of term 9 and a
 * hard state, stopped cleanly; its raft.db is copied aside. */
static bool make_template(void)
{
    snprintf(root, sizeof root, "/tmp/storage_oom_test.XXXXXX");
    if (!mkdtemp(root))
        return false;
    snprintf(dir, sizeof dir, "%s/data", root);
    snprintf(db, sizeof db, "%s/raft.db", dir);
    snprintf(tmpl, sizeof tmpl, "%s/template.db", root);
    storage *s = NULL;
    char err[256];
    raft_hard_state hs = {.term = 9, .vote = 2, .commit = 50};
    bool ok = storage_open(dir, &s, err, sizeof err) == 0 &&
              storage_set_identity(s, 1, 0x1234) == 0 && append(s, &hs, 1, 60, 9) == 0;
    storage_close(s);
    return ok && sqlite_oom_copy_file(db, tmpl);
}

int main(void)
{
    if (!sqlite_oom_install() || !make_template()) {
        fprintf(stderr, "storage_oom_test: no template data dir\n");
        return 1;
    }
    RUN(test_load_out_of_memory);
    RUN(test_append_out_of_memory);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    TEST_MAIN_END();
}
