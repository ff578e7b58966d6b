/* fuzz: what the libFuzzer harnesses of tests/fuzz share. Each harness is
 * one fuzz_<name>.c with LLVMFuzzerTestOneInput; a broken property aborts
 * with FUZZ_CHECK, which libFuzzer reports as a crash and saves the input.
 * Harnesses are built only by configure --enable-fuzzing (clang); see
 * docs/TESTING.md, "Fuzzing". */
#ifndef RAFTKV_FUZZ_H
#define RAFTKV_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: property broken: %s\n", file, line, what);
    abort();
}

/* Unlike assert(), never compiled out. */
#define FUZZ_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond))                                                                           \
            fuzz_fail(__FILE__, __LINE__, #cond);                                              \
    } while (0)

/* A NUL-terminated copy of the input, for parsers of C strings. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    for (size_t i = 0; i < size; i++)
        s[i] = (char)data[i];
    s[size] = 0;
    return s;
}

#endif
