/* lease_clock: this node's in-memory expiry clock — lease id → deadline
 * (monotonic ms). Deadlines move when GRANT / KEEPALIVE are applied, go
 * when REVOKE is applied, are rebuilt from kv.db at start and after a
 * snapshot install, and are all pushed out when this node becomes leader.
 * Must never decide anything by itself: lease_expiry.c (leader only) reads
 * it to propose revokes, the api reads remaining TTLs. Guarded by a mutex
 * because api threads read it; the node thread is the only writer.
 *
 * Entries are kept sorted by id (binary search on apply); the leader's
 * expiry scan is linear, once per tick. */
#include "server/lease_clock.h"

#include "util/util.h"

#include <stdlib.h>
#include <string.h>

int lease_clock_init(lease_clock *c)
{
    memset(c, 0, sizeof *c);
    return pthread_mutex_init(&c->mu, NULL) == 0 ? 0 : -1;
}

void lease_clock_destroy(lease_clock *c)
{
    free(c->items);
    pthread_mutex_destroy(&c->mu);
    memset(c, 0, sizeof *c);
}

/* Index of id, or of where it would go (*found false). Caller holds mu. */
static size_t find(const lease_clock *c, int64_t id, bool *found)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->items[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < c->n && c->items[lo].id == id;
    return lo;
}

static int64_t ttl_ms(int64_t ttl_s)
{
    return ttl_s > INT64_MAX / 1000 ? INT64_MAX / 1000 : ttl_s * 1000;
}

static uint64_t deadline_of(uint64_t now, int64_t ms) { return now + (uint64_t)ms; }

/* Sets id's TTL and deadline, inserting it if new. Caller holds mu. */
static int set_locked(lease_clock *c, int64_t id, int64_t ttl_s, uint64_t now)
{
    bool found;
    size_t i = find(c, id, &found);
    if (!found) {
        if (xgrow(&c->items, &c->cap, c->n, sizeof *c->items) < 0)
            return -1;
        memmove(&c->items[i + 1], &c->items[i], (c->n - i) * sizeof *c->items);
        c->n++;
    }
    lease_entry *e = &c->items[i];
    e->id = id;
    e->ttl_ms = ttl_ms(ttl_s);
    e->deadline = deadline_of(now, e->ttl_ms);
    e->revoke_sent = 0;
    return 0;
}

static void remove_locked(lease_clock *c, int64_t id)
{
    bool found;
    size_t i = find(c, id, &found);
    if (!found)
        return;
    memmove(&c->items[i], &c->items[i + 1], (c->n - i - 1) * sizeof *c->items);
    c->n--;
}

void lease_clock_on_apply(lease_clock *c, const kv_result *res, uint64_t now)
{
    if (res->err != KV_OK || res->lease_op == KV_LEASE_NONE)
        return;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    if (res->lease_op == KV_LEASE_REVOKED)
        remove_locked(c, res->lease_id);
    else
        rc = set_locked(c, res->lease_id, res->lease_ttl, now);
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) /* the lease then never expires on this node: say so loudly */
        log_error("lease %lld: out of memory in the expiry clock", (long long)res->lease_id);
}

int lease_clock_reload(lease_clock *c, kv *k, uint64_t now)
{
    kv_conn *conn = kv_reader_acquire(k);
    kv_lease *ls = NULL;
    size_t n = 0;
    int64_t rev;
    int rc = conn ? kv_lease_list(conn, &ls, &n, &rev) : KV_ERR_INTERNAL;
    if (conn)
        kv_reader_release(k, conn);
    if (rc != KV_OK)
        return -1;
    pthread_mutex_lock(&c->mu);
    c->n = 0;
    for (size_t i = 0; i < n && rc == KV_OK; i++) /* ls is sorted: appends */
        if (set_locked(c, ls[i].id, ls[i].ttl, now) < 0)
            rc = KV_ERR_INTERNAL;
    pthread_mutex_unlock(&c->mu);
    free(ls);
    return rc == KV_OK ? 0 : -1;
}

void lease_clock_renew_all(lease_clock *c, uint64_t now)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) {
        c->items[i].deadline = deadline_of(now, c->items[i].ttl_ms);
        c->items[i].revoke_sent = 0;
    }
    pthread_mutex_unlock(&c->mu);
}

size_t lease_clock_expired(lease_clock *c, uint64_t now, uint64_t retry_ms, int64_t *ids,
                           size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n && k < max; i++) {
        lease_entry *e = &c->items[i];
        if (e->deadline > now || (e->revoke_sent && now - e->revoke_sent < retry_ms))
            continue;
        e->revoke_sent = now ? now : 1;
        ids[k++] = e->id;
    }
    pthread_mutex_unlock(&c->mu);
    return k;
}

int64_t lease_clock_remaining_ms(lease_clock *c, int64_t id, uint64_t now)
{
    bool found;
    int64_t left = -1;
    pthread_mutex_lock(&c->mu);
    size_t i = find(c, id, &found);
    if (found && c->items[i].deadline > now)
        left = (int64_t)(c->items[i].deadline - now);
    pthread_mutex_unlock(&c->mu);
    return left;
}
