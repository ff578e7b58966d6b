/* kv_apply: batches of committed commands in one SQLite transaction, one
 * savepoint per command so a refused or failing command changes nothing
 * while the rest of the batch stands; the applied index and term commit in
 * the same transaction. Must never run outside the node thread, and must
 * keep the cached revisions equal to what the database will hold. */
#include "kv/kv_internal.h"

#include <string.h>

int kv_apply_begin(kv *k)
{
    if (k->in_batch) {
        log_error("kv: apply batch already open");
        return KV_ERR_INTERNAL;
    }
    if (kv_exec(&k->w, KV_ST_BEGIN_IMMEDIATE) < 0)
        return KV_ERR_INTERNAL;
    k->in_batch = true;
    k->batch_rev = k->rev;
    k->batch_compact = k->compact;
    return KV_OK;
}

static int run_cmd(kv *k, const kv_cmd *c, kv_result *res)
{
    if (c->kind == KV_CMD_TXN)
        return kv_txn_apply(k, &c->txn, res);
    if (c->kind == KV_CMD_COMPACT)
        return kv_compact_apply(k, c->compact_rev, res);
    return kv_lease_apply(k, c, res);
}

/* Undoes one command: its savepoint and the cache it may have moved. */
static int undo_cmd(kv *k, int64_t rev, int64_t compact, kv_result *res)
{
    k->rev = rev;
    k->compact = compact;
    kv_result_free(res);
    return kv_exec(&k->w, KV_ST_ROLLBACK_TO);
}

int kv_apply_cmd(kv *k, const uint8_t *cmd, size_t len, kv_result *res)
{
    memset(res, 0, sizeof *res);
    if (!k->in_batch) {
        log_error("kv: apply outside a batch");
        return KV_ERR_INTERNAL;
    }
    kv_cmd c;
    int rc = kv_cmd_decode(cmd, len, &c);
    if (rc == KV_ERR_INVALID)
        res->err = KV_ERR_INVALID;
    if (rc == KV_OK) {
        if (kv_exec(&k->w, KV_ST_SAVEPOINT) < 0) {
            kv_cmd_free(&c);
            return KV_ERR_INTERNAL;
        }
        int64_t rev = k->rev, compact = k->compact;
        rc = run_cmd(k, &c, res);
        if ((rc != KV_OK || res->err != KV_OK) && undo_cmd(k, rev, compact, res) < 0)
            rc = KV_ERR_INTERNAL;
        if (kv_exec(&k->w, KV_ST_RELEASE) < 0)
            rc = KV_ERR_INTERNAL;
        kv_cmd_free(&c);
    }
    if (rc == KV_ERR_INTERNAL)
        res->err = KV_ERR_INTERNAL;
    res->revision = k->rev;
    res->compact_revision = k->compact;
    return rc == KV_ERR_INVALID ? KV_OK : rc;
}

int kv_apply_commit(kv *k, uint64_t index, uint64_t term)
{
    /* An entry that carries no command still moves the applied index. */
    if (!k->in_batch && kv_apply_begin(k) != KV_OK)
        return KV_ERR_INTERNAL;
    if (kv_meta_set(&k->w, "applied_index", (int64_t)index) < 0 ||
        kv_meta_set(&k->w, "applied_term", (int64_t)term) < 0 ||
        kv_exec(&k->w, KV_ST_COMMIT) < 0) {
        kv_apply_rollback(k);
        return KV_ERR_INTERNAL;
    }
    k->in_batch = false;
    k->applied_index = index;
    k->applied_term = term;
    return KV_OK;
}

void kv_apply_rollback(kv *k)
{
    if (!k->in_batch)
        return;
    if (kv_exec(&k->w, KV_ST_ROLLBACK) < 0)
        log_error("kv: rollback failed");
    k->rev = k->batch_rev;
    k->compact = k->batch_compact;
    k->in_batch = false;
}
