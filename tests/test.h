/* test.h: the tiny harness every C test uses. CHECK records a failure with
 * file:line and goes on; TEST_MAIN_END prints one "name: N passed, N failed"
 * line and sets the exit code, so make check and scripts/test can count. */
#ifndef RAFTKV_TEST_H
#define RAFTKV_TEST_H

#include <stdio.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                          \
    do {                                                                     \
        test_checks++;                                                       \
        if (!(cond)) {                                                       \
            test_failures++;                                                 \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                                 \
    do {                                                                     \
        test_checks++;                                                       \
        if (!(cond)) {                                                       \
            test_failures++;                                                 \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

/* Runs one test function and reports it as one line. */
static int test_cases_passed, test_cases_failed;
#define RUN(fn)                                                              \
    do {                                                                     \
        int before_ = test_failures;                                         \
        fn();                                                                \
        if (test_failures == before_) {                                      \
            test_cases_passed++;                                             \
            printf("PASS %s\n", #fn);                                        \
        } else {                                                             \
            test_cases_failed++;                                             \
            printf("FAIL %s\n", #fn);                                        \
        }                                                                    \
        fflush(stdout);                                                      \
    } while (0)

#define TEST_MAIN_END()                                                      \
    do {                                                                     \
        printf("%d passed, %d failed\n", test_cases_passed, test_cases_failed); \
        return test_cases_failed ? 1 : 0;                                    \
    } while (0)

#endif
