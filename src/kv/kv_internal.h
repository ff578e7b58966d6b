/* kv_internal.h: private to src/kv/ — the SQLite connection wrapper with
 * its lazily prepared statements, the store and reader structs, and the
 * helpers the kv source files share. Must never be included from outside
 * src/kv/: other modules see only kv.h. */
#ifndef RAFTKV_KV_INTERNAL_H
#define RAFTKV_KV_INTERNAL_H

#include "kv/kv.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

/* 2: every kv_cur / kv_hist row carries a CRC-32C (kv_row.c); kv_alarm. */
#define KV_FORMAT_VERSION 2
#define KV_POOL_MAX 64

/* Every statement the module runs more than once. Rows of the kv-shaped
 * selects share one column layout (see kv_kv_from_row). */
enum kv_stmt_id {
    KV_ST_BEGIN,
    KV_ST_BEGIN_IMMEDIATE,
    KV_ST_COMMIT,
    KV_ST_ROLLBACK,
    KV_ST_SAVEPOINT,
    KV_ST_RELEASE,
    KV_ST_ROLLBACK_TO,
    KV_ST_META_GET,
    KV_ST_META_SET,
    KV_ST_CUR_GET,
    KV_ST_CUR_SCAN,
    KV_ST_CUR_PUT,
    KV_ST_CUR_DEL,
    KV_ST_HIST_ADD,
    KV_ST_HIST_AT,
    KV_ST_HIST_FROM,
    KV_ST_HIST_KEY_FROM,
    KV_ST_HIST_PREV,
    KV_ST_COMPACT,
    KV_ST_MEMBER_PUT,
    KV_ST_MEMBER_DEL,
    KV_ST_MEMBER_PROMOTE,
    KV_ST_MEMBER_LIST,
    KV_ST_REMOVED_PUT,
    KV_ST_REMOVED_LIST,
    KV_ST_LEASE_GET,
    KV_ST_LEASE_PUT,
    KV_ST_LEASE_DEL,
    KV_ST_LEASE_LIST,
    KV_ST_LEASE_KEYS,
    KV_ST_ALARM_PUT,
    KV_ST_ALARM_DEL,
    KV_ST_ALARM_DEL_TYPE,
    KV_ST_ALARM_LIST,
    KV_ST_EXECUTED_ADD,
    KV_ST_EXECUTED_TRIM,
    KV_ST_COUNT
};

/* Column layout of kv-shaped rows: key, create_rev, mod_rev, version,
 * lease, value, tomb (0 for kv_cur rows) and the row's CRC-32C. */
enum { KV_COL_KEY, KV_COL_CREATE, KV_COL_MOD, KV_COL_VERSION, KV_COL_LEASE, KV_COL_VALUE, KV_COL_TOMB,
       KV_COL_CRC };

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *st[KV_ST_COUNT];
    kv *owner;     /* told of corruption found through this connection */
    int fail_code; /* SQLite code of the last failed write (SQLITE_FULL: disk full) */
    char msg[256]; /* the last corruption or failure, for kv_errmsg */
    /* a pool connection keeps its read transaction between reads while
     * nothing commits (kv_pool.c): the view, and its revisions, as of
     * commit generation held_gen */
    bool reuse, held, revs_cached;
    uint64_t held_gen;
    int64_t cached_rev, cached_compact;
} kv_db;

struct kv_conn {
    kv_db d;
    bool in_use;
};

/* kv_flusher.c: writes kv.db's log out as batches commit, off the node thread */
typedef struct kv_flusher kv_flusher;
kv_flusher *kv_flusher_start(const char *db_path);
void kv_flusher_note(kv_flusher *f);
uint64_t kv_flusher_passes(kv_flusher *f);
void kv_flusher_stop(kv_flusher *f);

struct kv {
    kv_db w; /* the writer: apply, snapshot, restore (node thread) */
    int64_t rev, compact;
    uint64_t applied_index, applied_term;
    bool in_batch;
    /* kv_visible.c: the writer's transaction stays open across batches
     * until kv_apply_flush commits it; readers see only what is flushed */
    bool tx_open;
    bool lost; /* batches applied since the last flush were rolled back */
    uint64_t flushed_index, flushed_term;
    atomic_uint_fast64_t applied_seen; /* applied index, for the readers' gate */
    atomic_uint_fast64_t visible;      /* applied index readers can see */
    atomic_bool gate_off;              /* kv_gate_open: readers do not wait */
    atomic_int other_writers;          /* kv_defrag running: commit every batch */
    atomic_uint_fast64_t commit_gen;   /* writer commits so far (kv_pool.c's held views) */
    pthread_mutex_t vis_mu;
    pthread_cond_t vis_cv;
    void (*want_flush)(void *ud);
    void *want_ud;
    pthread_t writer; /* the thread that applies (set by kv_apply_begin) */
    atomic_bool writer_set;
    int batch_err; /* an internal error in this batch: it must not commit */
    atomic_uint alarms; /* active alarm types (1u << type), as applied so far */
    atomic_uint_fast64_t disarms; /* ALARM_DEACTIVATE commands applied since open */
    atomic_bool auth_on; /* auth enabled, as applied so far */
    atomic_bool corrupt_seen;
    char corrupt_msg[256]; /* the first corruption found (under pool_mu) */
    char *path;
    kv_flusher *flusher; /* NULL unless kv_start_wal_flusher */
    pthread_mutex_t pool_mu;
    kv_conn *pool[KV_POOL_MAX];
    size_t n_pool;
};

