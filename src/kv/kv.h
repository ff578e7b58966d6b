/* kv: the replicated key-value state machine — MVCC on SQLite, in
 * <data-dir>/kv.db, with etcd's data model.
 *
 * Owns: keys and their history (one global revision, +1 per write
 * transaction; create_revision, mod_revision, version, lease per key;
 * deletes as tombstones), the compact revision, the applied Raft index and
 * term (stored in the same SQLite transaction as each applied batch), the
 * membership table (id, peer URL, learner flag), the alarms (NOSPACE,
 * CORRUPT), and the command encoding that travels in Raft entries.
 *
 * Integrity: every stored key-value row carries a CRC-32C of its key,
 * value and metadata, written with the row and verified on every read that
 * returns it (ranges, txn reads and compares, prev_kv, history, lease
 * keys, kv_hash) and on every row of a snapshot file kv writes or
 * restores. A mismatch is never returned as data: the call fails with
 * KV_ERR_CORRUPT, names the key and revision in kv_conn_errmsg() /
 * kv_errmsg(), and kv_corruption_seen() turns true for the node to raise
 * the CORRUPT alarm.
 *
 * Must never: talk to Raft, the network or HTTP; block on anything but
 * SQLite. Apply is deterministic: the same commands in the same order give
 * the same revisions, results and bytes on every node. Commands come from
 * the log, so apply treats them as untrusted bytes.
 *
 * Threads: apply, snapshot and restore run on the node thread only (a
 * background snapshot copies on a thread of its own, started and polled
 * from the node thread). Reads
 * run on any thread through a kv_conn from kv_reader_acquire() (SQLite WAL
 * readers never block the writer).
 */
#ifndef RAFTKV_KV_H
#define RAFTKV_KV_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kv kv;
typedef struct kv_conn kv_conn;

enum kv_err {
    KV_OK = 0,
    KV_ERR_INTERNAL = -1,  /* SQLite failure: a bug or a broken disk */
    KV_ERR_INVALID = -2,   /* malformed command or request */
    KV_ERR_COMPACTED = -3, /* requested revision is compacted */
    KV_ERR_FUTURE_REV = -4, /* requested revision is beyond the current one */
    KV_ERR_NOT_FOUND = -5, /* a lease named by a command does not exist */
    KV_ERR_EXISTS = -6,    /* LEASE_GRANT of an id already granted */
    KV_ERR_CORRUPT = -7,   /* a stored row failed its checksum (never served) */
    KV_ERR_NO_SPACE = -8,  /* refusal: a NOSPACE alarm is active (deterministic) */
    KV_ERR_NO_SPACE_DISK = -9, /* internal: the disk is full (SQLITE_FULL, ENOSPC) */
    KV_ERR_PERMISSION = -10, /* refusal: the user may not touch these keys (auth) */
    KV_ERR_AUTH = -11,     /* refusal: the user is gone or its token is stale (auth) */
    KV_ERR_IDEM_REUSED = -12, /* refusal: an Idempotency-Key reused for another request */
};

/* The short snake_case name of a kv_err code; never NULL. */
const char *kv_strerror(int code);

/* Error classes, for the node's apply loop:
 *  - refusals are deterministic — every replica refuses the same command
 *    the same way — and arrive in kv_result.err with a KV_OK return:
 *    KV_ERR_INVALID, COMPACTED, FUTURE_REV, NOT_FOUND, EXISTS, NO_SPACE,
 *    PERMISSION, AUTH, IDEM_REUSED.
 *    The node answers the client and goes on.
 *  - internal errors are local to this node and arrive as the return value
 *    of kv_apply_cmd / kv_apply_member / kv_apply_commit:
 *    KV_ERR_INTERNAL (SQLite or IO failure), KV_ERR_NO_SPACE_DISK (disk
 *    full: the node should also propose a NOSPACE alarm), KV_ERR_CORRUPT
 *    (a row read during apply failed its checksum: CORRUPT alarm). The
 *    failed command changed nothing, the batch can no longer commit
 *    (kv_apply_commit rolls it back and returns the first such error), and
 *    the node must stop applying (fail-stop): replicas that did not fail
 *    went on, so this one may not answer or apply past the entry. */
static inline bool kv_err_internal(int rc)
{
    return rc == KV_ERR_INTERNAL || rc == KV_ERR_NO_SPACE_DISK || rc == KV_ERR_CORRUPT;
}

/* A key-value as etcd shows it. Bytes are owned by the containing list. */
typedef struct {
    uint8_t *key;
    uint32_t key_len;
    uint8_t *value;
    uint32_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
} kv_kv;

