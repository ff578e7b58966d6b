/* lease_clock: this node's in-memory lease expiry clock (lease_clock.c).
 * The node thread writes it as lease commands apply; api threads read
 * remaining TTLs. Must never decide an expiry by itself: the leader's
 * lease_expiry.c reads it to propose revokes. */
#ifndef RAFTKV_LEASE_CLOCK_H
#define RAFTKV_LEASE_CLOCK_H

#include "kv/kv.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t id;
    int64_t ttl_ms;
    uint64_t deadline;    /* monotonic ms */
    uint64_t revoke_sent; /* when a revoke was last proposed; 0: none */
} lease_entry;

typedef struct {
    pthread_mutex_t mu; /* api threads read remaining TTLs */
    lease_entry *items; /* sorted by id */
    size_t n, cap;
} lease_clock;

int lease_clock_init(lease_clock *c);
void lease_clock_destroy(lease_clock *c);
/* After a command applied: GRANT/KEEPALIVE set now + ttl, REVOKE removes. */
void lease_clock_on_apply(lease_clock *c, const kv_result *res, uint64_t now);
/* Every lease in kv at now + ttl (start, snapshot install). */
int lease_clock_reload(lease_clock *c, kv *k, uint64_t now);
void lease_clock_renew_all(lease_clock *c, uint64_t now);
/* Up to max expired leases not revoked within retry_ms; marks them sent. */
size_t lease_clock_expired(lease_clock *c, uint64_t now, uint64_t retry_ms, int64_t *ids,
                           size_t max);
int64_t lease_clock_remaining_ms(lease_clock *c, int64_t id, uint64_t now); /* -1: none */

#endif
