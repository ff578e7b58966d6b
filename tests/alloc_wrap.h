/* alloc_wrap: malloc, calloc and realloc for a test program linked with
 * -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc. Every call the
 * program's own objects and libraftkv.a make (not those inside shared
 * libraries) first asks alloc_wrap_fails, which the program defines:
 * true fails that allocation (NULL), false goes on to libc's. */
#ifndef RAFTKV_ALLOC_WRAP_H
#define RAFTKV_ALLOC_WRAP_H

#include <stdbool.h>
#include <stddef.h>

bool alloc_wrap_fails(void);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);

#endif