typedef struct {
    kv_kv *items;
    size_t n;
} kv_list;
void kv_list_free(kv_list *l);

/* ---- requests ---- */

/* A key range in etcd's convention: end == NULL (has_end false) names the
 * single key; an end of one zero byte names every key >= key; otherwise
 * [key, end). kv_prefix_end() gives the end for a prefix. */
typedef struct {
    const uint8_t *key;
    uint32_t key_len;
    bool has_end;
    const uint8_t *end;
    uint32_t end_len;
} kv_span;

/* Writes the range end for "every key starting with prefix" into out
 * (capacity prefix_len + 1, or 1); returns its length. */
uint32_t kv_prefix_end(const uint8_t *prefix, uint32_t prefix_len, uint8_t *out);

/* Limits the encoders and apply enforce (etcd's default max-txn-ops is 128;
 * the byte limits keep every value well below SQLite's own limits). */
#define KV_MAX_TXN_OPS 128
#define KV_MAX_KEY_LEN (64u * 1024u)
#define KV_MAX_VALUE_LEN (256u * 1024u * 1024u)

enum kv_op_type { KV_OP_RANGE = 1, KV_OP_PUT = 2, KV_OP_DELETE = 3 };

typedef struct {
    uint8_t type; /* enum kv_op_type */
    kv_span span; /* PUT: single key only */
    /* PUT */
    const uint8_t *value;
    uint32_t value_len;
    int64_t lease;
    /* PUT, DELETE: return the previous key-values */
    bool prev_kv;
    /* RANGE */
    int64_t limit; /* 0 = none */
    int64_t rev;   /* 0 = current (inside a txn: the txn's read view) */
    bool keys_only;
    bool count_only;
} kv_op;

enum kv_cmp_target { KV_CMP_VALUE = 1, KV_CMP_VERSION, KV_CMP_CREATE, KV_CMP_MOD, KV_CMP_LEASE };
enum kv_cmp_result { KV_CMP_EQUAL = 1, KV_CMP_NOT_EQUAL, KV_CMP_GREATER, KV_CMP_LESS };

/* Compares one key (etcd: a missing key has version/create/mod/lease 0 and
 * no value; a VALUE compare against a missing key is false). */
typedef struct {
    const uint8_t *key;
    uint32_t key_len;
    uint8_t target; /* enum kv_cmp_target */
    uint8_t result; /* enum kv_cmp_result */
    int64_t number; /* VERSION, CREATE, MOD, LEASE */
    const uint8_t *value; /* VALUE */
    uint32_t value_len;
} kv_compare;

typedef struct {
    size_t n_compare;
    const kv_compare *compare;
    size_t n_success;
    const kv_op *success;
    size_t n_failure;
    const kv_op *failure;
} kv_txn;

/* ---- command encoding (what a Raft entry carries) ---- */

/* A put is a txn with one PUT op; a conditional put adds a compare and a
 * RANGE failure op. Encoders validate and return KV_ERR_INVALID for a
 * request that apply would reject, so bad input is refused before it is
 * proposed. */
/* Both append to out (left unchanged on failure). Within one branch a key
 * may be written once: two PUTs of a key, or a PUT inside a DELETE range,
 * are KV_ERR_INVALID (as in etcd). RANGE ops inside a txn see the txn's
 * own earlier writes (as in etcd). */
int kv_encode_txn(const kv_txn *t, buf *out);
int kv_encode_compact(int64_t revision, buf *out);

/* ---- results ---- */

typedef struct {
    uint8_t type;    /* enum kv_op_type */
    kv_list kvs;     /* RANGE: the kvs; PUT/DELETE with prev_kv: previous kvs */
    int64_t count;   /* RANGE: keys in range (before limit) */
    bool more;       /* RANGE: limit cut the answer */
    int64_t deleted; /* DELETE: keys deleted */
} kv_op_result;

typedef struct {
    int err;          /* enum kv_err: KV_OK unless the command was refused */
    int64_t revision; /* store revision after the command */
    int64_t compact_revision; /* for KV_ERR_COMPACTED */
    bool succeeded;   /* txn: compares held */
    size_t n_ops;
    kv_op_result *ops;
    /* lease commands: what changed, so the node can move its expiry clock */
    uint8_t lease_op; /* enum kv_lease_op */
    int64_t lease_id;
    int64_t lease_ttl; /* GRANTED, KEPT: the lease's TTL in seconds */
    uint32_t alarms;   /* ALARM_*: active alarm types afterwards (KV_ALARM_BIT) */
    bool replayed;     /* IDEM: the kept result of an earlier run, nothing ran */
    bool kept;         /* IDEM (kv internal): a refusal whose keeping must stand */
    uint64_t member_id; /* MEMBER_URL applied: the member */
    char *member_url;   /* ... and its new URL (owned; kv_result_free) */
} kv_result;
void kv_result_free(kv_result *r);

