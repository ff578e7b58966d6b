/* raft: the consensus core, a pure state machine in the style of etcd/raft.
 *
 * Owns: terms, votes, the in-memory log (entries after the last compaction
 * point), per-follower progress, membership as of the applied index,
 * read-index bookkeeping and leader transfer.
 *
 * Must never: do I/O, read a clock, start threads, use global state or
 * randomness other than its own PRNG seeded from raft_config.seed. Time
 * passes only through raft_tick(); input arrives only through raft_step(),
 * raft_propose*(), raft_read_index(), raft_transfer_leader() and the
 * raft_report_*() calls. Everything the caller must do comes out of
 * raft_ready_get(): persist, then send, then apply, then raft_advance().
 *
 * Ownership: the core copies every byte it keeps (entries handed to
 * raft_step/raft_propose). Pointers in a raft_ready stay valid until
 * raft_advance() or raft_free(); a caller that keeps a message longer
 * copies it (the transport's send queues make their own deep copies).
 *
 * All functions returning int return 0 on success or a negative RAFT_ERR_*.
 */
#ifndef RAFTKV_RAFT_H
#define RAFTKV_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_id;    /* node id; 0 means "none" */
typedef uint64_t raft_index; /* log index; the first real entry is 1 */
typedef uint64_t raft_term;

#define RAFT_MAX_MEMBERS 32

enum raft_err {
    RAFT_OK = 0,
    RAFT_ERR_NOMEM = -1,
    RAFT_ERR_NO_LEADER = -2,   /* nobody to forward to */
    RAFT_ERR_NOT_LEADER = -3,  /* operation only a leader can do */
    RAFT_ERR_TRANSFERRING = -4, /* leader transfer in progress: proposals dropped */
    RAFT_ERR_CONF_PENDING = -5, /* a membership change is not applied yet */
    RAFT_ERR_INVALID = -6,     /* bad argument or malformed input */
    RAFT_ERR_TOO_MANY = -7,    /* membership would exceed RAFT_MAX_MEMBERS */
    RAFT_ERR_COMPACTED = -8,
    RAFT_ERR_LOG_LOST = -9,    /* raft_step: our log lost entries we acknowledged
                                  (the disk was rolled back or truncated): stop */
    RAFT_ERR_NOT_READY = -10,  /* a learner to promote has not caught up yet */
};

/* Terms and indexes are below 2^63 everywhere (messages, disk): anything at
 * or above is malformed, so term + 1 and index + 1 can never wrap. */
#define RAFT_MAX_NUMBER (UINT64_C(1) << 63)

enum raft_role {
    RAFT_FOLLOWER = 0,
    RAFT_PRE_CANDIDATE = 1,
    RAFT_CANDIDATE = 2,
    RAFT_LEADER = 3,
};

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0, /* application data; empty data = leader no-op */
    RAFT_ENTRY_CONF = 1,   /* data is an encoded raft_conf_change */
};

typedef struct {
    raft_term term;
    raft_index index;
    uint8_t type; /* enum raft_entry_type */
    uint32_t len;
    uint8_t *data; /* len bytes; NULL when len == 0 */
    uint32_t crc;  /* checksum of data, made once when the entry is proposed
                      (raft_config.checksum) and carried everywhere with it */
} raft_entry;

/* Membership. A node is a voter or a learner, never both. */
typedef struct {
    uint32_t n_voters;
    raft_id voters[RAFT_MAX_MEMBERS];
    uint32_t n_learners;
    raft_id learners[RAFT_MAX_MEMBERS];
} raft_conf;

enum raft_conf_op {
    RAFT_CONF_ADD_VOTER = 1,   /* add a new voter */
    RAFT_CONF_ADD_LEARNER = 2, /* add a non-voting member */
    RAFT_CONF_REMOVE = 3,      /* remove a voter or learner */
    RAFT_CONF_PROMOTE = 4,     /* learner -> voter */
};

/* A single-server membership change. ctx is opaque to the core (raftkv puts
 * the request id and the peer URL there); it travels inside the entry. */
