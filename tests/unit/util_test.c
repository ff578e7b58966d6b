/* util_test: the shared helpers not covered elsewhere — xgrow's growth,
 * that it keeps the items, and that a size that would overflow is refused
 * with the array left as it was. (CRC-32C is tested in codec_test.) */
#include "../test.h"
#include "util/util.h"

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

int main(void)
{
    RUN(test_xgrow_doubles_and_keeps_items);
    RUN(test_xgrow_refuses_overflow);
    TEST_MAIN_END();
}
