/* node_int: the node's private parts, shared by the files of src/server/
 * (inbox, waiters, envelope, recovery, node loop). Nothing outside
 * src/server/ includes this. */
#ifndef RAFTKV_NODE_INT_H
#define RAFTKV_NODE_INT_H

#include "kv/kv.h"
#include "raft/raft.h"
#include "server/config.h"
#include "server/node.h"
#include "storage/storage.h"
#include "transport/transport.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>

/* ---- inbox: the bounded queue every other thread feeds the loop with ---- */
enum ev_kind { EV_MSGS = 1, EV_SNAP_RECV, EV_UNREACHABLE, EV_SNAP_SENT, EV_PROPOSE, EV_READ, EV_MEMBER };

typedef struct event {
    struct event *next;
    int kind;
    raft_msg *msgs; /* EV_MSGS (n), EV_SNAP_RECV (1) */
    size_t n;
    char *path;     /* EV_SNAP_RECV */
    raft_id peer;   /* EV_UNREACHABLE, EV_SNAP_SENT */
    bool ok;
    uint8_t *data;  /* EV_PROPOSE */
    size_t len;
    node_write_cb wcb;
    node_done_cb dcb;
    void *ud;
    int op;         /* EV_MEMBER */
    uint64_t id;
    char *url;
    uint64_t *chosen;
} event;

#define INBOX_MAX_EVENTS 100000

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    event *head, *tail;
    size_t count;
    bool closed; /* the loop has stopped: requests are refused at once */
} inbox;

int inbox_init(inbox *q);
void inbox_destroy(inbox *q);
/* Queues ev; returns -1 (ev untouched) if full or closed. */
int inbox_push(inbox *q, event *ev);
/* Takes every queued event, waiting until one arrives or deadline_ms
 * (monotonic) passes. */
event *inbox_take_all(inbox *q, uint64_t deadline_ms);
/* Closes the inbox and returns what was still queued. */
event *inbox_close(inbox *q);
void event_free(event *ev);
/* Completes a request event with an error (calls its callback). */
void event_fail(event *ev, int status);

/* ---- envelope: who proposed an entry, so its waiter can be found ---- */
#define ENVELOPE_HEADER 17
int envelope_wrap(buf *out, uint64_t origin, uint64_t seq, const void *payload, size_t len);
/* Parses untrusted entry bytes; payload points into data. */
int envelope_open(const uint8_t *data, size_t len, uint64_t *origin, uint64_t *seq,
                  const uint8_t **payload, size_t *plen);

/* ---- waiters: requests waiting for apply or for a read index ---- */
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
pending *waiters_take(waiters *w, uint64_t seq); /* unlinks and returns, or NULL */
void waiters_free_pending(pending *p);
/* Answers p with an error status, then frees it. */
void waiters_fail_pending(pending *p, int status);
/* Fails (and frees) every pending/read past its deadline, or all if all. */
void waiters_expire(waiters *w, uint64_t now, bool all, int status);

/* ---- leases: this node's expiry clock (lease_clock.c) and the leader's
 * revokes (lease_expiry.c) ---- */
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
/* Each tick: extend all on becoming leader, then propose due revokes. */
void node_lease_tick(node *n, uint64_t now);

/* ---- the node ---- */
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
    uint64_t next_trim_ms; /* next look at the heap's free memory */
    raft_index last_snapshot_index;
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
    lease_clock leases;
    bool lease_leader; /* was leader at the last lease tick */
    watch_hub *hub;    /* told each applied revision; outlives the api */
};

/* recovery.c: opens the data dir and builds the Raft core from it. */
int node_recover(node *n);
/* node.c helpers used by recovery */
void node_sync_peers(node *n);
/* removed.c: the set of removed member ids */
int removed_load(node *n);
int removed_add(node *n, uint64_t id);
bool removed_has(node *n, uint64_t id);
void removed_free(node *n);

#endif
