/* kv_fixture: a kv store in a fresh temp directory for the unit tests
 * (see kv_fixture.h). Must never leave a directory behind after
 * kvfx_close, and never count test results itself. */
#include "kv_fixture.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool kvfx_reopen(kvfx *f)
{
    char err[256] = "";
    int rc = kv_open(f->path, &f->k, err, sizeof err);
    if (rc == KV_OK && f->k)
        return true;
    fprintf(stderr, "kv_open %s: %s\n", f->path, err);
    return false;
}

void kvfx_open(kvfx *f, const char *name)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/%s.XXXXXX", name);
    if (!mkdtemp(f->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(f->path, sizeof f->path, "%s/kv.db", f->dir);
    if (!kvfx_reopen(f)) {
        fprintf(stderr, "FAIL kvfx_open: no store, cannot go on\n");
        exit(1);
    }
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

void kvfx_close(kvfx *f)
{
    kv_close(f->k);
    f->k = NULL;
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int kvfx_apply(kvfx *f, const buf *cmd, kv_result *res, bool *begin_ok, bool *commit_ok)
{
    *begin_ok = kv_apply_begin(f->k) == KV_OK;
    int rc = kv_apply_cmd(f->k, cmd->data, cmd->len, res);
    *commit_ok = kv_apply_commit(f->k, ++f->index, 1) == KV_OK;
    return rc;
}

int kvfx_snapjob_wait(kv_snapjob *j, kv_snapfile *out)
{
    int rc = 1;
    for (int i = 0; i < 10000 && (rc = kv_snapjob_poll(j, out)) == 1; i++)
        usleep(1000);
    if (rc == 1)
        fprintf(stderr, "kvfx: background snapshot still running after 10 s\n");
    kv_snapjob_free(j);
    return rc;
}

int kvfx_snapshot(kvfx *f, const char *path, kv_snapfile *out)
{
    kv_snapfile tmp;
    kv_snapjob *j = kv_snapjob_start(f->k, path);
    if (!j)
        return KV_ERR_INTERNAL;
    return kvfx_snapjob_wait(j, out ? out : &tmp);
}
