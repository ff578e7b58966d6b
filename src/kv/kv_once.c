/* kv_once: exactly-once apply of proposals that may reach the log twice —
 * a member re-proposes what it forwarded when the leader changes, not
 * knowing whether the first copy made it. Each proposal carries its
 * proposer's id and a sequence number unique across that member's
 * restarts (server/envelope.h, recovery.c); apply records the pair in
 * kv_executed, in the same transaction, and skips a pair it has seen. The
 * table is replicated state (in snapshots, identical on every member) and
 * keeps each proposer's last KV_ONCE_WINDOW sequence numbers: recording
 * one drops that proposer's pairs below it minus the window (a range of
 * the primary key; a proposer's earlier lives, whose numbers are 2^40
 * lower, go with them).
 *
 * Must never: decide by anything but the command's pair (every replica
 * must skip the same copies), or skip a pair it has not recorded.
 */
#include "kv/kv_internal.h"

int kv_apply_once(kv *k, uint64_t origin, uint64_t seq, bool *seen)
{
    *seen = false;
    if (!k->in_batch)
        return KV_ERR_INTERNAL;
    if (origin == 0 || seq == 0 || origin > INT64_MAX || seq > INT64_MAX)
        return KV_OK; /* no pair: nothing to remember */
    sqlite3_stmt *st = kv_stmt(&k->w, KV_ST_EXECUTED_ADD);
    if (!st || sqlite3_bind_int64(st, 1, (int64_t)origin) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, (int64_t)seq) != SQLITE_OK || kv_step_done(&k->w, st) < 0)
        return kv_fail_code(k->w.fail_code);
    *seen = sqlite3_changes(k->w.db) == 0;
    if (*seen || seq <= KV_ONCE_WINDOW)
        return KV_OK;
    st = kv_stmt(&k->w, KV_ST_EXECUTED_TRIM);
    if (!st || sqlite3_bind_int64(st, 1, (int64_t)origin) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, (int64_t)(seq - KV_ONCE_WINDOW)) != SQLITE_OK ||
        kv_step_done(&k->w, st) < 0)
        return kv_fail_code(k->w.fail_code);
    return KV_OK;
}
