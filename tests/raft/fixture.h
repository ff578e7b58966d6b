/* fixture: a deterministic in-memory cluster for testing the Raft core.
 *
 * Owns: N raft instances driven as src/server/node.c drives one (handle_ready:
 * install a received snapshot; a leader's APPEND/HEARTBEAT-only Ready is sent
 * before its fsync, anything else after; persist; apply; answer reads;
 * advance; maybe_snapshot: snapshots copied in the background at an applied
 * index and adopted later with raft_snapshot_taken_at, which may refuse),
 * each with emulated stable storage (what a Ready asked to persist, and only
 * once its fsync finished, survives fx_crash), an emulated state machine
 * (the list of applied entries; snapshots copy it), and a network of queued
 * messages that can be dropped, delayed, duplicated, reordered, cut in either
 * direction, partitioned and healed. All randomness comes from the seed, so
 * a run replays exactly.
 *
 * Checks (fx_check, and after every step of fx_run_random): election
 * safety, log matching, leader completeness, state-machine safety, that a
 * settled node keeps nothing only in memory and has the membership its
 * applied entries make, and that every snapshot records the membership of
 * its index (a refused one must have had a reason).
 *
 * Must never: use wall time or global state; peek into raft internals
 * beyond raft.h.
 *
 * Files: fixture.c (lifecycle, shared plumbing), fx_node.c (the node loop:
 * Readies, state machine, snapshots, reads, crash/restart), fx_disk.c
 * (emulated storage), fx_net.c (network and faults), fx_check.c
 * (invariants), fx_schedule.c (random schedule, liveness); fx_int.h is
 * what they share.
 */
#ifndef RAFTKV_FIXTURE_H
#define RAFTKV_FIXTURE_H

#include "raft/raft.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FX_MAX_NODES 9

typedef struct {
    uint64_t seed;
    int n_nodes;          /* initial voters 1..n_nodes (bootstrapped conf) */
    int election_tick;    /* default 10 */
    int heartbeat_tick;   /* default 1 */
    bool pre_vote;
    bool check_quorum;
    uint32_t max_inflight; /* default 16 */
    /* network faults for fx_run_random (0 = off) */
    double drop;          /* probability a message is lost */
    double duplicate;     /* probability a message is delivered twice */
    int max_delay;        /* messages wait 0..max_delay steps (reordering) */
    /* snapshots: after applying this many entries since the last snapshot a
     * node snapshots and compacts, keeping `keep` entries (0 = never) */
    int snapshot_every;
    int snapshot_keep;
    /* As node.c's background snapshot (random mode only): the copy of the
     * state applied when it starts is adopted 0..snapshot_lag steps later
     * with raft_snapshot_taken_at (0 = at the end of the same Ready). */
    int snapshot_lag;
    /* As node.c does (raft_ready_may_send_early): a leader's Ready holding only
     * APPEND/HEARTBEAT messages is sent before its fsync; in random mode,
     * with this probability the fsync then stays unfinished ("parked") until
     * a later step, so a crash in between loses what it held. */
    double slow_fsync;
    /* Random mode: the probability that a step hands a random up node a
     * hostile message from a non-member (fx_byzantine.c), which must not
     * change its term, role, commit or log. */
    double byzantine;
    /* raft_config.defer_commit_notice on every node: a leader tells the
     * commit with raft_send_commit on each tick and, in random mode, at
     * random steps (as node.c's short timer does). */
    bool defer_commit_notice;
    /* Random mode: out of memory in the core — the probability that an
     * allocation made inside a core call (step, tick, commit notice,
     * propose, read index) fails; the call's error goes where node.c puts
     * it (a step's is ignored: a lost message). Only in a program that
     * routes malloc, calloc and realloc through fx_core_alloc_fails
     * (sim_test, linked with -Wl,--wrap). */
    double nomem;
} fx_options;

typedef struct fx fx;

fx *fx_new(const fx_options *o);
/* For the allocation wrappers of a program run with fx_options.nomem: true
 * when the allocation now asked for must fail (a core call of a fixture
 * with nomem set is running, and its seeded dice say so). */
bool fx_core_alloc_fails(void);
void fx_free(fx *f);

/* ---- manual driving (focused tests) ---- */
raft *fx_raft(fx *f, raft_id id);      /* NULL when crashed or unknown */
void fx_tick(fx *f, raft_id id);       /* one tick, then process its Ready */
void fx_tick_all(fx *f);
/* Delivers queued messages (and the Readies they cause) until the network
 * is quiet or max_rounds passes; returns messages delivered. */
int fx_deliver(fx *f, int max_rounds);
/* The current leader of the highest term, or 0. */
raft_id fx_leader(fx *f);
/* Ticks everyone and delivers until some node is leader (or max_ticks). */
raft_id fx_elect_any(fx *f, int max_ticks);

