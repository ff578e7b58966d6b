/* kv_fixture: the set-up the kv, lease and watch tests share — a kv store
 * in a fresh mkdtemp directory, one command applied per batch, and the
 * directory removed at the end. It never asserts (test.h's counters are
 * per program): it reports, and each test CHECKs what it reports. */
#ifndef RAFTKV_KV_FIXTURE_H
#define RAFTKV_KV_FIXTURE_H

#include "kv/kv.h"

#include <stdbool.h>

typedef struct {
    char dir[64];   /* the fresh directory, removed by kvfx_close */
    char path[128]; /* dir/kv.db */
    kv *k;
    uint64_t index; /* the log index of the last batch applied */
} kvfx;

/* Makes /tmp/<name>.XXXXXX and opens dir/kv.db in it; exits the test
 * program with a message when it cannot (nothing can run without it). */
void kvfx_open(kvfx *f, const char *name);

/* Opens f->path again after the test closed f->k (a restart); false,
 * with the reason on stderr, when kv_open fails. */
bool kvfx_reopen(kvfx *f);

/* Closes the store (if open) and removes the directory with all in it. */
void kvfx_close(kvfx *f);

/* Applies one encoded command as its own batch at the next index.
 * Returns kv_apply_cmd's code; *begin_ok / *commit_ok say whether the
 * batch's begin and commit succeeded, for the caller to CHECK. */
int kvfx_apply(kvfx *f, const buf *cmd, kv_result *res, bool *begin_ok, bool *commit_ok);

/* Waits (with a deadline of about 10 s) for a background snapshot to
 * finish, then frees the job; kv_snapjob_poll's last code (1 if it never
 * finished), with *out filled on KV_OK. */
int kvfx_snapjob_wait(kv_snapjob *j, kv_snapfile *out);

/* A snapshot of the store at path, written as the node writes one: by
 * kv's background job (kv_snapjob_start), waited for. KV_OK or an error;
 * *out (may be NULL) gets the job's index, term, size and CRC. */
int kvfx_snapshot(kvfx *f, const char *path, kv_snapfile *out);

#endif
