/* util_test: the shared helpers not covered elsewhere — xgrow's growth,
 * that it keeps the items, and that a size that would overflow is refused
 * with the array left as it was; failpoint spec parsing and hit counting;
 * json_safe's parse and dump with each of their allocations failed.
 * (CRC-32C is tested in codec_test.) */
#include "../test.h"
#include "util/failpoint.h"
#include "util/json_safe.h"
#include "util/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
        "kv.commit=EIO@18446744073709551616",
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

/* ---- parse_decimal: every decimal number read from outside ---- */

static void test_parse_decimal(void)
{
    static const struct {
        const char *s;
        bool ok;
        uint64_t v;
    } cases[] = {
        {"0", true, 0},
        {"007", true, 7},
        {"18446744073709551615", true, UINT64_MAX},
        {"18446744073709551616", false, 0}, /* one past */
        {"99999999999999999999", false, 0},
        {"000000000000000000000000001", true, 1}, /* length alone is no limit */
        {"", false, 0},
        {"-1", false, 0},
        {"+1", false, 0},
        {"1 ", false, 0},
        {"1x", false, 0},
        {"0x10", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 12345;
        bool ok = parse_decimal(cases[i].s, strlen(cases[i].s), &v);
        CHECK_MSG(ok == cases[i].ok, "\"%s\": %d", cases[i].s, ok);
        CHECK_MSG(ok ? v == cases[i].v : v == 12345, "\"%s\": %llu", cases[i].s,
                  (unsigned long long)v);
    }
    uint64_t v = 0;
    CHECK(parse_decimal("12345", 3, &v) && v == 123); /* only n bytes */
}

/* ---- json_safe: jansson with one allocation failed ---- */

static long fail_at, seen; /* the fail_at-th allocation from 0 fails; single-threaded */

static void *failing_alloc(size_t n)
{
    return ++seen == fail_at ? NULL : malloc(n);
}

/* Each allocation of the parse failed in turn: a document exactly as
 * written, or NULL saying out of memory; never a key or string short of a
 * byte (jansson's lexer drops the byte it cannot store and goes on). */
static void test_json_safe_parse_out_of_memory(void)
{
    /* longer than the lexer's first 16-byte buffer, so that it grows */
    static const char text[] = "{\"request_delete_range\":[1,\"a string of 24 bytes...\","
                               "{\"inner_key\":\"xyz\"}]}";
    json_safe_use(failing_alloc);
    long failed = 0;
    for (fail_at = 1;; fail_at++) {
        seen = 0;
        json_error_t e;
        bool oom = false;
        json_t *j = json_safe_parse(text, strlen(text), JSON_REJECT_DUPLICATES, &e, &oom);
        bool hit = seen >= fail_at;
        long at = fail_at;
        fail_at = 0; /* the checks below allocate */
        char *back = j ? json_dumps(j, JSON_COMPACT) : NULL;
        CHECK_MSG(j ? back && strcmp(back, text) == 0 : oom, "allocation %ld: %s", at,
                  back ? back : "(null)");
        CHECK(!j || !oom);
        free(back);
        json_decref(j);
        if (!hit)
            break;
        failed++;
        fail_at = at;
    }
    CHECK(failed > 5);
    json_safe_use(NULL);
}

/* Each allocation of the dump failed in turn: the whole text or NULL,
 * never a text without a key (jansson's writer skips a key it could not
 * write and goes on). */
static void test_json_safe_dump_out_of_memory(void)
{
    static const char want[] = "{\"header\":{\"revision\":12345678,\"cluster_id\":"
                               "\"a longer string value\"},\"more\":[true,\"x\"]}";
    json_t *j = json_loads(want, 0, NULL);
    CHECK(j != NULL);
    json_safe_use(failing_alloc);
    long failed = 0;
    for (fail_at = 1; j; fail_at++) {
        seen = 0;
        char *text = json_safe_dump(j);
        bool hit = seen >= fail_at;
        CHECK_MSG(text ? strcmp(text, want) == 0 : hit, "allocation %ld: %s", fail_at,
                  text ? text : "(null)");
        free(text);
        if (!hit)
            break;
        failed++;
    }
    fail_at = 0;
    CHECK(failed > 2);
    json_safe_use(NULL);
    json_decref(j);
}

int main(void)
{
    RUN(test_xgrow_doubles_and_keeps_items);
    RUN(test_xgrow_refuses_overflow);
    RUN(test_failpoint_unarmed);
    RUN(test_failpoint_counts_hits);
    RUN(test_failpoint_refuses_bad_specs);
    RUN(test_parse_decimal);
    RUN(test_json_safe_parse_out_of_memory);
    RUN(test_json_safe_dump_out_of_memory);
    TEST_MAIN_END();
}
