/* node: the node loop — the one thread that owns the Raft core. It turns
 * client requests into proposals and read-index rounds, persists each Ready
 * (one SQLite transaction and one fsync for many proposals: group commit),
 * sends messages only after that, applies committed entries to kv, takes
 * snapshots, and completes waiting requests.
 *
 * This header is the node's face to the API and to main. Every call here is
 * thread-safe and never blocks on Raft: requests go into a bounded inbox and
 * their callback runs later, on the node thread, exactly once — with
 * NODE_OK or an error (no leader, timeout, shutting down...). Callbacks must
 * not block: store the result and wake the connection.
 */
#ifndef RAFTKV_NODE_H
#define RAFTKV_NODE_H

#include "kv/kv.h"
#include "server/config.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct node node;

enum node_status {
    NODE_OK = 0,
    NODE_ERR_NO_LEADER = -1,    /* 503: no leader known */
    NODE_ERR_TIMEOUT = -2,      /* 503: not committed/confirmed in time */
    NODE_ERR_STOPPING = -3,     /* 503: shutting down */
    NODE_ERR_BUSY = -4,         /* 503: inbox full; try again */
    NODE_ERR_CONF_PENDING = -5, /* 409: another membership change is in progress */
    NODE_ERR_INVALID = -6,      /* 400: e.g. promoting a voter, an id reused */
    NODE_ERR_INTERNAL = -7,     /* 500 */
    NODE_ERR_NOT_FOUND = -8,    /* 404: unknown member */
    NODE_ERR_NOT_READY = -9,    /* 409: the learner to promote has not caught up */
    NODE_ERR_URL_EXISTS = -10,  /* 409: a member already has the peer URL to add */
};
/* The snake_case reason clients see for a status (node_err.c); never NULL. */
const char *node_strerror(int status);

/* Result of a write: ownership of *res passes to the callee (kv_result_free).
 * res is NULL unless status == NODE_OK. */
typedef void (*node_write_cb)(void *ud, int status, kv_result *res);
typedef void (*node_done_cb)(void *ud, int status);

/* Proposes an encoded kv command (kv_encode_*); copied. The callback fires
 * once the entry is committed and applied on this node. */
void node_propose(node *n, const uint8_t *cmd, size_t len, node_write_cb cb, void *ud);
/* Linearizable read barrier: the callback fires once this node has applied
 * everything committed before the call (ReadIndex; concurrent barriers
 * share one quorum round). Then read kv through a reader. */
void node_read_barrier(node *n, node_done_cb cb, void *ud);
/* Membership change (op: enum kv_member_op). id 0 with an ADD means "pick
 * the next free id"; the chosen id is passed back through *chosen_id before
 * the callback fires (may be NULL). stamp: an Idempotency-Key's
 * (kv_encode_idem_stamp), kept when the change applies, or NULL. */
void node_change_member(node *n, int op, uint64_t id, const char *peer_url, const buf *stamp,
                        uint64_t *chosen_id, node_done_cb cb, void *ud);

/* Message requests this node started to its peers (a batch each). */
uint64_t node_peer_requests(node *n);

/* Moves leadership to member `to` (a voter): the callback fires once it
 * leads (NODE_OK), or with NODE_ERR_TIMEOUT after two election timeouts,
 * NODE_ERR_NOT_FOUND if `to` is not a voter. */
void node_move_leader(node *n, uint64_t to, node_done_cb cb, void *ud);

typedef struct {
    uint64_t member_id;
    uint64_t cluster_id;
    uint64_t leader;
    uint64_t raft_term;
    uint64_t raft_index;   /* last log index */
    uint64_t commit_index;
    uint64_t applied_index;
    int64_t revision;
    int64_t compact_revision;
    uint64_t db_size;      /* bytes of kv.db (its pages) */
    uint64_t db_size_in_use; /* bytes of those pages holding data (not free) */
    bool is_learner;
    int role;              /* enum raft_role */
    uint64_t ms_since_apply_or_heartbeat; /* for /health */
    uint64_t proposals_total, applied_total, reads_total;
    uint64_t read_rounds_total; /* ReadIndex rounds this node asked for */
    uint64_t proposals_refused_total; /* forwarded ones the leader refused */
    uint64_t peer_batches_held_total, peer_gaps_total; /* peer_order.h */
    uint64_t kv_commits_total; /* kv.db commits of applied batches (flush.c) */
} node_info;
void node_get_info(node *n, node_info *out);
kv *node_kv(node *n);

/* Leases: the smallest TTL granted (seconds; a shorter request is raised
 * to it), and what is left of a lease by this node's clock (ms; -1 if
 * unknown or expired). */
int64_t node_lease_min_ttl(node *n);
int64_t node_lease_remaining_ms(node *n, int64_t id);
/* True while this node's disk is full (its last write of raft.db or kv.db
 * met ENOSPC); any thread. Writes that add data are then refused (507). */
bool node_disk_full(node *n);
/* The watch hub the node tells every applied revision (kv.h, watch). */
watch_hub *node_watch_hub(node *n);

/* Exit status of the process, listed in --help and the README. Only a
 * clean stop (signal, removal) is 0, so a service manager's
 * Restart=on-failure restarts a node that stopped on an error. */
enum node_exit {
    NODE_EXIT_OK = 0,       /* SIGTERM/SIGINT, or removed from the cluster */
    NODE_EXIT_START = 1,    /* could not start: data dir refused, port taken, no peer */
    NODE_EXIT_USAGE = 2,    /* bad command line */
    NODE_EXIT_STORAGE = 3,  /* a write or fsync of raft.db/kv.db failed: the files are
                               no longer trusted, the restart recovers from them */
    NODE_EXIT_APPLY = 4,    /* an internal error applying a committed entry */
    NODE_EXIT_LOG_LOST = 5, /* the log lost entries it acknowledged (rolled-back disk) */
    NODE_EXIT_INTERNAL = 6, /* out of memory or a broken invariant */
};

/* Lifecycle (main). node_run blocks until the node stops (signal, removal
 * from the cluster) and returns NODE_EXIT_OK; a fatal error never returns
 * (node_fatal exits the process at once). node_request_stop is
 * async-signal-safe. */
int node_create(const config *cfg, node **out);
int node_run(node *n);
void node_request_stop(node *n);
void node_destroy(node *n);

#endif
