/* sqlite_oom: the failing allocator and the copies (see sqlite_oom.h). */
#include "sqlite_oom.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>

static sqlite3_mem_methods real;
static atomic_long fail_at, seen;

static bool fail_now(void)
{
    return atomic_load(&fail_at) > 0 && atomic_fetch_add(&seen, 1) + 1 == atomic_load(&fail_at);
}

static void *oom_malloc(int n) { return fail_now() ? NULL : real.xMalloc(n); }

static void *oom_realloc(void *p, int n) { return fail_now() ? NULL : real.xRealloc(p, n); }

bool sqlite_oom_install(void)
{
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real) != SQLITE_OK)
        return false;
    sqlite3_mem_methods m = real;
    m.xMalloc = oom_malloc;
    m.xRealloc = oom_realloc;
    return sqlite3_config(SQLITE_CONFIG_MALLOC, &m) == SQLITE_OK;
}

void sqlite_oom_arm(long n)
{
    atomic_store(&seen, 0);
    atomic_store(&fail_at, n);
}

bool sqlite_oom_disarm(long n)
{
    atomic_store(&fail_at, 0);
    return n > 0 && atomic_load(&seen) >= n;
}

bool sqlite_oom_copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    bool ok = in && out;
    char chunk[65536];
    for (size_t n; ok && (n = fread(chunk, 1, sizeof chunk, in)) > 0;)
        ok = fwrite(chunk, 1, n, out) == n;
    ok = ok && !ferror(in);
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        ok = false;
    return ok;
}

bool sqlite_oom_copy_db(const char *src, const char *dst)
{
    char side[512];
    for (int i = 0; i < 2; i++) {
        snprintf(side, sizeof side, "%s%s", dst, i ? "-shm" : "-wal");
        remove(side);
    }
    return sqlite_oom_copy_file(src, dst);
}