/* ---- lifecycle ---- */

/* Opens (creating if absent) the database at path. Refuses a damaged one
 * with a message in err. */
int kv_open(const char *path, kv **out, char *err, size_t errlen);
void kv_close(kv *k);
/* Starts writing kv.db's log out in the background as batches commit
 * (kv_flusher.c), until kv_close; for the node, not for one-shot tools.
 * -1 if the thread cannot start (the node runs on without it). */
int kv_start_wal_flusher(kv *k);
/* Background write-outs started so far (0 without a flusher). */
uint64_t kv_wal_flushes(const kv *k);

/* Applied Raft index and term as committed with the last batch. */
void kv_applied(kv *k, uint64_t *index, uint64_t *term);
int64_t kv_revision(kv *k);         /* current revision (node thread) */
int64_t kv_compact_revision(kv *k); /* (node thread) */

/* ---- apply (node thread) ---- */

/* Batches apply in one SQLite transaction: begin, any number of
 * kv_apply_cmd / kv_apply_member, then kv_apply_commit with the index and
 * term of the last entry of the batch. */
int kv_apply_begin(kv *k);
/* Applies one command. *res is filled for the waiting client (free with
 * kv_result_free); a refused command (res->err != KV_OK) changes nothing
 * and returns KV_OK. Returns an internal error (kv_err_internal(): see
 * "Error classes" above; res->err then holds it too) only for a local
 * failure; then the node must stop. While a NOSPACE alarm is active, a
 * command that adds data (a txn with a PUT in either branch, LEASE_GRANT)
 * is refused with KV_ERR_NO_SPACE; deletes, compaction, lease revoke and
 * keepalive, and alarm commands still apply. */
int kv_apply_cmd(kv *k, const uint8_t *cmd, size_t len, kv_result *res);
enum kv_member_op { KV_MEMBER_ADD = 1, KV_MEMBER_ADD_LEARNER, KV_MEMBER_REMOVE, KV_MEMBER_PROMOTE };
/* KV_OK; KV_ERR_INVALID (id 0, unknown op, no URL) or KV_ERR_NOT_FOUND
 * (REMOVE/PROMOTE of an unknown id) change nothing; KV_ERR_INTERNAL or
 * KV_ERR_NO_SPACE_DISK only for a local failure (the batch then cannot
 * commit). ADD of a known id replaces its URL and role. */
int kv_apply_member(kv *k, int op, uint64_t id, const char *peer_url);
/* A member's new peer URL (etcd's MemberUpdate): a kv command, not a Raft
 * conf change — Raft knows members by id only. Applied: res->member_id
 * and res->member_url (the transport dials it from then on);
 * KV_ERR_NOT_FOUND for an unknown id. url: http(s)://host:port, at most
 * 255 bytes, else KV_ERR_INVALID. */
int kv_encode_member_url(uint64_t id, const char *url, buf *out);
/* Exactly-once (kv_once.c): records that the proposal (origin, seq) is
 * applied, inside the open batch; *seen when it was applied before
 * (within the proposer's last KV_ONCE_WINDOW sequence numbers): skip it.
 * origin or seq 0: nothing recorded. KV_OK or an internal error (the
 * batch is then poisoned like any failed apply). */
/* Whether a command must be recorded: alarms, keepalives and revokes do
 * the same when applied twice (and alarms must apply on a full disk, where
 * recording could not), so they are not. */
bool kv_cmd_needs_once(const uint8_t *cmd, size_t len);
#define KV_ONCE_WINDOW 100000u
int kv_apply_once(kv *k, uint64_t origin, uint64_t seq, bool *seen);
/* Without an open batch, opens one (an entry with no kv effect still
 * records its index). KV_OK, or an internal error (kv_err_internal()):
 * the batch is rolled back and the applied index stays where it was —
 * also when a command of the batch failed internally. */
int kv_apply_commit(kv *k, uint64_t index, uint64_t term);
/* kv_apply_commit without the commit: the batch ends (a savepoint) inside
 * the writer's open transaction, which kv_apply_flush commits later
 * (kv_visible.c). Readers see a batch only once it is flushed, and a
 * reader waits for what was applied when it asked (kv_reader_acquire). */
