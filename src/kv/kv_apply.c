/* kv_apply: batches of committed commands in the writer's SQLite
 * transaction, one savepoint per command so a refused or failing command
 * changes nothing while the rest of the batch stands; the applied index
 * and term are written with the batch, and commit with it
 * (kv_apply_commit), or later with the next ones (kv_apply_end, then
 * kv_visible.c's flush). Also where refusals and internal failures part
 * ways (kv.h, "Error classes"): a refusal is res->err with KV_OK, decided
 * by the command and the replicated state alone (the NOSPACE alarm
 * included); a local failure is the return value, disk full told apart,
 * and it poisons the batch so it cannot commit. Failpoints kv.apply and
 * kv.commit live here.
 *
 * Must never run outside the node thread, must keep the cached revisions
 * and alarm mask equal to what the database will hold, and must never
 * make a refusal depend on anything local (disk, timing). */
#include "kv/kv_internal.h"
#include "util/failpoint.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The error a local failure stands for: disk full, or anything else. */
int kv_fail_code(int err)
{
    return (err & 0xff) == SQLITE_FULL ? KV_ERR_NO_SPACE_DISK : KV_ERR_INTERNAL;
}

/* A failpoint that fired: its errno as the writer's failure. */
int kv_failpoint_error(kv *k, const char *name)
{
    int e = failpoint_hit(name);
    if (!e)
        return KV_OK;
    k->w.fail_code = e == ENOSPC || e == EDQUOT ? SQLITE_FULL : SQLITE_IOERR;
    snprintf(k->w.msg, sizeof k->w.msg, "failpoint %s: %s", name, strerror(e));
    log_error("kv: %s", k->w.msg);
    return kv_fail_code(k->w.fail_code);
}

/* Internal errors keep their class: corruption, else disk full or not. */
static int classify(kv *k, int rc)
{
    if (rc == KV_ERR_INTERNAL)
        rc = kv_fail_code(k->w.fail_code);
    if (kv_err_internal(rc) && k->batch_err == KV_OK)
        k->batch_err = rc;
    return rc;
}

/* The writer's transaction stays open across batches until
 * kv_apply_flush (kv_visible.c) commits it. */
int kv_apply_begin(kv *k)
{
    if (k->in_batch) {
        log_error("kv: apply batch already open");
        return KV_ERR_INTERNAL;
    }
    if (!atomic_load(&k->writer_set)) {
        k->writer = pthread_self();
        atomic_store(&k->writer_set, true);
    }
    k->w.fail_code = 0;
    if (!k->tx_open && kv_exec(&k->w, KV_ST_BEGIN_IMMEDIATE) < 0)
        return kv_fail_code(k->w.fail_code);
    k->tx_open = true;
    k->in_batch = true;
    k->batch_err = KV_OK;
    return KV_OK;
}

static bool branch_puts(const kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i].type == KV_OP_PUT)
            return true;
    return false;
}

/* What a NOSPACE alarm refuses: what may add data. Decided from the
 * command alone (both txn branches), so every replica refuses alike. */
static bool adds_data(const kv_cmd *c)
{
    if (c->kind == KV_CMD_LEASE_GRANT)
        return true;
    return c->kind == KV_CMD_TXN &&
           (branch_puts(c->txn.success, c->txn.n_success) ||
            branch_puts(c->txn.failure, c->txn.n_failure));
}

bool kv_cmd_adds_data(const uint8_t *cmd, size_t len)
{
    kv_cmd c;
    if (kv_cmd_decode(cmd, len, &c) != KV_OK)
        return false; /* refused at apply anyway */
    bool wraps = c.kind == KV_CMD_AS || c.kind == KV_CMD_IDEM;
    bool adds = wraps ? kv_cmd_adds_data(c.inner, c.inner_len) : adds_data(&c);
    kv_cmd_free(&c);
    return adds;
}

static int run_cmd(kv *k, const kv_cmd *c, kv_result *res);

/* A command inside another (AS, IDEM): decoded, then run in the same
 * savepoint. A malformed one is a refusal like any other. */
int kv_run_inner(kv *k, const uint8_t *cmd, size_t len, const char *user, uint64_t gen,
                 kv_result *res)
{
    kv_cmd in;
    int rc = kv_cmd_decode(cmd, len, &in);
    if (rc != KV_OK) {
        if (rc != KV_ERR_INVALID)
            return rc;
        res->err = KV_ERR_INVALID;
        return KV_OK;
    }
    /* run as a user: refused unless, as of here in the log, the user may
     * do it (kv_auth.c) */
    if (user && kv_auth_enabled(k))
        rc = kv_auth_cmd_allowed(k, user, gen, &in);
    if (rc == KV_ERR_PERMISSION || rc == KV_ERR_AUTH) {
        res->err = rc;
        rc = KV_OK;
    } else if (rc == KV_OK) {
        rc = run_cmd(k, &in, res);
    }
    kv_cmd_free(&in);
    return rc;
}

