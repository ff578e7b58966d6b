/* raft_int.h: the core's private state and the functions its files share.
 *
 * Owns: the layout of struct raft, the in-memory log, per-follower progress
 * and the internal cross-file entry points.
 *
 * Must never be included outside src/raft/: everything else (the node loop,
 * the tests, the simulator) sees the core only through raft.h.
 */
#ifndef RAFTKV_RAFT_INT_H
#define RAFTKV_RAFT_INT_H

#include "raft/raft.h"

/* Upper bound of the per-follower in-flight window (cfg.max_inflight is
 * clamped to it) so progress needs no allocation of its own. */
#define RAFT_INFLIGHT_CAP 256
/* Bytes of committed entries handed out per Ready (at least one entry). */
#define RAFT_READY_APPLY_BYTES (4u << 20)

/* ---- in-memory log (log.c) ---- */
typedef struct {
    raft_index offset;     /* last compacted index (entries start after it) */
    raft_term offset_term; /* its term */
    raft_entry *ents;      /* ents[i] has index offset + 1 + i */
    size_t n, cap;
    raft_index stable;     /* entries <= stable were handed out to persist */
} raft_log;

void raft_log_init(raft_log *l, raft_index offset, raft_term offset_term);
void raft_log_free(raft_log *l);
raft_index raft_log_last(const raft_log *l);
raft_term raft_log_last_term(const raft_log *l);
/* 0 and *t on success; -1 if i is compacted or beyond the end. */
int raft_log_term(const raft_log *l, raft_index i, raft_term *t);
bool raft_log_match(const raft_log *l, raft_index i, raft_term t);
const raft_entry *raft_log_at(const raft_log *l, raft_index i); /* NULL if absent */
int raft_log_append(raft_log *l, const raft_entry *e); /* copies; e->index == last+1 */
void raft_log_truncate(raft_log *l, raft_index from);  /* drops >= from */
void raft_log_compact(raft_log *l, raft_index to);     /* drops <= to */
void raft_log_reset(raft_log *l, raft_index offset, raft_term offset_term);
/* Largest index <= i whose term is <= t (offset if none is). */
raft_index raft_log_conflict_hint(const raft_log *l, raft_index i, raft_term t);
/* How many entries from `lo` fit in max_bytes (at least 1 if lo exists). */
size_t raft_log_span(const raft_log *l, raft_index lo, uint64_t max_bytes);
bool raft_log_up_to_date(const raft_log *l, raft_index idx, raft_term t);

/* ---- per-follower progress (progress.c) ---- */
enum raft_pr_state { RAFT_PR_PROBE = 0, RAFT_PR_REPLICATE = 1, RAFT_PR_SNAPSHOT = 2 };

/* Whether the follower votes is not kept here: the conf says (raft_is_voter). */
typedef struct {
    raft_id id;
    uint8_t state;         /* enum raft_pr_state */
    bool probe_sent;       /* PROBE: one message out, wait for an answer */
    bool recent_active;    /* heard from since the last quorum check */
    bool lapsed;           /* a transfer to it lapsed, and it has not answered since */
    raft_index match, next;
    raft_index pending_snapshot;
    uint64_t read_ack;     /* highest read-index round acknowledged */
    uint64_t read_ack_at;  /* when it did, on the leader's ack clock */
    raft_index commit_told; /* the commit index last sent to it */
    raft_index proposed_to; /* its forwarded proposals end here (0: none) */
    raft_index infl[RAFT_INFLIGHT_CAP]; /* last index of each in-flight APPEND */
    uint32_t infl_start, infl_count;
} raft_progress;

void raft_pr_reset(raft_progress *p, raft_id id, raft_index next);
void raft_pr_become_probe(raft_progress *p);
void raft_pr_become_replicate(raft_progress *p);
void raft_pr_become_snapshot(raft_progress *p, raft_index snap_index);
bool raft_pr_update(raft_progress *p, raft_index n); /* true if match moved */
bool raft_pr_decr(raft_progress *p, raft_index rejected, raft_index hint);
bool raft_pr_paused(const raft_progress *p, uint32_t max_inflight);
void raft_pr_sent(raft_progress *p, raft_index last); /* after an APPEND with entries */
void raft_pr_free_to(raft_progress *p, raft_index idx);
void raft_pr_free_first(raft_progress *p);

/* ---- pending read-index requests on a leader (read_index.c) ---- */
typedef struct {
    uint64_t seq;     /* heartbeat round; 0 = waiting for a commit in this term */
    raft_index index;
    uint64_t ctx;
    raft_id from;     /* requester; the leader itself for local reads */
} raft_pending_read;

/* What the last raft_ready_get handed out, so raft_advance need not trust
 * (or dereference) the caller's copy. */
typedef struct {
    bool active;
    size_t n_out, n_reads, n_refused;
    raft_index stable_to;
    raft_term stable_term;
    raft_index applied_to;
    bool snap;
    raft_hard_state hs;
} raft_handed;

struct raft {
    raft_config cfg;
    raft_id id;
    raft_term term;
    raft_id vote;
    raft_index commit, applied;
    enum raft_role role;
    raft_id leader;
    raft_id last_leader;       /* the other node that led last, and its term: */
    raft_term last_leader_term; /* a refusal it sent still counts (raft.c) */
    raft_id vouched;           /* a leader a member named that our conf lacks (raft.c) */
    raft_log log;
    raft_conf conf;            /* membership as of the applied index */
    raft_index conf_index;     /* conf was last changed at or below this index */
    raft_snapshot_meta snap;   /* latest snapshot: sent to lagging followers */
    bool snap_pending;         /* snap was received and must be installed */

    raft_progress prs[RAFT_MAX_MEMBERS]; /* leader only: every member but self */
    uint32_t n_prs;

