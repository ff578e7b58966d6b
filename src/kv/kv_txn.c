/* kv_txn: runs one decoded txn on the writer: evaluates the compares, then
 * the chosen branch, all changes sharing one revision (k->rev + 1) with a
 * sub-revision each. Must never commit or roll back: kv_apply owns the
 * transaction and the savepoint around this.
 *
 * RANGE ops see the txn's own earlier writes, as in etcd: at rev 0 they
 * read kv_cur, which already holds them, as of the txn's revision.
 * Every row written carries its CRC-32C (kv_row.c); every row read (the
 * compares, a PUT's previous value, a DELETE's keys) is verified, and a
 * mismatch fails the command with KV_ERR_CORRUPT (local, not a refusal). */
#include "kv/kv_internal.h"
#include "util/failpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    kv *k;
    int64_t rev; /* the revision this txn writes */
    int64_t sub; /* changes so far; the next change's sub-revision */
} wtx;

static int cmp_int(int64_t a, int64_t b) { return a < b ? -1 : a > b; }

static bool result_holds(uint8_t result, int c)
{
    switch (result) {
    case KV_CMP_EQUAL: return c == 0;
    case KV_CMP_NOT_EQUAL: return c != 0;
    case KV_CMP_GREATER: return c > 0;
    default: return c < 0;
    }
}

/* etcd: a missing key has version/create/mod/lease 0; a VALUE compare
 * against a missing key is false whatever the result asked. */
static int compare_holds(kv_db *d, const kv_compare *c, bool *holds)
{
    kv_kv cur;
    bool found;
    int rc = kv_cur_get(d, c->key, c->key_len, &cur, &found);
    if (rc != KV_OK)
        return rc;
    if (c->target == KV_CMP_VALUE) {
        *holds = found && result_holds(c->result, kv_key_cmp(cur.value, cur.value_len, c->value,
                                                             c->value_len));
    } else {
        int64_t have = 0;
        if (found)
            have = c->target == KV_CMP_VERSION  ? cur.version
                   : c->target == KV_CMP_CREATE ? cur.create_revision
                   : c->target == KV_CMP_MOD    ? cur.mod_revision
                                                : cur.lease;
        *holds = result_holds(c->result, cmp_int(have, c->number));
    }
    if (found)
        kv_kv_free(&cur);
    return KV_OK;
}

/* The kv.write failpoint: a row write failing as the disk would (ENOSPC,
 * EDQUOT: SQLITE_FULL, anything else: SQLITE_IOERR). */
static int write_failpoint(kv_db *d)
{
    int e = failpoint_hit("kv.write");
    if (!e)
        return 0;
    d->fail_code = e == ENOSPC || e == EDQUOT ? SQLITE_FULL : SQLITE_IOERR;
    snprintf(d->msg, sizeof d->msg, "failpoint kv.write: %s", strerror(e));
    log_error("kv: %s", d->msg);
    return -1;
}

static int hist_add(wtx *w, const uint8_t *key, uint32_t key_len, bool tomb, int64_t create,
                    int64_t version, int64_t lease, const uint8_t *value, uint32_t value_len)
{
    kv_db *d = &w->k->w;
    kv_row r = {key, value, key_len, value_len, create, w->rev, version, lease, tomb};
    sqlite3_stmt *st = kv_stmt(d, KV_ST_HIST_ADD);
    if (write_failpoint(d) < 0 || !st || sqlite3_bind_int64(st, 1, w->rev) ||
        sqlite3_bind_int64(st, 2, w->sub) || kv_bind_bytes(st, 3, key, key_len) ||
        sqlite3_bind_int(st, 4, tomb) || sqlite3_bind_int64(st, 5, create) ||
        sqlite3_bind_int64(st, 6, version) || sqlite3_bind_int64(st, 7, lease) ||
        kv_bind_bytes(st, 8, value, value_len) || sqlite3_bind_int64(st, 9, kv_row_crc(&r)))
        return -1;
    if (kv_step_done(d, st) < 0)
        return -1;
    w->sub++;
    return 0;
}

static int cur_put(kv_db *d, const kv_op *op, int64_t create, int64_t mod, int64_t version)
{
    kv_row r = {op->span.key, op->value, op->span.key_len, op->value_len, create, mod, version,
                op->lease, false};
    sqlite3_stmt *st = kv_stmt(d, KV_ST_CUR_PUT);
    if (write_failpoint(d) < 0 || !st || kv_bind_bytes(st, 1, op->span.key, op->span.key_len) ||
        sqlite3_bind_int64(st, 2, create) || sqlite3_bind_int64(st, 3, mod) ||
        sqlite3_bind_int64(st, 4, version) || sqlite3_bind_int64(st, 5, op->lease) ||
        kv_bind_bytes(st, 6, op->value, op->value_len) ||
        sqlite3_bind_int64(st, 7, kv_row_crc(&r)))
        return -1;
    return kv_step_done(d, st);
}

