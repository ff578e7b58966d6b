/* corrupt_check_test: who the leader's replica comparison names — the
 * pure decision of corrupt_check.c over a table of rounds. */
#include "../test.h"
#include "server/corrupt_check.h"

#include <string.h>

#define OK TRANSPORT_HASH_OK

static corrupt_answer ans(uint64_t id, int status, uint32_t hash, int64_t rev, int64_t compact)
{
    corrupt_answer a = {.id = id, .status = status};
    a.h = (transport_hash){.hash = hash, .revision = rev, .compact_revision = compact};
    return a;
}

static size_t odd_of(const corrupt_answer *a, size_t n, uint64_t *odd)
{
    memset(odd, 0, 8 * sizeof *odd);
    return corrupt_odd_members(a, n, odd);
}

static void test_all_agree(void)
{
    corrupt_answer a[] = {ans(1, OK, 7, 10, 0), ans(2, OK, 7, 10, 0), ans(3, OK, 7, 10, 0)};
    uint64_t odd[8];
    CHECK(odd_of(a, 3, odd) == 0);
}

static void test_minority_differs(void)
{
    corrupt_answer a[] = {ans(1, OK, 7, 10, 0), ans(2, OK, 9, 10, 0), ans(3, OK, 7, 10, 0)};
    uint64_t odd[8];
    CHECK(odd_of(a, 3, odd) == 1 && odd[0] == 2);
    /* the leader itself is the odd one when the others agree */
    corrupt_answer b[] = {ans(1, OK, 5, 10, 0), ans(2, OK, 9, 10, 0), ans(3, OK, 9, 10, 0)};
    CHECK(odd_of(b, 3, odd) == 1 && odd[0] == 1);
}

static void test_tie_goes_to_leader(void)
{
    corrupt_answer a[] = {ans(1, OK, 7, 10, 0), ans(2, OK, 9, 10, 0)};
    uint64_t odd[8];
    CHECK(odd_of(a, 2, odd) == 1 && odd[0] == 2);
}

static void test_not_comparable_not_judged(void)
{
    corrupt_answer a[] = {ans(1, OK, 7, 10, 0), ans(2, OK, 9, 10, 4), /* other compact rev */
                          ans(3, TRANSPORT_HASH_FUTURE, 0, 0, 0),
                          ans(4, TRANSPORT_HASH_ERROR, 0, 0, 0),
                          ans(5, TRANSPORT_HASH_COMPACTED, 0, 0, 0)};
    uint64_t odd[8];
    CHECK(odd_of(a, 5, odd) == 0);
}

static void test_corrupt_answer_is_odd(void)
{
    corrupt_answer a[] = {ans(1, OK, 7, 10, 0), ans(2, TRANSPORT_HASH_CORRUPT, 0, 0, 0),
                          ans(3, OK, 7, 10, 0)};
    uint64_t odd[8];
    CHECK(odd_of(a, 3, odd) == 1 && odd[0] == 2);
    /* even when the leader cannot hash (its own row is damaged) */
    corrupt_answer b[] = {ans(1, TRANSPORT_HASH_CORRUPT, 0, 0, 0), ans(2, OK, 7, 10, 0)};
    CHECK(odd_of(b, 2, odd) == 1 && odd[0] == 1);
}

int main(void)
{
    RUN(test_all_agree);
    RUN(test_minority_differs);
    RUN(test_tie_goes_to_leader);
    RUN(test_not_comparable_not_judged);
    RUN(test_corrupt_answer_is_odd);
    TEST_MAIN_END();
}
