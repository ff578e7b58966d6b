/* kv_members: the membership table as of the applied index — applying
 * membership changes (in the apply batch) and a member's new peer URL (the
 * MEMBER_URL command), and listing members (readers).
 * Must never judge whether a change is safe: Raft did that before commit;
 * this only records the outcome deterministically. */
#include "kv/kv_internal.h"

#include <stdlib.h>
#include <string.h>

#define KV_MAX_URL_LEN 4096

static int member_put(kv *k, uint64_t id, const char *url, bool learner)
{
    size_t n = url ? strnlen(url, KV_MAX_URL_LEN + 1) : 0;
    if (n == 0 || n > KV_MAX_URL_LEN)
        return KV_ERR_INVALID;
    sqlite3_stmt *st = kv_stmt(&k->w, KV_ST_MEMBER_PUT);
    if (!st || sqlite3_bind_int64(st, 1, (int64_t)id) ||
        sqlite3_bind_text(st, 2, url, (int)n, SQLITE_STATIC) || sqlite3_bind_int(st, 3, learner))
        return KV_ERR_INTERNAL;
    return kv_step_done(&k->w, st) < 0 ? KV_ERR_INTERNAL : KV_OK;
}

/* REMOVE and PROMOTE of an unknown id change nothing: KV_ERR_NOT_FOUND. */
static int member_update(kv *k, enum kv_stmt_id id_stmt, uint64_t id)
{
    sqlite3_stmt *st = kv_stmt(&k->w, id_stmt);
    if (!st || sqlite3_bind_int64(st, 1, (int64_t)id) || kv_step_done(&k->w, st) < 0)
        return KV_ERR_INTERNAL;
    return sqlite3_changes(k->w.db) > 0 ? KV_OK : KV_ERR_NOT_FOUND;
}

/* A removed id is remembered for good: ids are never reused (a node that
 * replayed its own old removal would stop), and peers can tell a removed
 * node that it is gone. */
static int member_remove(kv *k, uint64_t id)
{
    int rc = member_update(k, KV_ST_MEMBER_DEL, id);
    if (rc != KV_OK)
        return rc;
    sqlite3_stmt *st = kv_stmt(&k->w, KV_ST_REMOVED_PUT);
    if (!st || sqlite3_bind_int64(st, 1, (int64_t)id) || kv_step_done(&k->w, st) < 0)
        return KV_ERR_INTERNAL;
    return KV_OK;
}

/* Returns KV_OK, KV_ERR_INVALID / KV_ERR_NOT_FOUND (nothing changed), or
 * KV_ERR_INTERNAL (SQLite failure or no open batch). */
static int member_op(kv *k, int op, uint64_t id, const char *peer_url)
{
    switch (op) {
    case KV_MEMBER_ADD: return member_put(k, id, peer_url, false);
    case KV_MEMBER_ADD_LEARNER: return member_put(k, id, peer_url, true);
    case KV_MEMBER_REMOVE: return member_remove(k, id);
    case KV_MEMBER_PROMOTE: return member_update(k, KV_ST_MEMBER_PROMOTE, id);
    default: return KV_ERR_INVALID;
    }
}

/* An internal failure (disk full told apart) poisons the batch: a half
 * applied change (no savepoint here) must never commit. */
int kv_apply_member(kv *k, int op, uint64_t id, const char *peer_url)
{
    if (!k->in_batch)
        return KV_ERR_INTERNAL;
    if (id == 0)
        return KV_ERR_INVALID;
    k->w.fail_code = 0;
    int rc = member_op(k, op, id, peer_url);
    if (rc == KV_ERR_INTERNAL) {
        rc = kv_fail_code(k->w.fail_code);
        if (k->batch_err == KV_OK)
            k->batch_err = rc;
    }
    return rc;
}

/* Steps a listing statement on a read transaction of c; push appends each
 * row as element n of *arr (-1: out of memory). On failure the caller
 * frees the *n elements already there. */
typedef int (*push_row_fn)(sqlite3_stmt *st, void **arr, size_t n);

static int list_rows(kv_conn *c, enum kv_stmt_id id, push_row_fn push, void **arr, size_t *n)
{
    *arr = NULL;
    *n = 0;
    if (kv_read_begin(&c->d) < 0)
        return KV_ERR_INTERNAL;
    sqlite3_stmt *st = kv_stmt(&c->d, id);
    int rc = st ? SQLITE_ROW : SQLITE_ERROR;
    while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (push(st, arr, *n) < 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        (*n)++;
    }
    if (st)
        sqlite3_reset(st);
    kv_read_end(&c->d);
    return rc == SQLITE_DONE ? KV_OK : KV_ERR_INTERNAL;
}

static int push_member(sqlite3_stmt *st, void **arr, size_t n)
{
    if (kv_grow(arr, n, sizeof(kv_member)) < 0)
        return -1;
    kv_member *m = (kv_member *)*arr + n;
    const char *url = (const char *)sqlite3_column_text(st, 1);
    m->id = (uint64_t)sqlite3_column_int64(st, 0);
    m->is_learner = sqlite3_column_int(st, 2) != 0;
    m->peer_url = xstrdup(url ? url : "");
    return m->peer_url ? 0 : -1;
}

int kv_members(kv_conn *c, kv_member **out, size_t *n)
{
    int rc = list_rows(c, KV_ST_MEMBER_LIST, push_member, (void **)out, n);
    if (rc != KV_OK) {
        kv_members_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int push_id(sqlite3_stmt *st, void **arr, size_t n)
{
    if (kv_grow(arr, n, sizeof(uint64_t)) < 0)
        return -1;
    ((uint64_t *)*arr)[n] = (uint64_t)sqlite3_column_int64(st, 0);
    return 0;
}

int kv_removed_members(kv_conn *c, uint64_t **out, size_t *n)
{
    int rc = list_rows(c, KV_ST_REMOVED_LIST, push_id, (void **)out, n);
    if (rc != KV_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int kv_member_url_apply(kv *k, const kv_cmd *c, kv_result *res)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(k->w.db, "UPDATE kv_members SET peer_url = ?2 WHERE id = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return KV_ERR_INTERNAL;
    sqlite3_bind_int64(st, 1, (int64_t)c->member_id);
    sqlite3_bind_text(st, 2, c->member_url, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        k->w.fail_code = rc;
        return KV_ERR_INTERNAL;
    }
    if (sqlite3_changes(k->w.db) == 0) {
        res->err = KV_ERR_NOT_FOUND;
        return KV_OK;
    }
    res->member_id = c->member_id;
    return (res->member_url = xstrdup(c->member_url)) ? KV_OK : KV_ERR_INTERNAL;
}