static int run_cmd(kv *k, const kv_cmd *c, kv_result *res)
{
    if (c->kind == KV_CMD_AS)
        return kv_run_inner(k, c->inner, c->inner_len, c->as_user, c->as_gen, res);
    if (c->kind == KV_CMD_IDEM)
        return kv_idem_run(k, c, res);
    if (c->kind == KV_CMD_AUTH)
        return kv_auth_apply(k, &c->auth, res);
    if (c->kind == KV_CMD_MEMBER_URL)
        return kv_member_url_apply(k, c, res);
    if (c->kind == KV_CMD_ALARM_ACTIVATE || c->kind == KV_CMD_ALARM_DEACTIVATE)
        return kv_alarm_apply(k, c, res);
    if ((kv_alarms_active(k) & KV_ALARM_BIT(KV_ALARM_NOSPACE)) && adds_data(c)) {
        res->err = KV_ERR_NO_SPACE;
        return KV_OK;
    }
    if (c->kind == KV_CMD_TXN)
        return kv_txn_apply(k, &c->txn, res);
    if (c->kind == KV_CMD_COMPACT)
        return kv_compact_apply(k, c->compact_rev, res);
    return kv_lease_apply(k, c, res);
}

/* Undoes one command: its savepoint and the cache it may have moved. */
static int undo_cmd(kv *k, int64_t rev, int64_t compact, uint32_t alarms, bool auth,
                    kv_result *res)
{
    k->rev = rev;
    k->compact = compact;
    atomic_store_explicit(&k->alarms, alarms, memory_order_relaxed);
    atomic_store_explicit(&k->auth_on, auth, memory_order_relaxed);
    kv_result_free(res);
    return kv_exec(&k->w, KV_ST_ROLLBACK_TO);
}

/* One decoded command inside its savepoint. */
static int apply_decoded(kv *k, const kv_cmd *c, kv_result *res)
{
    if (kv_exec(&k->w, KV_ST_SAVEPOINT) < 0)
        return KV_ERR_INTERNAL;
    int64_t rev = k->rev, compact = k->compact;
    uint32_t alarms = kv_alarms_active(k);
    bool auth = kv_auth_enabled(k);
    int rc = run_cmd(k, c, res);
    bool refused = res->err != KV_OK && !res->kept && !res->replayed;
    if ((rc != KV_OK || refused) && undo_cmd(k, rev, compact, alarms, auth, res) < 0 &&
        rc == KV_OK)
        rc = KV_ERR_INTERNAL;
    if (kv_exec(&k->w, KV_ST_RELEASE) < 0 && rc == KV_OK)
        rc = KV_ERR_INTERNAL;
    return rc;
}

int kv_apply_cmd(kv *k, const uint8_t *cmd, size_t len, kv_result *res)
{
    memset(res, 0, sizeof *res);
    if (!k->in_batch) {
        log_error("kv: apply outside a batch");
        return res->err = KV_ERR_INTERNAL;
    }
    k->w.fail_code = 0;
    int rc = kv_failpoint_error(k, "kv.apply");
    kv_cmd c;
    if (rc == KV_OK) {
        rc = kv_cmd_decode(cmd, len, &c);
        if (rc == KV_ERR_INVALID)
            res->err = KV_ERR_INVALID;
        if (rc == KV_OK) {
            rc = apply_decoded(k, &c, res);
            kv_cmd_free(&c);
        }
    }
    if (rc != KV_OK && rc != KV_ERR_INVALID)
        res->err = rc = classify(k, rc);
    res->revision = k->rev;
    res->compact_revision = k->compact;
    return rc == KV_ERR_INVALID ? KV_OK : rc;
}

/* Ends the open batch unless it is poisoned or a failpoint fires. */
static int end_batch(kv *k, uint64_t index, uint64_t term)
{
    if (k->batch_err != KV_OK)
        return k->batch_err;
    int rc = kv_failpoint_error(k, "kv.commit");
    if (rc != KV_OK)
        return rc;
    if (kv_meta_set(&k->w, "applied_index", (int64_t)index) < 0 ||
        kv_meta_set(&k->w, "applied_term", (int64_t)term) < 0)
        return kv_fail_code(k->w.fail_code);
    return KV_OK;
}

int kv_apply_end(kv *k, uint64_t index, uint64_t term)
{
    /* An entry that carries no command still moves the applied index. */
    if (!k->in_batch) {
        int rc = kv_apply_begin(k);
        if (rc != KV_OK)
            return rc;
    }
    k->w.fail_code = 0;
    int rc = end_batch(k, index, term);
    if (rc != KV_OK) {
        log_error("kv: batch up to index %llu not applied: %s", (unsigned long long)index,
                  k->w.msg);
        return kv_apply_rollback(k) < 0 ? KV_ERR_INTERNAL : rc;
    }
    k->in_batch = false;
    k->applied_index = index;
    k->applied_term = term;
    kv_note_applied(k);
    return KV_OK;
}

int kv_apply_commit(kv *k, uint64_t index, uint64_t term)
{
    int rc = kv_apply_end(k, index, term);
    return rc == KV_OK ? kv_apply_flush(k) : rc;
}

/* A failed batch rolls the whole transaction back — the batches before
 * it that were not flushed too (kv_take_lost says so; the node applies
 * them again). A savepoint per batch would spare them, but costs every
 * batch a statement journal: a failed batch is rare (a full disk), and
 * anything but a full disk stops the node anyway. */
int kv_apply_rollback(kv *k)
{
    if (!k->in_batch)
        return 0;
    k->in_batch = false;
    k->batch_err = KV_OK;
    return kv_lose_uncommitted(k);
}
