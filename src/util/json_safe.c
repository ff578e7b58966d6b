/* json_safe: the allocator wrapper and the checked parse and dump (see
 * json_safe.h for why jansson needs them). Owns the per-thread "an
 * allocation failed" mark; nothing else. */
#include "util/json_safe.h"

#include <stdatomic.h>
#include <stdlib.h>

typedef void *(*alloc_fn)(size_t);

static _Atomic(alloc_fn) inner = malloc;
static _Thread_local bool failed;

static void *safe_alloc(size_t n)
{
    void *p = atomic_load_explicit(&inner, memory_order_relaxed)(n);
    if (!p)
        failed = true;
    return p;
}

void json_safe_install(void) { json_set_alloc_funcs(safe_alloc, free); }

void json_safe_use(void *(*alloc)(size_t))
{
    atomic_store(&inner, alloc ? alloc : malloc);
    json_safe_install();
}

json_t *json_safe_parse(const void *p, size_t n, size_t flags, json_error_t *e, bool *oom)
{
    failed = false;
    json_t *root = json_loadb((const char *)p, n, flags, e);
    if (failed) { /* root may hold a string short of a byte: never use it */
        json_decref(root);
        root = NULL;
    }
    if (oom)
        *oom = failed;
    return root;
}

char *json_safe_dump(const json_t *j)
{
    if (!j)
        return NULL;
    failed = false;
    char *text = json_dumps(j, JSON_COMPACT);
    if (failed) { /* the text may lack a key jansson could not write */
        free(text);
        text = NULL;
    }
    return text;
}