/* Moves one kv into a fresh one-item list (the prev_kv answer). */
static int list_of_one(kv_list *l, kv_kv *x)
{
    if (kv_grow((void **)&l->items, 0, sizeof *l->items) < 0)
        return -1;
    l->items[0] = *x;
    l->n = 1;
    memset(x, 0, sizeof *x);
    return 0;
}

static int run_put(wtx *w, const kv_op *op, kv_op_result *r)
{
    kv_kv old;
    bool found;
    if (op->lease != 0) { /* an unknown (or already revoked) lease refuses the txn */
        if (kv_lease_exists(&w->k->w, op->lease, &found) < 0)
            return KV_ERR_INTERNAL;
        if (!found)
            return KV_ERR_NOT_FOUND;
    }
    int rc = kv_cur_get(&w->k->w, op->span.key, op->span.key_len, &old, &found);
    if (rc != KV_OK)
        return rc;
    rc = KV_ERR_INTERNAL;
    /* A hostile snapshot could hold any version; never overflow it. */
    if (found && (old.version < 0 || old.version == INT64_MAX))
        goto out;
    int64_t create = found ? old.create_revision : w->rev;
    int64_t version = found ? old.version + 1 : 1;
    if (cur_put(&w->k->w, op, create, w->rev, version) < 0 ||
        hist_add(w, op->span.key, op->span.key_len, false, create, version, op->lease, op->value,
                 op->value_len) < 0)
        goto out;
    if (found && op->prev_kv && list_of_one(&r->kvs, &old) < 0)
        goto out;
    rc = KV_OK;
out:
    if (found)
        kv_kv_free(&old);
    return rc;
}

static int delete_one(wtx *w, const kv_kv *x)
{
    kv_db *d = &w->k->w;
    sqlite3_stmt *st = kv_stmt(d, KV_ST_CUR_DEL);
    if (!st || kv_bind_bytes(st, 1, x->key, x->key_len) < 0 || kv_step_done(d, st) < 0)
        return -1;
    return hist_add(w, x->key, x->key_len, true, 0, 0, 0, NULL, 0);
}

/* Collects the keys first (a range read), then deletes them: never modify
 * a table under an open scan of it. */
static int run_delete(wtx *w, const kv_op *op, kv_op_result *r)
{
    kv_op q = {.type = KV_OP_RANGE, .span = op->span};
    kv_op_result found;
    int rc = kv_range_view(&w->k->w, &q, w->k->rev, w->k->compact, &found);
    if (rc != KV_OK)
        return rc == KV_ERR_CORRUPT ? rc : KV_ERR_INTERNAL;
    for (size_t i = 0; i < found.kvs.n && rc == KV_OK; i++)
        if (delete_one(w, &found.kvs.items[i]) < 0)
            rc = KV_ERR_INTERNAL;
    r->deleted = (int64_t)found.kvs.n;
    if (op->prev_kv)
        r->kvs = found.kvs;
    else
        kv_list_free(&found.kvs);
    return rc;
}

static int run_op(wtx *w, const kv_op *op, kv_op_result *r)
{
    r->type = op->type;
    switch (op->type) {
    case KV_OP_PUT: return run_put(w, op, r);
    case KV_OP_DELETE: return run_delete(w, op, r);
    default: {
        int64_t view = w->sub ? w->rev : w->k->rev;
        return kv_range_view(&w->k->w, op, view, w->k->compact, r);
    }
    }
}

static int compares_hold(kv *k, const kv_txn *t, bool *all)
{
    *all = true;
    int rc = KV_OK;
    for (size_t i = 0; i < t->n_compare && *all && rc == KV_OK; i++)
        rc = compare_holds(&k->w, &t->compare[i], all);
    return rc;
}

int kv_txn_apply(kv *k, const kv_txn *t, kv_result *res)
{
    bool ok;
    int cmp_rc = compares_hold(k, t, &ok);
    if (cmp_rc != KV_OK)
        return cmp_rc;
    res->succeeded = ok;
    size_t n = ok ? t->n_success : t->n_failure;
    const kv_op *ops = ok ? t->success : t->failure;
    res->ops = calloc(n ? n : 1, sizeof *res->ops);
    if (!res->ops)
        return KV_ERR_INTERNAL;
    res->n_ops = n;
    wtx w = {k, k->rev + 1, 0};
    for (size_t i = 0; i < n; i++) {
        int rc = run_op(&w, &ops[i], &res->ops[i]);
        if (kv_err_internal(rc))
            return rc;
        if (rc != KV_OK) { /* a RANGE at a compacted or future revision, a PUT's lease */
            res->err = rc;
            return KV_OK;
        }
    }
    /* Only a txn that changed something takes a revision (etcd). */
    if (w.sub > 0) {
        if (kv_meta_set(&k->w, "revision", w.rev) < 0)
            return KV_ERR_INTERNAL;
        k->rev = w.rev;
    }
    return KV_OK;
}