    raft_id vote_ids[RAFT_MAX_MEMBERS];
    bool vote_granted[RAFT_MAX_MEMBERS];
    uint32_t n_votes;

    int election_elapsed, heartbeat_elapsed, timeout;
    uint64_t rng;

    raft_index pending_conf;   /* a conf entry at this index may be unapplied */
    bool log_lost;             /* a leader's commit was beyond our log: stop */
    raft_index lost_at;        /* that commit index, for the message */
    raft_id transferee;
    int transfer_elapsed;

    raft_pending_read *preads;
    size_t n_preads, cap_preads;
    uint64_t read_seq;
    uint64_t read_ack_clock; /* counts acknowledgements that raised a read_ack */
    /* lowest and highest context this instance forwarded to a leader
     * (lo > hi: none yet); answers outside are dropped (read_index.c) */
    uint64_t asked_lo, asked_hi;

    raft_msg *out;
    size_t n_out, cap_out;
    raft_read_state *reads;
    size_t n_reads, cap_reads;
    raft_refusal refused[RAFT_MAX_REFUSALS];
    size_t n_refused;

    raft_hard_state prev_hs;
    raft_handed rd;
};

/* ---- messages (msg.c) ---- */
int raft_entry_copy(raft_entry *dst, const raft_entry *src);
void raft_entry_free(raft_entry *e);
/* Gives m deep copies of src[0..n) (replacing, not freeing, m->entries);
 * on failure m has no entries. */
int raft_msg_set_entries(raft_msg *m, const raft_entry *src, uint32_t n);
/* Grows *arr (of `size`-byte items, *cap of them) so item n fits:
 * doubling, 0 or RAFT_ERR_NOMEM (the array is then left as it was). */
int raft_grow(void **arr, size_t *cap, size_t n, size_t size);
/* Queues m (taking ownership of its entries; on failure frees them). */
int raft_send(raft *r, raft_msg *m);
void raft_msg_init(raft *r, raft_msg *m, uint8_t type, raft_id to);
int raft_push_read(raft *r, raft_index index, uint64_t ctx);
void raft_outbox_drop(raft *r, size_t n_msgs, size_t n_reads);
/* Forgets the first n refusals (handed out and done). */
void raft_refusals_drop(raft *r, size_t n);

/* ---- roles and elections (election.c) ---- */
void raft_become_follower(raft *r, raft_term term, raft_id leader);
void raft_campaign(raft *r, bool transfer);
void raft_tick_election(raft *r);
void raft_tick_leader(raft *r);
/* Term bookkeeping common to every message; false = drop the message. */
bool raft_step_term(raft *r, const raft_msg *m);
void raft_handle_vote(raft *r, const raft_msg *m);
void raft_handle_vote_resp(raft *r, const raft_msg *m);
bool raft_promotable(const raft *r);
bool raft_learner_ready(raft *r, raft_id id);
uint32_t raft_quorum(const raft *r);

/* ---- replication (replication.c) ---- */
raft_progress *raft_pr_get(raft *r, raft_id id);
void raft_prs_reset(raft *r);
int raft_prs_add(raft *r, raft_id id); /* no-op if it has one */
void raft_prs_remove(raft *r, raft_id id);
bool raft_send_append(raft *r, raft_progress *p, bool allow_empty);
void raft_broadcast_append(raft *r);
void raft_broadcast_heartbeat(raft *r);
void raft_send_heartbeat(raft *r, raft_progress *p);
bool raft_maybe_commit(raft *r);
/* Appends a new entry of the leader's term with proto's type, data and crc. */
int raft_leader_append(raft *r, const raft_entry *proto);
/* The checksum of data by raft_config.checksum (0 without one). */
uint32_t raft_entry_sum(const raft *r, const uint8_t *data, uint32_t len);
void raft_handle_append(raft *r, const raft_msg *m);
void raft_handle_append_resp(raft *r, const raft_msg *m);
void raft_handle_heartbeat(raft *r, const raft_msg *m);
void raft_handle_heartbeat_resp(raft *r, const raft_msg *m);
void raft_handle_snap(raft *r, const raft_msg *m);
bool raft_committed_in_term(const raft *r);

/* ---- read index (read_index.c) ---- */
int raft_read_request(raft *r, uint64_t ctx, raft_id from);
void raft_reads_note_asked(raft *r, uint64_t ctx);
void raft_reads_on_commit(raft *r);
void raft_reads_check(raft *r);
void raft_reads_clear(raft *r);
void raft_handle_readindex_resp(raft *r, const raft_msg *m);

/* ---- leader transfer (transfer.c) ---- */
int raft_transfer_start(raft *r, raft_id to);
void raft_transfer_on_progress(raft *r, raft_progress *p);
void raft_transfer_abort(raft *r);
void raft_handle_timeout_now(raft *r, const raft_msg *m);

/* ---- proposals (raft.c) ---- */
/* Appends on the leader (checking transfer and pending-conf rules) or
 * forwards to the known leader. */
/* tag: the forwarded PROP's context, for a refusal (raft_refusal). */
int raft_propose_entry(raft *r, uint8_t type, const uint8_t *data, uint32_t len, uint64_t tag);

/* ---- membership (membership.c) ---- */
void raft_apply_conf_entry(raft *r, const raft_entry *e);
/* Leader: may a conf entry be appended now? */
bool raft_conf_may_append(const raft *r);
/* Is e a conf entry whose change names id (added, removed, promoted)? */
bool raft_conf_entry_names(const raft_entry *e, raft_id id);
/* A voter or learner of the applied conf, or named by an unapplied conf
 * entry in our log: the only nodes whose messages the core accepts. */
bool raft_is_member(const raft *r, raft_id id);
bool raft_conf_valid(const raft_conf *c);

#endif
