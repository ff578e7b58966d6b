/* fx_int: what the fixture's files share and no test may see — the node,
 * network and checker state, and the calls between fx_*.c.
 *
 * Must never be included outside tests/raft/fixture.c and tests/raft/fx_*.c.
 */
#ifndef RAFTKV_FX_INT_H
#define RAFTKV_FX_INT_H

#include "fixture.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A write's tag has this bit: a refusal then names which kind it was. */
#define FX_WRITE_TAG (UINT64_C(1) << 63)

typedef unsigned long long ull; /* printf of uint64_t without PRIu64 noise */

/* An entry payload, interned so equal payloads share one pointer: state
 * machines and snapshots are then arrays of pointers, cheap to copy and to
 * compare. data is NUL-terminated so NORMAL entries read as C strings. */
typedef struct {
    uint64_t hash;
    uint32_t len;
    uint8_t type;
    uint8_t data[];
} fx_blob;

/* One log position as the fixture keeps it (disk log, state machine). */
typedef struct {
    raft_term term;
    const fx_blob *b;
} fx_slot;

/* Log-matching witness: the first (payload, previous term) seen for an
 * (index, term) pair. Any later sighting must agree. */
typedef struct {
    raft_term term, prev_term;
    const fx_blob *b;
} fx_lm_ent;

typedef struct {
    fx_lm_ent *v;
    size_t n, cap;
} fx_lm_slot;

typedef struct {
    uint64_t ctx;
    raft_index min_index; /* highest index applied anywhere when asked */
    raft_index index;
    bool done;
} fx_read;

typedef struct {
    uint64_t at; /* deliver at this step (random mode) */
    raft_msg m;  /* m.entries is ents: headers whose data are interned blobs */
    raft_entry *ents;
    fx_slot *snap; /* RAFT_MSG_SNAP: the sender's snapshot data */
} fx_qmsg;

typedef struct {
    raft_id id;
    bool exists, up;
    raft *r;
    uint32_t incarnation;
    raft_conf boot_conf;
    /* emulated disk: survives fx_crash */
    raft_hard_state hs;
    raft_snapshot_meta snap;
    fx_slot *snap_sm; /* snap.index slots */
    fx_slot *log;     /* log[k] is index snap.index + 1 + k */
    size_t n_log, cap_log;
    /* volatile: lost on fx_crash */
    fx_slot *sm; /* sm[i - 1] is index i */
    raft_index applied;
    size_t cap_sm;
    fx_slot *pending_snap; /* data of the last SNAP message received */
    raft_index pending_snap_n;
    fx_read *reads;
    size_t n_reads, cap_reads;
    uint64_t next_ctx; /* the random schedule's read rounds, per life */
    uint64_t conf_tags; /* tags given to this node's conf changes, ever */
    uint64_t write_tags; /* ... and to its writes (FX_WRITE_TAG set) */
    raft_term leader_checked; /* term in which completeness was checked */
    raft_index durable_commit; /* commit persisted before the current Ready */
    raft_conf sm_conf; /* membership as of `applied`, from the applied entries */
    /* A leader's Ready whose messages left before its fsync, which has not
     * finished: nothing of it is on disk yet (see fx_node.c). */
    bool parked;
    raft_ready parked_rd;
    /* The background snapshot job (node.c's kv_snapjob): a copy of the
     * state machine at job_index, adopted once the step reaches job_due. */
    bool job;
    raft_index job_index;
    uint64_t job_due;
    fx_slot *job_data;
    raft_index snap_trigger; /* node.c's last_snapshot_index */
} fx_node;