int kv_apply_end(kv *k, uint64_t index, uint64_t term);
/* Commits every ended batch. KV_OK (also with nothing to commit), or an
 * internal error: then those batches are rolled back, the cached state is
 * kv.db's again, and kv_take_lost says so — they must be applied again. */
int kv_apply_flush(kv *k);
bool kv_unflushed(const kv *k);
/* False while another connection writes kv.db (defrag): then the node
 * commits every batch at once, as the lock must not stay taken. */
bool kv_defer_ok(kv *k);
/* Whether ended batches were lost by a rollback since the last call. */
bool kv_take_lost(kv *k);
/* Called (from a reader's thread) when a reader waits for a flush. */
void kv_set_flush_hook(kv *k, void (*want_flush)(void *ud), void *ud);
/* open: readers do not wait for flushes (the node cannot flush now). */
void kv_gate_open(kv *k, bool open);
/* 0, or -1 when kv.db's state cannot be read back (the node must stop). */
int kv_apply_rollback(kv *k);

/* ---- snapshots (node thread) ---- */

/* Writes a consistent copy of the whole database to path (VACUUM INTO) in
 * the background, on a thread and connection of its own, while the node
 * thread goes on applying, and verifies every row's checksum in the copy
 * (KV_ERR_CORRUPT at poll: a damaged row is never shipped to a peer); the
 * file holds whatever state was
 * applied when the copy began. NULL if the thread cannot start. */
typedef struct kv_snapjob kv_snapjob;
kv_snapjob *kv_snapjob_start(kv *k, const char *path);
/* A finished background snapshot: the applied index and term it holds,
 * and the file's size and CRC-32C, summed on the job's thread in the same
 * pass that fsync'd its data (so the node thread need not read it). */
typedef struct {
    uint64_t index, term, size;
    uint32_t crc;
} kv_snapfile;
/* 1 while running; KV_OK when the file is durable, with *out filled;
 * KV_ERR_CORRUPT if a row of the copy failed its checksum (then
 * kv_corruption_seen() is true); KV_ERR_INTERNAL if it failed. */
int kv_snapjob_poll(kv_snapjob *j, kv_snapfile *out);
/* Waits for the thread and frees the job (the file is left). */
void kv_snapjob_free(kv_snapjob *j);
/* Replaces the whole state by the database file at path (SQLite backup
 * API), atomically. Refuses (KV_ERR_INVALID, nothing changed) a file that
 * is not a kv database of this format or in which any row fails its
 * checksum; err says which key and revision. Alarms come with the state. */
int kv_restore(kv *k, const char *path, char *err, size_t errlen);

/* Gives free pages back to the filesystem in small steps on a connection
 * of its own (any thread; the writer waits one step at most). *before,
 * *after: kv.db's size. KV_OK; KV_ERR_INVALID (kv.db predates incremental
 * vacuum: msg says what to do); KV_ERR_INTERNAL. */
int kv_defrag(kv *k, uint64_t *before, uint64_t *after, char *msg, size_t msglen);

/* ---- backups (kv_backup.c; kv_backup_take in kv_snapshot.c) ----
 * A backup file is kv.db's bytes, one consistent copy with every row
 * verified, followed by a KV_BACKUP_TRAILER-byte trailer holding their
 * size and CRC-32C. */
#define KV_BACKUP_TRAILER 24
typedef struct {
    int fd;            /* the copy (already unlinked): read, then close */
    uint64_t size;     /* its bytes, without the trailer */
    uint32_t crc;      /* their CRC-32C */
    int64_t revision;  /* the store revision it holds */
    uint8_t trailer[KV_BACKUP_TRAILER];
} kv_backup;
/* Takes the copy on a connection of its own (any thread; the writer goes
 * on). KV_OK; KV_ERR_CORRUPT (a row failed its checksum: msg says which,
 * and kv_corruption_seen turns true); KV_ERR_INTERNAL. */
int kv_backup_take(kv *k, kv_backup *out, char *msg, size_t msglen);
void kv_backup_frame(kv_backup *b); /* fills trailer from size and crc */
/* Checks a backup file's trailer, size and checksum and writes its
 * database to db_path (which must not exist). KV_OK; KV_ERR_INVALID (err
 * says what is wrong; nothing left at db_path); KV_ERR_INTERNAL. db_path
 * NULL: check only. Check the database itself with kv_restore before
 * using it. */