typedef struct {
    uint8_t op; /* enum raft_conf_op */
    raft_id id;
    uint32_t ctx_len;
    const uint8_t *ctx;
    /* The proposer's own name for this proposal (not in the entry): a
     * follower forwards it, and a leader that refuses the change sends it
     * back in a refusal (raft_refusal). 0: no refusal is sent. */
    uint64_t tag;
} raft_conf_change;

typedef struct {
    raft_term term;
    raft_id vote;
    raft_index commit;
} raft_hard_state;

/* Describes a snapshot: the application state as of `index` (whose entry
 * had `term`), with membership `conf`. The data itself never passes through
 * the core. index == 0 means "no snapshot". */
typedef struct {
    raft_index index;
    raft_term term;
    raft_conf conf;
} raft_snapshot_meta;

enum raft_msg_type {
    RAFT_MSG_APPEND = 1,        /* index/log_term = prev entry; entries; commit */
    RAFT_MSG_APPEND_RESP = 2,   /* index = last matching index; reject + reject_hint */
    RAFT_MSG_VOTE = 3,          /* index/log_term = candidate's last entry */
    RAFT_MSG_VOTE_RESP = 4,     /* reject = vote refused */
    RAFT_MSG_PREVOTE = 5,       /* term = the term the sender would campaign in */
    RAFT_MSG_PREVOTE_RESP = 6,
    RAFT_MSG_HEARTBEAT = 7,     /* commit; context = read-index round */
    RAFT_MSG_HEARTBEAT_RESP = 8,
    RAFT_MSG_SNAP = 9,          /* snapshot = meta; data travels beside it */
    RAFT_MSG_PROP = 10,         /* follower -> leader: forwarded proposals */
    RAFT_MSG_READINDEX = 11,    /* follower -> leader: context = request ctx */
    RAFT_MSG_READINDEX_RESP = 12, /* index = read index; context; reject if not leader */
    RAFT_MSG_TIMEOUT_NOW = 13,  /* leader transfer: campaign now, skip prevote */
    RAFT_MSG_TRANSFER = 14,     /* follower -> leader: transfer request (index = target id) */
};

enum raft_msg_flag {
    RAFT_FLAG_TRANSFER = 1, /* on VOTE/PREVOTE: campaign caused by leader transfer,
                               voters must not refuse because of a live leader */
    RAFT_FLAG_LEADER_HINT = 2, /* on a refusing VOTE_RESP/PREVOTE_RESP: context
                                  is the refuser's leader */
    RAFT_FLAG_REFUSED = 4,     /* on a refusing READINDEX_RESP: not a read but a
                                  forwarded proposal the leader refused;
                                  context = its tag, reject_hint = -error. A
                                  flag, not a new type, so that a member of the
                                  previous version (which drops refused read
                                  answers) takes it during an upgrade */
};

typedef struct {
    uint8_t type; /* enum raft_msg_type */
    uint8_t flags;
    bool reject;
    raft_id from;
    raft_id to;
    raft_term term;
    raft_term log_term;
    raft_index index;
    raft_index commit;
    raft_index reject_hint;
    uint64_t context;
    uint32_t n_entries;
    raft_entry *entries;
    raft_snapshot_meta snapshot; /* RAFT_MSG_SNAP only */
} raft_msg;

/* A proposal this node forwarded and the leader refused, so never
 * appended: the tag it was proposed with, and why. A conf change:
 * RAFT_ERR_CONF_PENDING, RAFT_ERR_NOT_READY, RAFT_ERR_INVALID,
 * RAFT_ERR_TOO_MANY or RAFT_ERR_TRANSFERRING; a write: only
 * RAFT_ERR_TRANSFERRING (not now: propose it again later). stale: it came
 * from the leader of an earlier term (this node campaigned, or another
 * leader won, before it arrived); still true, but a write was proposed
 * again on the leader change already. */
typedef struct {
    uint64_t tag;
    int code;
    bool stale;
} raft_refusal;
/* Held until the Ready; more are dropped (their proposers then wait for
 * their own deadline). A member forwards at most a few hundred proposals
 * in one turn's batches. */
#define RAFT_MAX_REFUSALS 256

/* A linearizable read may be served once applied index >= index. */
typedef struct {
    raft_index index;
    uint64_t context;
} raft_read_state;