struct fx {
    fx_options o;
    uint64_t rng;
    uint64_t step;
    fx_node nodes[FX_MAX_NODES + 1];
    raft_conf boot; /* the bootstrapped conf of nodes 1..n_nodes */
    fx_stats stats;
    bool cut[FX_MAX_NODES + 1][FX_MAX_NODES + 1];
    bool held[FX_MAX_NODES + 1][FX_MAX_NODES + 1]; /* fx_hold: queued, not sent */
    fx_qmsg *q;
    size_t n_q, cap_q;
    bool faults; /* drop/duplicate/delay apply (random mode only) */
    bool calm;   /* random mode, healthy window: no drops */
    fx_blob **blobs; /* open-addressing hash set */
    size_t n_blobs, cap_blobs;
    fx_slot *committed; /* committed[i - 1]: what index i applied as */
    raft_index n_committed;
    size_t cap_committed;
    fx_lm_slot *lm; /* lm[i - 1] */
    size_t cap_lm;
    raft_id *leaders; /* leaders[term] */
    size_t cap_leaders;
    FILE *trace;
    bool failed;
    char err[600];
};

/* ---- fixture.c: failures, memory, PRNG, payloads, node lookup ---- */
void fx_fail(fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool fx_grow(fx *f, void *pp, size_t *cap, size_t need, size_t elem);
fx_slot *fx_slots_dup(fx *f, const fx_slot *src, size_t n);
uint64_t fx_rng_below(fx *f, uint64_t n);
bool fx_rng_chance(fx *f, double p);
/* Around every core call the node loop makes (fx_nomem.c). */
void fx_core_enter(fx *f);
void fx_core_leave(void);
const fx_blob *fx_blob_intern(fx *f, uint8_t type, const uint8_t *d, uint32_t len);
const fx_blob *fx_blob_of(fx *f, const raft_entry *e);
const char *fx_blob_text(const fx_blob *b);
fx_node *fx_node_get(fx *f, raft_id id);

/* ---- fx_node.c ---- */
void fx_node_process(fx *f, fx_node *n);
/* fx_byzantine.c: hands one hostile message from a non-member (an id from
 * FX_BYZANTINE_FIRST_ID on, never a member) to a node */
#define FX_BYZANTINE_FIRST_ID 90
void fx_byzantine_inject(fx *f);
int fx_node_start(fx *f, fx_node *n);
void fx_node_stop(fx *f, fx_node *n);
void fx_node_free(fx_node *n);
void fx_node_tick(fx *f, fx_node *n);
/* Finishes n's parked Ready, if any (its fsync completes), and drains the
 * Readies that follow: the node loop takes no input in between. */
void fx_node_unpark(fx *f, fx_node *n);

/* ---- fx_disk.c ---- */
raft_index fx_disk_last(const fx_node *n);
bool fx_disk_term(const fx_node *n, raft_index i, raft_term *t);
void fx_disk_save_hs(fx *f, fx_node *n, const raft_hard_state *hs);
void fx_disk_append(fx *f, fx_node *n, const raft_entry *es, size_t count);
void fx_disk_set_snapshot(fx *f, fx_node *n, const raft_snapshot_meta *meta,
                          const fx_slot *data);

/* ---- fx_check.c ---- */
void fx_check_commit(fx *f, fx_node *n, raft_index i, fx_slot s);
void fx_check_log_matching(fx *f, fx_node *n, raft_index i, raft_term term,
                           const fx_blob *b, raft_term prev_term);
void fx_observe_leader(fx *f, fx_node *n);
/* Membership after applying the first `count` slots of data (n->boot_conf
 * when count is 0: a fresh node knows none); false if a conf entry does
 * not decode. */
bool fx_conf_at(fx *f, const fx_node *n, const fx_slot *data, raft_index count,
                raft_conf *out);
bool fx_conf_same(const raft_conf *a, const raft_conf *b);
/* Applies one conf entry's payload to c (invalid changes leave it, as in
 * the core); false if it does not decode. */
bool fx_conf_step(raft_conf *c, const fx_blob *b);

/* ---- fx_net.c ---- */
void fx_qmsg_free(fx_qmsg *qm);
void fx_net_send(fx *f, fx_node *n, const raft_msg *m);
int fx_net_deliver_due(fx *f, bool all);
void fx_net_drop_to(fx *f, raft_id id);

#endif
