/* waiters: the requests the node loop owes an answer (waiters.c) —
 * proposals waiting to be applied, reads waiting for a read index and then
 * for apply. Node thread only; must never answer a request twice. */
#ifndef RAFTKV_WAITERS_H
#define RAFTKV_WAITERS_H

#include "raft/raft.h"
#include "server/node.h"
#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct pending {
    struct pending *next;      /* list links (all pending), so that taking */
    struct pending *prev;      /* one on apply costs O(1), not a scan */
    struct pending *hnext;     /* hash bucket link */
    uint64_t seq;
    uint64_t deadline;
    bool proposed;             /* false: waiting for a leader to propose to */
    bool is_conf;
    buf entry;                 /* the entry payload (for retry), or conf change */
    node_write_cb wcb;
    node_done_cb dcb;
    void *ud;
} pending;

#define PENDING_BUCKETS 4096

typedef struct read_waiter {
    struct read_waiter *next;
    uint64_t ctx;      /* 0: not asked yet */
    uint64_t asked_ms;
    raft_index index;  /* set once confirmed: wait for apply >= index */
    bool confirmed;
    uint64_t deadline;
    node_done_cb cb;
    void *ud;
} read_waiter;

typedef struct {
    pending *all;
    pending *buckets[PENDING_BUCKETS];
    read_waiter *reads;
} waiters;

void waiters_add(waiters *w, pending *p);
pending *waiters_find(waiters *w, uint64_t seq); /* or NULL; stays linked */
pending *waiters_take(waiters *w, uint64_t seq); /* unlinks and returns, or NULL */
void waiters_free_pending(pending *p);
/* Answers p with an error status, then frees it. */
void waiters_fail_pending(pending *p, int status);
/* Fails (and frees) every pending/read past its deadline, or all if all. */
void waiters_expire(waiters *w, uint64_t now, bool all, int status);

#endif