typedef struct {
    raft_id id;
    int election_tick;  /* base election timeout in ticks (e.g. 10); the
                           effective one is random in [election_tick, 2*election_tick) */
    int heartbeat_tick; /* ticks between heartbeats (e.g. 1) */
    bool pre_vote;
    bool check_quorum;
    uint32_t max_inflight;    /* in-flight APPEND messages per follower (flow control) */
    uint64_t max_msg_bytes;   /* soft cap on entry bytes per APPEND */
    uint64_t seed;            /* PRNG seed for randomized election timeouts */
    /* Checksum of an entry's data, called once per entry when it is
     * proposed (on the node that proposes it) and again by a leader to
     * check a forwarded proposal. NULL: every crc is 0 and nothing is
     * checked (the simulator). raftkv passes CRC-32C. */
    uint32_t (*checksum)(const uint8_t *data, size_t len);
    /* A leader's new commit index waits for the next APPEND or heartbeat to
     * each follower instead of going out at once in empty APPENDs; the
     * embedding sends what is still untold with raft_send_commit when no
     * append carried it soon enough (raftkv: ~1-2 ms). Saves a round of
     * messages per write when writes come one after another. */
    bool defer_commit_notice;
} raft_config;

/* What the caller recovered from stable storage. For a brand new node all
 * zero. `applied` is the application's applied index (>= snap.index), and
 * `conf` the membership as of `applied`. Entries follow snap.index
 * contiguously; the core copies them. */
typedef struct {
    raft_hard_state hs;
    raft_snapshot_meta snap;
    raft_index applied;
    raft_conf conf;
    size_t n_entries;
    const raft_entry *entries;
} raft_init_state;

typedef struct {
    /* 1. persist: hard state (if set) and entries, durably (fsync) — entries
     *    replace any stored entries at index >= entries[0].index. If
     *    has_snapshot, first install the snapshot data for `snapshot` and
     *    drop the whole stored log (the log now starts after snapshot.index). */
    bool has_hard_state;
    raft_hard_state hs;
    size_t n_entries;
    const raft_entry *entries;
    bool has_snapshot;
    raft_snapshot_meta snapshot;
    /* 2. send (only after 1 is durable) */
    size_t n_messages;
    const raft_msg *messages;
    /* 3. apply in order, then answer read states whose index is applied */
    size_t n_committed;
    const raft_entry *committed;
    size_t n_reads;
    const raft_read_state *reads;
    /* 4. fail (or, refused for a transfer, propose again) the forwarded
     *    proposals the leader refused (any time) */
    size_t n_refused;
    const raft_refusal *refused;
} raft_ready;

typedef struct raft raft;

/* Lifecycle */
int raft_new(const raft_config *cfg, const raft_init_state *init, raft **out);
void raft_free(raft *r);

/* Input */
int raft_tick(raft *r);
int raft_step(raft *r, const raft_msg *m);
/* Appends on the leader, forwards to the leader on a follower. */
int raft_propose(raft *r, const uint8_t *data, uint32_t len);
/* The same, named by tag (not in the entry; 0: none): a leader that is
 * handing leadership over sends a forwarded write's tag back in a refusal
 * (RAFT_ERR_TRANSFERRING), so its proposer can send it again rather than
 * wait for an answer that never comes. */
int raft_propose_tagged(raft *r, const uint8_t *data, uint32_t len, uint64_t tag);
int raft_propose_conf(raft *r, const raft_conf_change *cc);
/* Asks for a linearizable read point; the answer arrives as a read state
 * with the same context. Many callers may share one context. */
int raft_read_index(raft *r, uint64_t context);
int raft_transfer_leader(raft *r, raft_id to);
/* Leader with defer_commit_notice: whether some follower that could take
 * an APPEND has not been told the commit index it can use yet, and the
 * empty APPENDs that tell it (no-ops elsewhere). */
bool raft_commit_untold(const raft *r);
void raft_send_commit(raft *r);
void raft_report_unreachable(raft *r, raft_id id);
void raft_report_snapshot(raft *r, raft_id id, bool ok);

