/* auth_limit: how many wrong passwords one client address may try — a
 * fixed table of recent addresses (hashed; a collision shares a slot,
 * which only makes the limit stricter), so a flood of addresses cannot
 * grow memory. Must never block: one mutex, held for a slot update. */
#include "auth/auth.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 1024

typedef struct {
    uint8_t addr[16];
    uint64_t window_start;
    uint32_t fails;
} slot;

struct auth_limiter {
    pthread_mutex_t mu;
    slot slots[SLOTS];
};

auth_limiter *auth_limiter_create(void)
{
    auth_limiter *l = calloc(1, sizeof *l);
    if (l && pthread_mutex_init(&l->mu, NULL) != 0) {
        free(l);
        return NULL;
    }
    return l;
}

void auth_limiter_destroy(auth_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* The address as 16 bytes (IPv4 mapped), and its slot. */
static slot *find(auth_limiter *l, const struct sockaddr *sa, uint8_t a[16])
{
    memset(a, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        a[10] = a[11] = 0xff;
        memcpy(a + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ a[i]) * 16777619u;
    return &l->slots[h % SLOTS];
}

bool auth_limiter_allowed(auth_limiter *l, const struct sockaddr *sa, uint64_t now_ms,
                          uint64_t *retry_ms)
{
    uint8_t a[16];
    pthread_mutex_lock(&l->mu);
    slot *s = find(l, sa, a);
    bool ok = true;
    if (memcmp(s->addr, a, 16) == 0 && s->fails >= AUTH_FAILS_MAX &&
        now_ms - s->window_start < AUTH_FAILS_WINDOW_MS) {
        ok = false;
        *retry_ms = AUTH_FAILS_WINDOW_MS - (now_ms - s->window_start);
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void auth_limiter_failed(auth_limiter *l, const struct sockaddr *sa, uint64_t now_ms)
{
    uint8_t a[16];
    pthread_mutex_lock(&l->mu);
    slot *s = find(l, sa, a);
    if (memcmp(s->addr, a, 16) != 0 || now_ms - s->window_start >= AUTH_FAILS_WINDOW_MS) {
        memcpy(s->addr, a, 16);
        s->window_start = now_ms;
        s->fails = 0;
    }
    s->fails++;
    pthread_mutex_unlock(&l->mu);
}
