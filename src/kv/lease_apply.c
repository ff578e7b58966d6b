/* lease_apply: applying LEASE_GRANT / LEASE_KEEPALIVE / LEASE_REVOKE to
 * the lease table, and the existence check a PUT with a lease runs. Runs
 * inside kv_apply's savepoint on the node thread. Must never look at a
 * clock: expiry is decided by the leader and arrives here as a REVOKE, so
 * every node deletes the same keys at the same revision. */
#include "kv/kv_internal.h"

#include <stdlib.h>
#include <string.h>

/* *ttl gets the lease's TTL; 0 found, 1 absent, -1 SQLite failure. */
static int lease_ttl(kv_db *d, int64_t id, int64_t *ttl)
{
    sqlite3_stmt *st = kv_stmt(d, KV_ST_LEASE_GET);
    if (!st || sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *ttl = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

int kv_lease_exists(kv_db *d, int64_t id, bool *found)
{
    int64_t ttl;
    int rc = lease_ttl(d, id, &ttl);
    *found = rc == 0;
    return rc < 0 ? -1 : 0;
}

static int lease_write(kv *k, enum kv_stmt_id id, int64_t lease, int64_t ttl)
{
    sqlite3_stmt *st = kv_stmt(&k->w, id);
    if (!st || sqlite3_bind_int64(st, 1, lease) != SQLITE_OK ||
        (id == KV_ST_LEASE_PUT && sqlite3_bind_int64(st, 2, ttl) != SQLITE_OK))
        return -1;
    return kv_step_done(&k->w, st);
}

/* The lease's keys as single-key DELETE ops; their spans point into keys. */
static int delete_ops(kv *k, int64_t lease, kv_list *keys, kv_op **ops)
{
    int rc = kv_lease_keys(&k->w, lease, keys);
    if (rc != KV_OK)
        return rc;
    *ops = calloc(keys->n ? keys->n : 1, sizeof **ops);
    if (!*ops)
        return KV_ERR_INTERNAL;
    for (size_t i = 0; i < keys->n; i++)
        (*ops)[i] = (kv_op){.type = KV_OP_DELETE,
                            .span = {keys->items[i].key, keys->items[i].key_len, false, NULL, 0}};
    return KV_OK;
}

/* Deletes the attached keys as one txn (one revision, ordinary DELETE
 * records in history, so watchers see them), then the lease. A lease may
 * hold more keys than a client txn may name: this txn is built here, not
 * decoded, so the op limit does not apply. */
static int revoke(kv *k, int64_t lease, kv_result *res)
{
    kv_list keys = {0};
    kv_op *ops = NULL;
    int rc = delete_ops(k, lease, &keys, &ops);
    if (rc == KV_OK) {
        kv_txn t = {.n_success = keys.n, .success = ops};
        kv_result sub;
        memset(&sub, 0, sizeof sub);
        rc = kv_txn_apply(k, &t, &sub);
        if (rc == KV_OK && sub.err != KV_OK)
            rc = KV_ERR_INTERNAL; /* plain deletes cannot be refused */
        kv_result_free(&sub);
    }
    if (rc == KV_OK && lease_write(k, KV_ST_LEASE_DEL, lease, 0) < 0)
        rc = KV_ERR_INTERNAL;
    free(ops);
    kv_list_free(&keys);
    if (rc == KV_OK)
        res->lease_op = KV_LEASE_REVOKED;
    return rc;
}

int kv_lease_apply(kv *k, const kv_cmd *c, kv_result *res)
{
    int64_t ttl = 0;
    int found = lease_ttl(&k->w, c->lease_id, &ttl);
    if (found < 0)
        return KV_ERR_INTERNAL;
    res->lease_id = c->lease_id;
    if (c->kind == KV_CMD_LEASE_GRANT) {
        if (found == 0) {
            res->err = KV_ERR_EXISTS;
            return KV_OK;
        }
        if (lease_write(k, KV_ST_LEASE_PUT, c->lease_id, c->lease_ttl) < 0)
            return KV_ERR_INTERNAL;
        res->lease_op = KV_LEASE_GRANTED;
        res->lease_ttl = c->lease_ttl;
        return KV_OK;
    }
    if (found == 1) {
        res->err = KV_ERR_NOT_FOUND;
        return KV_OK;
    }
    if (c->kind == KV_CMD_LEASE_REVOKE)
        return revoke(k, c->lease_id, res);
    res->lease_op = KV_LEASE_KEPT;
    res->lease_ttl = ttl;
    return KV_OK;
}
