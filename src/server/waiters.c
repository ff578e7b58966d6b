/* waiters: client requests the node loop owes an answer — proposals waiting
 * to be applied (found by sequence number through a hash) and reads waiting
 * for a read index and then for apply. Each is answered exactly once:
 * applied, failed, or expired at its deadline. Must never be touched off
 * the node thread: there is no lock. */
#include "server/waiters.h"

#include <stdlib.h>

void waiters_add(waiters *w, pending *p)
{
    size_t b = p->seq % PENDING_BUCKETS;
    p->hnext = w->buckets[b];
    w->buckets[b] = p;
    p->prev = NULL;
    p->next = w->all;
    if (w->all)
        w->all->prev = p;
    w->all = p;
}

static void unlink_all(waiters *w, pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        w->all = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

pending *waiters_find(waiters *w, uint64_t seq)
{
    pending *p = w->buckets[seq % PENDING_BUCKETS];
    while (p && p->seq != seq)
        p = p->hnext;
    return p;
}

pending *waiters_take(waiters *w, uint64_t seq)
{
    for (pending **pp = &w->buckets[seq % PENDING_BUCKETS]; *pp; pp = &(*pp)->hnext) {
        pending *p = *pp;
        if (p->seq == seq) {
            *pp = p->hnext;
            unlink_all(w, p);
            return p;
        }
    }
    return NULL;
}

void waiters_free_pending(pending *p)
{
    buf_free(&p->entry);
    free(p);
}

void waiters_fail_pending(pending *p, int status)
{
    if (p->wcb)
        p->wcb(p->ud, status, NULL);
    else if (p->dcb)
        p->dcb(p->ud, status);
    waiters_free_pending(p);
}

static void expire_pending(waiters *w, uint64_t now, bool all, int status)
{
    pending *p = w->all, *next;
    for (; p; p = next) {
        next = p->next;
        if (all || now >= p->deadline) {
            waiters_take(w, p->seq);
            waiters_fail_pending(p, status);
        }
    }
}

static void expire_reads(waiters *w, uint64_t now, bool all, int status)
{
    read_waiter **pp = &w->reads;
    while (*pp) {
        read_waiter *rw = *pp;
        if (all || now >= rw->deadline) {
            *pp = rw->next;
            rw->cb(rw->ud, status);
            free(rw);
        } else {
            pp = &rw->next;
        }
    }
}

void waiters_expire(waiters *w, uint64_t now, bool all, int status)
{
    expire_pending(w, now, all, status);
    expire_reads(w, now, all, status);
}
