/* json_safe: jansson's allocator for the process, and the parse and dump
 * every module uses instead of json_loadb and json_dumps.
 *
 * Why: jansson does not always stop on a failed allocation. Its lexer
 * drops the byte it could not store and goes on (a key "a_b" comes back
 * as "ab"), its writer drops an object's key it could not store and goes
 * on (`{"":1}` comes out as `{":1}`), and a failed parse may report a
 * syntax error the input does not have. So every jansson allocation goes
 * through a wrapper that marks, per thread, that one failed; a parse or a
 * dump during which one failed returns NULL and says it ran out of memory.
 *
 * Must never hand out memory that libc's free and realloc cannot take
 * (callers free and realloc jansson's strings themselves).
 */
#ifndef RAFTKV_JSON_SAFE_H
#define RAFTKV_JSON_SAFE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Makes jansson allocate through the wrapper; main calls it first thing,
 * before any thread starts. */
void json_safe_install(void);

/* Tests: what the wrapper allocates with (NULL: malloc again); installs
 * the wrapper too. */
void json_safe_use(void *(*alloc)(size_t));

/* json_loadb(p, n, flags, e). NULL on bad input or when an allocation
 * failed; *oom (may be NULL) says which, and after an allocation failure
 * e's text means nothing. */
json_t *json_safe_parse(const void *p, size_t n, size_t flags, json_error_t *e, bool *oom);

/* json_dumps(j, JSON_COMPACT), or NULL when j is NULL or an allocation
 * failed. Free with free(). */
char *json_safe_dump(const json_t *j);

#endif