/* ---- client operations ---- */
int fx_propose(fx *f, raft_id id, const char *data); /* returns raft_propose's code */
int fx_propose_conf(fx *f, raft_id id, uint8_t op, raft_id target);
int fx_read_index(fx *f, raft_id id, uint64_t ctx);
/* True once `id` emitted a read state with ctx, or (as the node loop counts)
 * with a higher ctx after this one was asked in the same life; *index gets
 * the read index. */
bool fx_read_done(fx *f, raft_id id, uint64_t ctx, raft_index *index);
/* Applied state machine of a node: entries 1..count (snapshots included). */
raft_index fx_applied(fx *f, raft_id id);
/* Data of the applied NORMAL entry at index ("" for no-ops and conf
 * entries), or NULL if not applied. */
const char *fx_applied_data(fx *f, raft_id id, raft_index index);

/* ---- faults ---- */
void fx_cut(fx *f, raft_id from, raft_id to);   /* one direction */
void fx_isolate(fx *f, raft_id id);             /* both directions, all peers */
/* Splits nodes into `a` and everyone else. */
void fx_partition(fx *f, const raft_id *a, size_t n_a);
void fx_heal(fx *f);
/* Holds messages from -> to in the sender's queue (a link that accepts but
 * does not deliver yet, e.g. a stalled connection); they survive a crash of
 * `to` and are delivered to its next life after fx_release. */
void fx_hold(fx *f, raft_id from, raft_id to);
/* Ends the hold; returns how many messages it had kept. */
size_t fx_release(fx *f, raft_id from, raft_id to);
/* Delivers the oldest message queued from -> to, held or not; false if
 * there is none. */
bool fx_deliver_held(fx *f, raft_id from, raft_id to);
void fx_crash(fx *f, raft_id id);   /* loses everything not persisted */
void fx_restart(fx *f, raft_id id); /* rebuilds from emulated storage */
/* Creates an empty node (as --join would) not yet in any conf. */
int fx_add_node(fx *f, raft_id id);

/* ---- random schedule (simulator) ---- */
/* Runs `steps` random steps: ticks, deliveries with the configured faults,
 * proposals, read-index requests, partitions/heals, crashes/restarts and
 * (if membership is true) membership changes. Returns 0, or -1 at the first
 * invariant violation (message in fx_error). */
int fx_run_random(fx *f, int steps, bool membership);

/* What the production-like modelling did, so tests can prove it happens. */
typedef struct {
    uint64_t sent_early;    /* Readies whose messages left before their fsync */
    uint64_t parked;        /* ... whose fsync then outlived the step */
    uint64_t lost_in_fsync; /* ... and whose node crashed before it finished */
    uint64_t snaps_started; /* background snapshot copies started */
    uint64_t snaps_adopted; /* accepted by raft_snapshot_taken_at */
    uint64_t snaps_refused; /* refused by it (membership or snapshot moved on) */
    uint64_t snaps_lost;    /* lost with a crash before adoption */
    uint64_t byz_injected;  /* hostile messages from non-members handed to nodes */
    uint64_t byz_by_type[16]; /* ... by message type */
    uint64_t refusals;      /* forwarded conf changes a leader refused, heard back */
    uint64_t transfers;     /* leadership transfers asked (random schedule) */
    uint64_t transfer_refusals; /* forwarded proposals refused during one, heard back */
    uint64_t stale_refusals; /* ... heard after this node's term moved on */
    uint64_t nomem_failed;  /* allocations failed inside core calls (nomem) */
} fx_stats;
fx_stats fx_get_stats(const fx *f);

/* ---- invariants ---- */
/* 0 if all hold; -1 with a message in fx_error otherwise. */
int fx_check(fx *f);
const char *fx_error(const fx *f);
uint64_t fx_step_count(const fx *f);

/* ---- additions for the simulator (sim_test) ---- */
/* Liveness in calm conditions: heals the network, turns faults off,
 * restarts crashed nodes, stops nodes the leader's conf no longer holds (as
 * raftkv does), then needs a leader and a fresh proposal applied on every
 * running member within max_ticks. 0, or -1 with a message in fx_error. */
int fx_settle(fx *f, int max_ticks);
/* One line per event to `out` (NULL: quiet), for replaying a failing seed. */
void fx_set_trace(fx *f, FILE *out);

/* Test-only hooks that feed the checker fabricated observations, to prove
 * it is not vacuous. Each goes through the same path real Readies take. */
void fx_inject_apply(fx *f, raft_id id, raft_index index, raft_term term, const char *data);
void fx_inject_leader(fx *f, raft_id id, raft_term term);
void fx_inject_entry(fx *f, raft_id id, raft_index index, raft_term term, const char *data);

#endif
