/* alloc_wrap: the wrapped allocators (see alloc_wrap.h). Must never
 * allocate itself, nor fail a call alloc_wrap_fails did not fail. */
#include "alloc_wrap.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n) { return alloc_wrap_fails() ? NULL : __real_malloc(n); }

void *__wrap_calloc(size_t k, size_t n) { return alloc_wrap_fails() ? NULL : __real_calloc(k, n); }

void *__wrap_realloc(void *p, size_t n)
{
    return alloc_wrap_fails() ? NULL : __real_realloc(p, n);
}
