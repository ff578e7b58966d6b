/* kv_once: exactly-once apply of proposals that may reach the log twice —
 * a member re-proposes what it forwarded when the leader changes, not
 * knowing whether the first copy made it. Each proposal carries its
 * proposer's id and a sequence number unique across that member's
 * restarts (server/envelope.h); apply records the pair in kv_executed, in
 * the same transaction, and skips a pair it has seen. The table is
 * replicated state (in snapshots, identical on every member) and keeps
 * the pairs of the last KV_ONCE_WINDOW log entries; older ones are
 * trimmed every KV_ONCE_TRIM_EVERY entries, decided by the log index alone.
 *
 * Must never: decide by anything but the command's pair and the log index
 * (every replica must skip the same copies), or skip a pair it has not
 * recorded inside the window.
 */
#include "kv/kv_internal.h"

static int step_done(kv_db *d, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        d->fail_code = rc;
        return -1;
    }
    return 0;
}

static int trim(kv *k, uint64_t index)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(k->w.db, "DELETE FROM kv_executed WHERE idx < ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, (int64_t)(index - KV_ONCE_WINDOW));
    return step_done(&k->w, st);
}

int kv_apply_once(kv *k, uint64_t origin, uint64_t seq, uint64_t index, bool *seen)
{
    *seen = false;
    if (!k->in_batch)
        return KV_ERR_INTERNAL;
    if (origin == 0 || seq == 0)
        return KV_OK; /* no pair: nothing to remember */
    sqlite3_stmt *st = kv_stmt(&k->w, KV_ST_EXECUTED_ADD);
    if (!st || sqlite3_bind_int64(st, 1, (int64_t)origin) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, (int64_t)seq) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, (int64_t)index) != SQLITE_OK || kv_step_done(&k->w, st) < 0)
        return kv_fail_code(k->w.fail_code);
    *seen = sqlite3_changes(k->w.db) == 0;
    if (index > KV_ONCE_WINDOW && index % KV_ONCE_TRIM_EVERY == 0 && trim(k, index) < 0)
        return kv_fail_code(k->w.fail_code);
    return KV_OK;
}