int kv_backup_extract(const char *file, const char *db_path, char *err, size_t errlen);
/* The revision stored in a database file: 0 or -1. */
int kv_backup_revision(const char *db_path, int64_t *rev);
/* Makes k's state the first state of a new cluster: keys, values,
 * revisions, leases and auth kept; members, removed ids and alarms
 * dropped; applied index 0 (the new log starts at 1). (node-less use:
 * `raftkv snapshot restore`.) */
int kv_backup_reset(kv *k);

/* ---- integrity, quota and alarms ---- */

/* What the last failure on c (a reader) or on the writer (apply, snapshot)
 * was, e.g. "checksum mismatch: key \"a\" revision 7"; "" if none. The
 * text lives until the next call on that connection. */
const char *kv_conn_errmsg(kv_conn *c);
const char *kv_errmsg(kv *k); /* (node thread) */
/* True once any connection of k found a row failing its checksum (sticky
 * until close); msg (may be NULL) gets the first one. Any thread. */
bool kv_corruption_seen(kv *k, char *msg, size_t msglen);

/* Hash of the MVCC state as of revision rev (0: current), as etcd's
 * HashKV: CRC-32C over every kv_hist row with revision <= R (R = the
 * revision hashed), in (revision, sub) order — each row's revision,
 * sub-revision and checksum, the row verified first. Replicas that applied
 * the same entries give the same hash at the same R and compact revision;
 * compare hashes only when *compact_rev agrees. *hash_rev gets R. KV_OK,
 * KV_ERR_COMPACTED (rev < compact revision), KV_ERR_FUTURE_REV,
 * KV_ERR_CORRUPT, KV_ERR_INTERNAL. One read transaction on c: it never
 * blocks the writer. */
int kv_hash(kv_conn *c, int64_t rev, uint32_t *hash, int64_t *compact_rev, int64_t *hash_rev);

/* kv.db's size as SQLite sees it: *size = page_count x page_size, *in_use
 * = (page_count - freelist_count) x page_size (what compaction + a
 * defragment could not give back). For --quota-bytes. (node thread) */
int kv_db_size(kv *k, uint64_t *size, uint64_t *in_use);

/* Alarms are replicated state (kv_alarm table: in snapshots, kept across
 * restarts): a member raises one by proposing ALARM_ACTIVATE, anyone
 * clears it with ALARM_DEACTIVATE. Neither takes a revision. */
enum kv_alarm_type { KV_ALARM_NOSPACE = 1, KV_ALARM_CORRUPT = 2 };
#define KV_ALARM_BIT(type) (1u << (type))
enum kv_alarm_action { KV_ALARM_ACTIVATE = 1, KV_ALARM_DEACTIVATE = 2 };
/* ACTIVATE: member_id != 0 (activating an active alarm changes nothing);
 * DEACTIVATE: member_id 0 clears the type for every member. type: enum
 * kv_alarm_type. KV_ERR_INVALID otherwise. Appends to out (unchanged on
 * failure). */
int kv_encode_alarm(int action, uint64_t member_id, int type, buf *out);
/* The active alarm types, as KV_ALARM_BIT(type) bits, as applied so far
 * (one relaxed atomic load: cheap enough for every request). Any thread. */
uint32_t kv_alarms_active(kv *k);
/* ALARM_DEACTIVATE commands applied since kv_open (a batch rolled back
 * still counts): whoever judged a member before a disarm knows to judge
 * it again before raising. Any thread. */
uint64_t kv_alarm_disarms(kv *k);
/* Would the NOSPACE alarm refuse this encoded command (a put, a txn with
 * a put in either branch, a lease grant)? Lets a node refuse such a write
 * before proposing it, while the alarm is active or its disk is full. */
bool kv_cmd_adds_data(const uint8_t *cmd, size_t len);
typedef struct {
    uint64_t member_id;
    int type; /* enum kv_alarm_type */
} kv_alarm;
/* Every active alarm, by member then type (malloc'd; free()). */
int kv_alarms_list(kv_conn *c, kv_alarm **out, size_t *n);

/* ---- reads (any thread) ---- */

kv_conn *kv_reader_acquire(kv *k); /* NULL on failure or when all 64 are busy (never blocks) */
void kv_reader_release(kv *k, kv_conn *c);

/* Range read at req->rev (0: current). *header_rev gets the revision the
 * read saw. Returns KV_OK, KV_ERR_COMPACTED, KV_ERR_FUTURE_REV,
 * KV_ERR_INVALID, KV_ERR_CORRUPT (a row in the answer failed its checksum:
 * no rows returned) or KV_ERR_INTERNAL. */
