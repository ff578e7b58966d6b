/* failpoint: the parsed failpoint table and its hit counters (see
 * failpoint.h). Owns nothing else. Must never make an unarmed hit cost
 * more than one relaxed atomic load, and never arm part of a bad spec. */
#include "util/failpoint.h"
#include "util/util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[FAILPOINT_NAME_MAX];
    int err;
    uint64_t from; /* fail from this hit on (1-based) */
    atomic_uint_fast64_t hits;
} failpoint;

static failpoint points[FAILPOINT_MAX];
static atomic_int n_armed; /* 0: the fast path returns at once */

static const struct {
    const char *name;
    int err;
} errnos[] = {{"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EROFS", EROFS},
              {"ENOMEM", ENOMEM}, {"EACCES", EACCES}, {"EDQUOT", EDQUOT}};

static int errno_named(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
        if (strlen(errnos[i].name) == n && memcmp(errnos[i].name, s, n) == 0)
            return errnos[i].err;
    return 0;
}

/* "N" >= 1. */
static bool parse_count(const char *s, size_t n, uint64_t *out)
{
    return parse_decimal(s, n, out) && *out >= 1;
}

/* One "name=ERRNO[@N]" of n bytes into p. */
static bool parse_one(const char *s, size_t n, failpoint *p)
{
    const char *eq = memchr(s, '=', n);
    if (!eq || eq == s || (size_t)(eq - s) >= FAILPOINT_NAME_MAX)
        return false;
    memcpy(p->name, s, (size_t)(eq - s));
    p->name[eq - s] = 0;
    const char *e = eq + 1, *end = s + n;
    const char *at = memchr(e, '@', (size_t)(end - e));
    p->err = errno_named(e, (size_t)((at ? at : end) - e));
    p->from = 1;
    if (at && !parse_count(at + 1, (size_t)(end - at - 1), &p->from))
        return false;
    return p->err != 0;
}

static bool duplicate(const failpoint *tab, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(tab[i].name, tab[n].name) == 0)
            return true;
    return false;
}

int failpoint_init(const char *spec)
{
    atomic_store(&n_armed, 0);
    memset(points, 0, sizeof points);
    if (!spec || !*spec)
        return 0;
    failpoint tab[FAILPOINT_MAX];
    memset(tab, 0, sizeof tab);
    size_t n = 0;
    for (const char *s = spec;; n++) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (n == FAILPOINT_MAX || !parse_one(s, len, &tab[n]) || duplicate(tab, n))
            return -1;
        if (!comma)
            break;
        s = comma + 1;
    }
    memcpy(points, tab, sizeof tab);
    atomic_store_explicit(&n_armed, (int)n + 1, memory_order_release);
    return 0;
}

int failpoint_hit(const char *name)
{
    if (atomic_load_explicit(&n_armed, memory_order_relaxed) == 0)
        return 0;
    int n = atomic_load_explicit(&n_armed, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        failpoint *p = &points[i];
        if (strcmp(p->name, name) != 0)
            continue;
        uint64_t hit = atomic_fetch_add_explicit(&p->hits, 1, memory_order_relaxed) + 1;
        return hit >= p->from ? p->err : 0;
    }
    return 0;
}