/* Output */
bool raft_has_ready(const raft *r);
int raft_ready_get(raft *r, raft_ready *rd);
/* Whether rd's messages may leave before its hard state and entries are
 * durable: only a leader's appends and heartbeats, which promise nothing
 * about its own disk (Raft thesis 10.2.1); anything else waits. */
bool raft_ready_may_send_early(const raft *r, const raft_ready *rd);
int raft_advance(raft *r, const raft_ready *rd);
/* Takes back part of the last Ready when its hard state and entries could
 * not be written (the disk was full): its messages and read states are
 * done with (sent, or dropped: Raft retransmits), and, if applied is true,
 * its committed entries too (committed entries are durable on a quorum,
 * so applying them before they are on this node's disk is safe). The next
 * Ready offers the same hard state and entries to persist again. */
int raft_advance_held(raft *r, bool applied);

/* The application snapshotted its state as of index (<= applied index),
 * possibly in the background while later entries were applied. Records that
 * snapshot (filling *meta, to be persisted by the caller) and discards
 * in-memory entries up to compact_to (<= index). Refused (INVALID) if
 * membership changed after index, since the snapshot records today's, if
 * index is older than the latest snapshot, or while a received snapshot
 * waits in a Ready. (The log keeps every index from
 * the latest snapshot on, so an accepted index is never COMPACTED.) */
int raft_snapshot_taken_at(raft *r, raft_index index, raft_index compact_to,
                           raft_snapshot_meta *meta);

/* Queries */
raft_id raft_self(const raft *r);
enum raft_role raft_role_get(const raft *r);
raft_id raft_leader(const raft *r);
raft_term raft_term_get(const raft *r);
raft_index raft_commit_index(const raft *r);
raft_index raft_applied_index(const raft *r);
raft_index raft_last_index(const raft *r);
raft_index raft_first_index(const raft *r); /* first entry still in memory */
const raft_conf *raft_conf_get(const raft *r);
bool raft_is_voter(const raft *r, raft_id id);
bool raft_is_learner(const raft *r, raft_id id);
/* Leader only: the follower's match index (0 if unknown or not leader). */
raft_index raft_match_index(const raft *r, raft_id id);
/* Leader: the voter best placed to take over, the most caught-up other
 * one, save that a voter that let a transfer lapse and has not answered
 * since comes after every other (0: none, or not leader). */
raft_id raft_best_successor(const raft *r);
/* After RAFT_ERR_LOG_LOST: the index a leader said we had acknowledged. */
raft_index raft_lost_index(const raft *r);
/* Where to compact to when a snapshot at `index` keeps a catch-up tail of
 * at most `keep` entries holding at most `max_bytes` (each entry counted
 * as its data plus 32 bytes): the tail is the entries after the returned
 * index, up to `index`. Never below the log's own compaction point. */
raft_index raft_tail_start(const raft *r, raft_index index, raft_index keep, uint64_t max_bytes);

/* Helpers */
/* Encodes a conf change; returns bytes written or 0 if cap is too small. */
size_t raft_conf_change_encode(const raft_conf_change *cc, uint8_t *out, size_t cap);
size_t raft_conf_change_size(const raft_conf_change *cc);
/* Parses untrusted bytes; cc->ctx points into data. */
int raft_conf_change_decode(const uint8_t *data, size_t len, raft_conf_change *cc);
/* Applies a change to a conf (used by the core and by the application when
 * it rebuilds conf from its own state). Invalid changes leave it as is and
 * return RAFT_ERR_INVALID. */
int raft_conf_apply(raft_conf *conf, const raft_conf_change *cc);
bool raft_conf_has(const raft_conf *conf, raft_id id);

/* Frees a message's entries (and their data) only, for a caller that gave
 * one entries of its own (the core's copies come and go with the Ready). */
void raft_msg_release(raft_msg *m);
/* Structural checks every message passes before any handler sees it: a
 * known type, a sender, entries only where they belong and contiguous, and
 * every term and index below RAFT_MAX_NUMBER. raft_step runs it; decoders
 * run it too, so a malformed message is refused at the door. */
bool raft_msg_valid(const raft_msg *m);

const char *raft_msg_type_name(int type);
/* The short snake_case name of a raft_err code; never NULL. */
const char *raft_strerror(int code);
const char *raft_role_name(enum raft_role role);

#endif