/* A decoded command; spans and values point into the command bytes. */
enum { KV_CMD_TXN = 1, KV_CMD_COMPACT = 2, KV_CMD_LEASE_GRANT = 3, KV_CMD_LEASE_REVOKE = 4,
       KV_CMD_LEASE_KEEPALIVE = 5, KV_CMD_ALARM_ACTIVATE = 6, KV_CMD_ALARM_DEACTIVATE = 7,
       KV_CMD_AUTH = 8, KV_CMD_AS = 9, KV_CMD_IDEM = 10, KV_CMD_MEMBER_URL = 11 };
typedef struct {
    int kind;
    int64_t lease_id, lease_ttl; /* LEASE_*: ttl for GRANT only */
    kv_txn txn;
    kv_compare *cmp;
    kv_op *ops;  /* success */
    kv_op *fops; /* failure */
    int64_t compact_rev;
    uint64_t alarm_member; /* ALARM_*: 0 in DEACTIVATE = every member */
    uint8_t alarm_type;
    kv_auth_cmd auth;       /* AUTH; name and arg are owned copies */
    char *as_user;          /* AS: owned */
    uint64_t as_gen;
    const uint8_t *inner;   /* AS, IDEM: the inner command's bytes (not decoded) */
    size_t inner_len;
    uint64_t member_id;     /* MEMBER_URL */
    char *member_url;       /* MEMBER_URL: owned */
    char *idem_key;         /* IDEM: owned */
    uint64_t idem_fp, idem_ts;
} kv_cmd;

/* kv_db.c */
void kv_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int kv_db_open(kv_db *d, const char *path, int flags, char *err, size_t errlen);
void kv_db_close(kv_db *d);
sqlite3_stmt *kv_stmt(kv_db *d, enum kv_stmt_id id);
int kv_step_done(kv_db *d, sqlite3_stmt *st);
int kv_exec(kv_db *d, enum kv_stmt_id id);
int kv_bind_bytes(sqlite3_stmt *st, int idx, const uint8_t *p, uint32_t n);
int kv_query_int(kv_db *d, const char *sql, int64_t *v);
int kv_meta_get(kv_db *d, const char *name, int64_t *v);
int kv_meta_set(kv_db *d, const char *name, int64_t v);
int kv_read_begin(kv_db *d);
void kv_read_end(kv_db *d);
int kv_load_revs(kv_db *d, int64_t *rev, int64_t *compact);

/* kv_schema.c: 0 valid, 1 empty database, -1 refused (message in err) */
int kv_schema_verify(kv_db *d, bool full, char *err, size_t errlen);
int kv_schema_create(kv_db *d);
/* Creates what later versions of format 2 added (the auth tables): 0/-1 */
int kv_schema_upgrade(kv_db *d);

/* kv_span.c */
int kv_key_cmp(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen);
bool kv_span_past(const kv_span *s, const uint8_t *key, uint32_t len);
bool kv_span_contains(const kv_span *s, const uint8_t *key, uint32_t len);
bool kv_span_valid(const kv_span *s);

/* kv_cmd.c */
int kv_op_validate(const kv_op *o);
int kv_txn_validate(const kv_txn *t);
int kv_cmd_decode(const uint8_t *p, size_t len, kv_cmd *out);
void kv_cmd_free(kv_cmd *c);

/* kv_lists.c */
int kv_grow(void **arr, size_t n, size_t elem);
/* Every row st yields, each made into one elem-sized item by fill, appended
 * to *arr (*n items). KV_OK once st is done, else KV_ERR_INTERNAL; the
 * caller resets or finalizes st and frees *arr either way. */
int kv_collect_rows(sqlite3_stmt *st, void **arr, size_t *n, size_t elem,
                    void (*fill)(sqlite3_stmt *st, void *item));
/* Both verify the row's CRC first: KV_OK, KV_ERR_CORRUPT (nothing
 * copied) or KV_ERR_INTERNAL (no memory). */
int kv_kv_from_row(kv_db *d, sqlite3_stmt *st, kv_kv *out, bool with_value);
void kv_kv_free(kv_kv *x);
int kv_list_push_row(kv_db *d, kv_list *l, sqlite3_stmt *st, bool with_value);