int kv_range(kv_conn *c, const kv_op *req, kv_op_result *out, int64_t *header_rev);
/* Current and compact revisions as seen by this connection. */
int kv_read_revisions(kv_conn *c, int64_t *revision, int64_t *compact_revision);

typedef struct {
    uint64_t id;
    char *peer_url;
    bool is_learner;
} kv_member;
/* Members as of the applied index (malloc'd; free with kv_members_free). */
int kv_members(kv_conn *c, kv_member **out, size_t *n);
void kv_members_free(kv_member *m, size_t n);
/* Ids removed from the cluster, ever (malloc'd array; free()). */
int kv_removed_members(kv_conn *c, uint64_t **out, size_t *n);

/* ---- history (for watch) ---- */

enum kv_event_type { KV_EVENT_PUT = 0, KV_EVENT_DELETE = 1 };
typedef struct {
    uint8_t type;  /* enum kv_event_type */
    kv_kv kv;      /* DELETE: key, mod_revision = the deleting revision */
    bool has_prev;
    kv_kv prev_kv;
} kv_event;
typedef struct {
    kv_event *items;
    size_t n;
} kv_event_list;
void kv_event_list_free(kv_event_list *l);

/* Events in span with revision >= from_rev, in revision order, whole
 * revisions only, stopping after max_events or once the events hold
 * KV_HISTORY_MAX_BYTES of keys and values, prev_kv's included (but never
 * in the middle of a revision; at least one whole revision if any). The
 * byte cap bounds what one watch answer or hub scan holds in memory: 1 000
 * events of 32 MiB values would otherwise be read, and rendered, at once.
 * *next_rev gets the revision to resume from: last returned revision + 1
 * when a cap cut the answer, else max(current revision + 1, from_rev).
 * KV_ERR_COMPACTED if from_rev <= compact revision; KV_ERR_CORRUPT if a
 * returned record (or its prev_kv) failed its checksum. */
#define KV_HISTORY_MAX_BYTES (4u << 20)
int kv_history(kv_conn *c, const kv_span *span, int64_t from_rev, size_t max_events,
               bool with_prev, kv_event_list *out, int64_t *next_rev);

/* ---- leases ----
 *
 * A lease is replicated state: (id, ttl in seconds) in kv.db, so it
 * survives restart and snapshot install. Expiry is not kv's business: the
 * leader's clock (src/server/lease_clock.c) proposes LEASE_REVOKE. A PUT
 * naming a lease that does not exist is refused whole with
 * KV_ERR_NOT_FOUND. GRANT and KEEPALIVE take no revision; REVOKE deletes
 * the lease's keys in one revision (DELETE events in history), or takes
 * none when it had no keys. */
#define KV_LEASE_MAX_ID ((INT64_C(1) << 53) - 1)
#define KV_LEASE_MAX_TTL INT64_C(9000000000)
enum kv_lease_op { KV_LEASE_NONE = 0, KV_LEASE_GRANTED, KV_LEASE_KEPT, KV_LEASE_REVOKED };

/* id in [1, KV_LEASE_MAX_ID], ttl in [1, KV_LEASE_MAX_TTL], else
 * KV_ERR_INVALID. Append to out (unchanged on failure). */
int kv_encode_lease_grant(int64_t id, int64_t ttl, buf *out);
int kv_encode_lease_revoke(int64_t id, buf *out);
int kv_encode_lease_keepalive(int64_t id, buf *out);

typedef struct {
    int64_t id;
    int64_t ttl; /* granted TTL, seconds */
} kv_lease;

/* One lease: KV_OK with *ttl, KV_ERR_NOT_FOUND (or KV_ERR_CORRUPT, from
 * a key's checksum). keys (may be NULL)
 * gets its attached keys, keys only. *header_rev: the revision read. */
int kv_lease_get(kv_conn *c, int64_t id, int64_t *ttl, kv_list *keys, int64_t *header_rev);
/* Every lease, by id (malloc'd; free()). */
int kv_lease_list(kv_conn *c, kv_lease **out, size_t *n, int64_t *header_rev);

