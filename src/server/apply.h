/* apply: committed entries into kv, and their waiters answered (apply.c).
 *
 * The work is done by node_apply_batch against an explicit environment —
 * the store, whose waiters to answer, the lease clock, and three hooks for
 * what lies beyond kv — so it can run without a whole node (the unit tests
 * do). node_apply_committed is the node's binding of it. */
#ifndef RAFTKV_APPLY_H
#define RAFTKV_APPLY_H

#include "kv/kv.h"
#include "raft/raft.h"
#include "server/lease_clock.h"
#include "server/node.h"
#include "server/waiters.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    kv *kv;
    uint64_t self;       /* entries proposed by this id have their waiter in w */
    waiters *w;
    lease_clock *leases; /* moved by every applied lease command (NULL: not) */
    void *ud;            /* passed to the hooks */
    /* a membership change is in kv (this batch, not yet committed); url is
     * NULL when it could not be copied */
    void (*conf_applied)(void *ud, const raft_conf_change *cc, const char *url);
    /* the batch of cnt entries reached kv.db; called before any of its
     * waiters is answered */
    void (*batch_applied)(void *ud, size_t cnt);
    /* the batch cannot be applied: the node must stop with code (enum
     * node_exit); the node's binding never returns */
    void (*fatal)(void *ud, int code, const char *what);
    /* the batch ends inside kv's open transaction, committed later by
     * kv_apply_flush (flush.c); false: committed before any answer */
    bool defer;
} node_apply_env;

enum node_apply_result {
    NODE_APPLY_OK = 0,      /* applied (or an internal error: fatal was called) */
    NODE_APPLY_NOSPACE = 1, /* kv.db's disk is full: nothing of the batch is in kv.db,
                               its waiters wait again; apply the same batch later */
};

/* Applies ents (committed, in order) as one kv transaction, then answers
 * their waiters: with the result once the batch reached kv.db, else with
 * NODE_ERR_STOPPING. An unreadable entry is skipped (deterministically);
 * an internal error calls fatal and commits nothing of the batch; a full
 * disk commits nothing and answers nothing (NODE_APPLY_NOSPACE). */
int node_apply_batch(const node_apply_env *env, const raft_entry *ents, size_t cnt);
/* The node's binding: peers, removed ids, counters, watchers, info. */
int node_apply_committed(node *n, const raft_entry *ents, size_t cnt);

#endif
