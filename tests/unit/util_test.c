/* util_test: the shared helpers not covered elsewhere — xgrow's growth,
 * that it keeps the items, and that a size that would overflow is refused
 * with the array left as it was; failpoint spec parsing and hit counting.
 * (CRC-32C is tested in codec_test.) */
#include "../test.h"
#include "util/failpoint.h"
#include "util/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static void test_xgrow_doubles_and_keeps_items(void)
{
    uint64_t *v = NULL;
    size_t cap = 0, n = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        size_t before = cap;
        CHECK(xgrow(&v, &cap, n, sizeof *v) == 0);
        CHECK(cap > n);
        /* grows only when full, and then to twice (16 at first) */
        CHECK(n < before ? cap == before : cap == (before ? before * 2 : 16));
        v[n++] = i * 7;
    }
    bool same = true;
    for (size_t i = 0; i < n; i++)
        same &= v[i] == i * 7;
    CHECK(same && cap == 1024);
    free(v);
}

static void test_xgrow_refuses_overflow(void)
{
    char *v = malloc(16);
    CHECK(v != NULL);
    char *kept = v;
    size_t cap = SIZE_MAX / 2 + 1; /* doubling would wrap */
    CHECK(xgrow(&v, &cap, cap, 1) == -1);
    CHECK(v == kept && cap == SIZE_MAX / 2 + 1);
    cap = 16; /* 32 items of SIZE_MAX / 16 bytes do not fit in size_t */
    CHECK(xgrow(&v, &cap, 16, SIZE_MAX / 16) == -1);
    CHECK(v == kept && cap == 16);
    free(v);
}

static void test_failpoint_unarmed(void)
{
    CHECK(failpoint_init(NULL) == 0);
    CHECK(failpoint_hit("kv.commit") == 0);
    CHECK(failpoint_init("") == 0);
    CHECK(failpoint_hit("kv.commit") == 0);
}

static void test_failpoint_counts_hits(void)
{
    CHECK(failpoint_init("kv.commit=EIO@3,kv.write=ENOSPC") == 0);
    CHECK(failpoint_hit("kv.commit") == 0);
    CHECK(failpoint_hit("kv.apply") == 0); /* not armed: no effect */
    CHECK(failpoint_hit("kv.commit") == 0);
    CHECK(failpoint_hit("kv.commit") == EIO); /* the 3rd hit and later */
    CHECK(failpoint_hit("kv.commit") == EIO);
    CHECK(failpoint_hit("kv.write") == ENOSPC); /* no @N: from the 1st hit */
    CHECK(failpoint_hit("kv.writ") == 0);
    CHECK(failpoint_init("a=EROFS@1,b=ENOMEM,c=EACCES@2,d=EDQUOT") == 0);
    CHECK(failpoint_hit("a") == EROFS && failpoint_hit("b") == ENOMEM);
    CHECK(failpoint_hit("c") == 0 && failpoint_hit("c") == EACCES);
    CHECK(failpoint_hit("d") == EDQUOT);
    CHECK(failpoint_hit("kv.commit") == 0); /* re-init replaced the table */
    CHECK(failpoint_init(NULL) == 0);
    CHECK(failpoint_hit("a") == 0);
}

static void test_failpoint_refuses_bad_specs(void)
{
    static const char *const bad[] = {
        "kv.commit",          "kv.commit=",        "=EIO",          "kv.commit=EFOO",
        "kv.commit=EIO@",     "kv.commit=EIO@0",   "kv.commit=EIO@x", "kv.commit=EIO@-1",
        "kv.commit=EIO,",     ",kv.commit=EIO",    "a=EIO,a=ENOSPC", "kv.commit=eio",
        "kv.commit=EIO@3@4",  "a_name_far_longer_than_the_limit_of_32=EIO",
        "a=EIO,b=EIO,c=EIO,d=EIO,e=EIO,f=EIO,g=EIO,h=EIO,i=EIO,j=EIO,k=EIO,l=EIO,m=EIO,"
        "n=EIO,o=EIO,p=EIO,q=EIO",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(failpoint_init("kv.apply=EIO") == 0);
        CHECK_MSG(failpoint_init(bad[i]) == -1, "accepted \"%s\"", bad[i]);
        /* a refused spec arms nothing, not even what was armed before */
        CHECK(failpoint_hit("kv.apply") == 0 && failpoint_hit("kv.commit") == 0);
    }
    CHECK(failpoint_init("kv.commit=EIO@1000000000000") == 0);
    CHECK(failpoint_hit("kv.commit") == 0);
    failpoint_init(NULL);
}

int main(void)
{
    RUN(test_xgrow_doubles_and_keeps_items);
    RUN(test_xgrow_refuses_overflow);
    RUN(test_failpoint_unarmed);
    RUN(test_failpoint_counts_hits);
    RUN(test_failpoint_refuses_bad_specs);
    TEST_MAIN_END();
}