/* ---- auth (kv_auth.c): users, roles, key permissions (etcd's model) ----
 *
 * Replicated state like alarms: AUTH commands change it; an AS command
 * runs its inner command as a user, and apply refuses it (PERMISSION, or
 * AUTH when the user is gone or its generation moved on) unless, as of
 * that point in the log, the user may touch every key the inner command
 * touches: reads (RANGE ops, compares) need read, PUT/DELETE write,
 * revoking a lease write on its keys; compaction, alarms and auth itself
 * need role root. While auth is disabled an AS command is its inner one.
 * The API wraps every client write, as user "" (anonymous) while it sees
 * auth disabled: such a write that reaches apply after auth was enabled
 * is refused (AUTH), so none slips through a member that lagged.
 * Names are 1..KV_AUTH_NAME_MAX printable ASCII bytes without ':' or '/'. */
#define KV_AUTH_NAME_MAX 128
#define KV_AUTH_HASH_MAX 256
#define KV_AUTH_SECRET_LEN 32
enum kv_perm { KV_PERM_READ = 1, KV_PERM_WRITE = 2, KV_PERM_READWRITE = 3, KV_PERM_ROOT = 4 };
enum kv_auth_op {
    KV_AUTH_USER_ADD = 1, /* name, arg = password hash */
    KV_AUTH_USER_DELETE,  /* name */
    KV_AUTH_USER_PASSWORD, /* name, arg = password hash */
    KV_AUTH_USER_GRANT,   /* name, arg = role */
    KV_AUTH_USER_REVOKE,  /* name, arg = role */
    KV_AUTH_ROLE_ADD,     /* name */
    KV_AUTH_ROLE_DELETE,  /* name */
    KV_AUTH_ROLE_GRANT,   /* name, span, perm (READ, WRITE, READWRITE) */
    KV_AUTH_ROLE_REVOKE,  /* name, span */
    KV_AUTH_ENABLE,       /* secret: the token signing key (KV_AUTH_SECRET_LEN bytes) */
    KV_AUTH_DISABLE,
};
typedef struct {
    uint8_t op; /* enum kv_auth_op */
    const char *name;
    const char *arg;
    kv_span span;
    uint8_t perm;
    const uint8_t *secret;
    uint32_t secret_len;
} kv_auth_cmd;
bool kv_auth_name_valid(const char *name);
/* Both append to out (unchanged on failure); KV_ERR_INVALID for bad input. */
int kv_encode_auth(const kv_auth_cmd *c, buf *out);
int kv_encode_as(const char *user, uint64_t gen, const uint8_t *inner, size_t len, buf *out);
/* As applied so far (one relaxed atomic load). Any thread. */
bool kv_auth_enabled(kv *k);
/* On a reader: KV_OK when user exists with generation gen and may touch s
 * with perm (s NULL: identity only; perm KV_PERM_ROOT: holds role root),
 * else KV_ERR_AUTH, KV_ERR_PERMISSION or KV_ERR_INTERNAL. */
int kv_auth_check(kv_conn *c, const char *user, uint64_t gen, const kv_span *s, int perm);
/* The user's password hash (malloc'd) and generation: KV_OK, NOT_FOUND,
 * INTERNAL (never NOT_FOUND for a read that failed: a login counts that
 * as a wrong password). */
int kv_auth_user_get(kv_conn *c, const char *name, char **hash, uint64_t *gen);
/* The token signing key while auth is enabled: KV_OK, NOT_FOUND (auth
 * is off), INTERNAL. */
int kv_auth_secret(kv_conn *c, uint8_t *out, size_t cap, size_t *len);
/* Listings, one row per (user, role) or (role, permission); a user without
 * roles or a role without permissions has one row with role / key NULL. */
enum { KV_AUTH_LIST_USERS = 0, KV_AUTH_LIST_ROLES = 1 };
typedef struct {
    char *name;
    char *role;        /* users */
    uint8_t *key, *end; /* roles: end_len 0 = the key alone */
    uint32_t key_len, end_len;
    int perm;
} kv_auth_row;
int kv_auth_list(kv_conn *c, int what, const char *name, kv_auth_row **rows, size_t *n);
void kv_auth_rows_free(kv_auth_row *rows, size_t n);

/* ---- idempotency keys (kv_idem.c) ----
 * An IDEM command runs its inner command once per key: the first time,
 * the result (refusals included) is kept with the request's fingerprint
 * and the proposer's time; the same key with the same fingerprint within
 * KV_IDEM_WINDOW_MS of it gets that result again (res->replayed) without
 * running anything; with another fingerprint, KV_ERR_IDEM_REUSED. Keys
 * older than the window are forgotten, judged by the commands' own times
 * (the same on every replica). */