/* kv_read.c: a range over d as of revision `cur` of the open transaction;
 * kv_cur_get: KV_OK (with *found), KV_ERR_CORRUPT or KV_ERR_INTERNAL */
int kv_range_view(kv_db *d, const kv_op *req, int64_t cur, int64_t compact, kv_op_result *out);
int kv_cur_get(kv_db *d, const uint8_t *key, uint32_t len, kv_kv *out, bool *found);

/* kv_txn.c, kv_compact.c: run inside the apply savepoint; return KV_OK
 * (res->err tells a refusal) or KV_ERR_INTERNAL */
int kv_txn_apply(kv *k, const kv_txn *t, kv_result *res);
int kv_compact_apply(kv *k, int64_t revision, kv_result *res);

/* lease_apply.c: the LEASE_* commands (inside the apply savepoint), and
 * the check a PUT with a lease runs (0, or -1 on SQLite failure) */
int kv_lease_apply(kv *k, const kv_cmd *c, kv_result *res);
int kv_lease_exists(kv_db *d, int64_t id, bool *found);
/* lease_read.c: appends the lease's keys (keys only, each verified) in key
 * order: KV_OK, KV_ERR_CORRUPT or KV_ERR_INTERNAL */
int kv_lease_keys(kv_db *d, int64_t id, kv_list *keys);

/* kv_auth.c: AUTH commands (inside the apply savepoint); the check an AS
 * command's inner command passes (KV_OK, KV_ERR_PERMISSION, KV_ERR_AUTH,
 * KV_ERR_INTERNAL); the enabled flag from the tables (open, restore) */
int kv_auth_apply(kv *k, const kv_auth_cmd *c, kv_result *res);
int kv_auth_cmd_allowed(kv *k, const char *user, uint64_t gen, const kv_cmd *inner);
int kv_auth_load(kv *k);

/* kv_apply.c: runs an inner command (AS, IDEM) in the same savepoint, as
 * user (NULL: no check) */
int kv_run_inner(kv *k, const uint8_t *cmd, size_t len, const char *user, uint64_t gen,
                 kv_result *res);
/* kv_members.c: a MEMBER_URL command */
int kv_member_url_apply(kv *k, const kv_cmd *c, kv_result *res);
/* kv_idem.c: an IDEM command */
int kv_idem_run(kv *k, const kv_cmd *c, kv_result *res);
/* kv_cmd.c: a membership change's stamp (idem_key, idem_fp, idem_ts) */
int kv_decode_idem_stamp(const uint8_t *p, size_t len, kv_cmd *c);

/* kv_store.c: reloads the cached revisions and applied state */
int kv_load_state(kv *k);
/* kv_visible.c */
void kv_visible_init(kv *k);
void kv_visible_destroy(kv *k);
void kv_wait_visible(kv *k);
void kv_note_applied(kv *k);
void kv_other_writer(kv *k, bool on);
/* The writer's transaction is rolled back with every batch not flushed
 * (k->lost says if any was): the cached state is kv.db's again. -1 if it
 * cannot be read back: the node must stop. Failpoint kv.reload. */
int kv_lose_uncommitted(kv *k);
/* kv_apply.c: a failpoint that fired, as the writer's failure (KV_OK if not) */
int kv_failpoint_error(kv *k, const char *name);
/* kv_pool.c: the writer committed: held read views are old now */
void kv_pool_committed(kv *k);

/* kv_row.c: row checksums. kv_row_crc over a row's key, value and
 * metadata (mod = the revision of a kv_hist row, tomb 0 for kv_cur);
 * kv_row_check verifies a kv-shaped row (KV_OK, or KV_ERR_CORRUPT with the
 * key and revision in d->msg and the owner told); kv_verify_rows checks
 * every row of a database (restore, snapshots). */
typedef struct {
    const uint8_t *key, *value;
    uint32_t key_len, value_len;
    int64_t create, mod, version, lease;
    bool tomb;
} kv_row;
uint32_t kv_row_crc(const kv_row *r);
int kv_row_check(kv_db *d, sqlite3_stmt *st);
int kv_verify_rows(kv_db *d, char *err, size_t errlen);
void kv_note_corrupt(kv *k, const char *msg);

/* kv_alarm.c: ALARM_* commands (inside the apply savepoint) and the mask
 * of active types, loaded from kv_alarm (open, restore, rollback) */
int kv_alarm_apply(kv *k, const kv_cmd *c, kv_result *res);
int kv_alarm_load(kv *k);

/* kv_apply.c: the error an internal failure on d stands for (disk full or
 * other), also used for the kv.write failpoint */
int kv_fail_code(int err);

/* kv_pool.c */
void kv_pool_close(kv *k);

#endif
