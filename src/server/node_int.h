/* node_int: struct node, and the node functions more than one file of
 * src/server/ calls that have no smaller header of their own. Nothing
 * outside src/server/ includes this. Must never grow a helper that only
 * one file uses: that one stays static in its file. */
#ifndef RAFTKV_NODE_INT_H
#define RAFTKV_NODE_INT_H

#include "kv/kv.h"
#include "raft/raft.h"
#include "server/config.h"
#include "server/inbox.h"
#include "server/lease_clock.h"
#include "server/node.h"
#include "server/peer_order.h"
#include "server/waiters.h"
#include "storage/storage.h"
#include "transport/transport.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>

struct node {
    const config *cfg;
    uint64_t cluster_id;
    raft *r;
    storage *st;
    kv *kv;
    transport *tp;
    inbox in;
    waiters w;
    uint64_t next_seq;
    uint64_t next_read_ctx;
    uint64_t request_timeout_ms;
    uint64_t next_tick_ms;
    uint64_t commit_due_ms; /* leader: when an untold commit goes out alone (0: none) */
    uint64_t next_trim_ms; /* next look at the heap's free memory */
    raft_index last_snapshot_index;
    uint64_t log_bytes; /* entry bytes applied since the last snapshot began */
    kv_snapjob *snapjob;       /* a snapshot being written in the background */
    storage_snapshot snap;
    bool removed;
    /* ids removed from the cluster (never reused); read by transport
     * threads through is_removed, hence the lock */
    pthread_mutex_t removed_mu;
    uint64_t *removed_ids;
    size_t n_removed;
    atomic_bool told_removed; /* a peer answered 410 Gone */
    atomic_bool stop;
    /* published state for node_get_info */
    pthread_mutex_t info_mu;
    node_info info;
    uint64_t last_leader_ms;
    uint64_t proposals_total, applied_total, reads_total, read_rounds_total;
    uint64_t proposals_refused_total; /* forwarded, and the leader said no */
    peer_order order; /* pipelined peer batches put back in order */
    lease_clock leases;
    bool lease_leader; /* was leader at the last lease tick */
    watch_hub *hub;    /* told each applied revision; outlives the api */
    uint64_t db_size;  /* kv.db's size at the last tick, against --quota-bytes */
    /* The disk was full at the last write (raft.db or kv.db): the Ready is
     * held (not advanced) and offered again next turn; read by api threads
     * to refuse writes that add data at once. */
    atomic_bool disk_full;
    bool reserve_held; /* node thread: <data-dir>/space.reserve is ours (reserve.c) */
    bool reserve_warned;
    uint64_t next_reserve_ms;
    bool ready_held;   /* this turn's Ready could not be written: stop for now */
    raft_hard_state durable_hs; /* the last hard state written (term, vote) */
    uint64_t next_alarm_check_ms;
    uint32_t alarms_logged; /* alarm bits whose raising was logged this episode */
    uint64_t alarm_proposed_ms[4]; /* by alarm type: when last proposed */
    /* the corruption checker's thread (corrupt_check.c) */
    pthread_t check_thread;
    pthread_mutex_t check_mu;
    pthread_cond_t check_cond;
    bool check_stop, check_started;
    /* failover.c */
    raft_id seen_leader;       /* the leader at the last turn (0: none yet) */
    raft_term seen_term;
    atomic_bool stop_asked;    /* SIGTERM/SIGINT: hand over, then stop */
    bool handing_off;
    uint64_t handoff_deadline;
    struct move_waiter *moves; /* move-leader requests waiting */
    /* flush.c: kv.db's applied batches not committed yet */
    atomic_bool flush_wanted;    /* a reader waits for them (kv_visible.c) */
    bool must_flush;             /* membership moved in this batch */
    uint64_t unflushed_since_ms; /* 0: everything applied is committed */
    raft_entry *kept;            /* their entries, in case the commit is lost */
    size_t n_kept, cap_kept, kept_bytes;
    bool replay_due;             /* a commit was lost: apply kept again first */
    uint64_t next_replay_ms;
    uint64_t kv_flushes_total;
};

/* recovery.c: opens the data dir and builds the Raft core from it. */
int node_recover(node *n);
/* reserve.c: the disk space held back for committed entries */
bool node_reserve_make(node *n); /* false: no space for it */
bool node_reserve_ready(node *n);  /* held, or made now */
bool node_reserve_release(node *n); /* true if space was given back */
void node_reserve_tick(node *n, uint64_t now); /* tries again while it is missing */
/* lease_expiry.c, each tick: extend all on becoming leader, then propose
 * due revokes. */
void node_lease_tick(node *n, uint64_t now);
/* flush.c: committing kv.db's applied batches (see there) */
int node_flush(node *n);                  /* 0, or -1 on a full disk */
int node_flush_before_apply(node *n);     /* lost batches applied again: 0, or -1 */
void node_flush_after_apply(node *n, const raft_entry *ents, size_t cnt, bool must);
void node_flush_turn(node *n, uint64_t now);
void node_flush_note_lost(node *n); /* after a kv rollback */
uint64_t node_flush_deadline(const node *n); /* 0: nothing to flush */
void node_want_flush(void *ud);
void node_flush_forget(node *n); /* kv.db replaced by a snapshot */
void node_flush_free(node *n);
/* removed.c: the set of removed member ids */
int removed_load(node *n);
int removed_add(node *n, uint64_t id);
bool removed_has(node *n, uint64_t id);
void removed_free(node *n);

#endif