#define KV_IDEM_KEY_MAX 128
#define KV_IDEM_WINDOW_MS (10u * 60u * 1000u)
int kv_encode_idem(const char *key, uint64_t fingerprint, uint64_t time_ms,
                   const uint8_t *inner, size_t len, buf *out);
/* A membership change is a Raft conf entry, not a kv command: its key
 * rides the entry as a stamp (kv_encode_idem_stamp: key, fingerprint,
 * time) and is kept when the change applies (kv_idem_keep_member, in the
 * apply batch, the member's id as the result); the API looks the key up
 * (kv_idem_find_member) after a read barrier, before proposing. Returns 1
 * and *member_id for a change kept with this fingerprint, 0 for none in
 * the window ending at now_ms, KV_ERR_IDEM_REUSED for another request's. */
int kv_encode_idem_stamp(const char *key, uint64_t fingerprint, uint64_t time_ms, buf *out);
int kv_idem_keep_member(kv *k, const uint8_t *stamp, size_t len, uint64_t member_id);
int kv_idem_find_member(kv_conn *c, const char *key, uint64_t fingerprint, uint64_t now_ms,
                        uint64_t *member_id);

/* ---- watch hub (src/kv/watch*.c; docs/API.md section 5) ----
 *
 * Who waits for which keys. The hub copies no events: a watcher is a span,
 * filters and a cursor, and whoever serves it reads kv history itself
 * (watch_fetch). A watcher with nothing left to read parks; the hub wakes
 * it (calls its fn once, unparking it) when an applied revision at or
 * after its cursor touches its span, at its deadline, or spuriously
 * (compaction, snapshot install, watch_wake_all) — a woken watcher simply
 * fetches and parks again. Parked watchers are found through an interval
 * tree of spans, never by scanning all watchers.
 * Threads: watch_notify on the node thread (cheap: records the revision
 * and signals). Matching applied events and deadlines runs on the hub's
 * own thread, reading history with a kv_conn. The rest: any thread. */
typedef struct watch_hub watch_hub;
typedef struct watch_watcher watch_watcher;
typedef struct watch_shared watch_shared;
enum watch_filter { WATCH_NOPUT = 1, WATCH_NODELETE = 2 };
/* Runs with the hub locked (on its thread, or inside watch_park or
 * watch_wake_all): must not call the hub and must not block. */
typedef void (*watch_wake_fn)(void *ud);

watch_hub *watch_hub_create(kv *k); /* NULL on failure */
void watch_hub_destroy(watch_hub *h); /* every watcher removed first */
void watch_notify(watch_hub *h, int64_t revision);
/* Copies span; NULL for an invalid span or no memory. */
watch_watcher *watch_add(watch_hub *h, const kv_span *span, unsigned filters, bool prev_kv,
                         watch_wake_fn fn, void *ud);
/* Once it returns, fn is not running and never runs again. */
void watch_remove(watch_hub *h, watch_watcher *w);
/* Parks until an event >= cursor touches the span or now_ms() reaches
 * deadline_ms (0: none). Wakes at once (inside this call) when applied
 * events at or after cursor may not have been read yet. */
void watch_park(watch_hub *h, watch_watcher *w, int64_t cursor, uint64_t deadline_ms);
void watch_wake_all(watch_hub *h);
size_t watch_count(watch_hub *h); /* registered watchers, for /metrics */

typedef struct {
    kv_event_list events; /* filtered; whole revisions only */
    int64_t next_rev;     /* the cursor after these events */
    int64_t header_rev;   /* store revision when read (>= every event) */
    int64_t compact_rev;  /* with KV_ERR_COMPACTED */
    bool more;            /* history past next_rev is stored already */
    watch_shared *shared; /* non-NULL: events are shared, read-only */
} watch_batch;
/* Reads the watcher's events from cursor on (at most about max_events,
 * never part of a revision). KV_OK, KV_ERR_COMPACTED (cursor <= compact
 * revision), KV_ERR_CORRUPT (a record failed its checksum),
 * KV_ERR_INTERNAL (also when no reader is free). */
int watch_fetch(watch_hub *h, const watch_watcher *w, int64_t cursor, size_t max_events,
                watch_batch *out);
void watch_batch_free(watch_batch *b);
/* Watchers of one span that fetch the same cursor with the same options,
 * with nothing applied in between, share one read (and may share one
 * rendering of it: the first renderer keeps its text under its tag, the
 * others append it to theirs instead of rendering). False: render it. */
bool watch_batch_text(const watch_batch *b, const void *tag, buf *out);
void watch_batch_keep_text(const watch_batch *b, const void *tag, const void *text, size_t len);

#endif
