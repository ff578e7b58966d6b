/* alarms: noticing, on the node thread, what must raise an alarm — kv.db
 * past --quota-bytes (NOSPACE), a stored row failing its checksum
 * (CORRUPT) — and proposing ALARM_ACTIVATE for this member until the alarm
 * is applied. Once a second at most: a proposal lost with a leader is
 * simply made again.
 *
 * (A full disk raises NOSPACE too: see node.c hold_ready.)
 *
 * Must never clear an alarm (only an operator's disarm does, through
 * Raft: a condition that persists raises it again), never block the loop
 * (the checks are a few pragmas and a flag), and never go through the
 * inbox (proposed to the core directly, as lease revokes are).
 */
#include "server/alarms.h"

#include "server/envelope.h"

#define ALARM_CHECK_MS 1000
/* A proposal not applied by then (lost with a leader, or held by a full
 * disk) is made again; not sooner, so a full disk does not pile them up. */
#define ALARM_RETRY_MS 10000

uint32_t node_alarm_conditions(node *n)
{
    uint32_t want = 0;
    if (n->db_size > n->cfg->quota_bytes || atomic_load(&n->disk_full))
        want |= KV_ALARM_BIT(KV_ALARM_NOSPACE);
    if (kv_corruption_seen(n->kv, NULL, 0))
        want |= KV_ALARM_BIT(KV_ALARM_CORRUPT);
    return want;
}

static void propose_alarm(node *n, int type)
{
    buf cmd, entry;
    buf_init(&cmd);
    buf_init(&entry);
    /* seq 0: nobody waits for this entry */
    if (kv_encode_alarm(KV_ALARM_ACTIVATE, n->cfg->id, type, &cmd) != KV_OK ||
        envelope_wrap(&entry, n->cfg->id, 0, cmd.data, cmd.len) < 0) {
        log_error("alarm %d: cannot encode its activation", type);
    } else {
        int rc = raft_propose(n->r, entry.data, (uint32_t)entry.len);
        if (rc != RAFT_OK)
            log_debug("alarm %d: not proposed (raft error %d); will retry", type, rc);
    }
    buf_free(&cmd);
    buf_free(&entry);
}

static void log_raise(node *n, int type)
{
    if (type == KV_ALARM_NOSPACE && atomic_load(&n->disk_full))
        log_warn("the disk is full: raising NOSPACE");
    else if (type == KV_ALARM_NOSPACE)
        log_warn("kv.db is %llu bytes, past --quota-bytes %llu: raising NOSPACE",
                 (unsigned long long)n->db_size, (unsigned long long)n->cfg->quota_bytes);
    else
        log_error("a stored row failed its checksum: raising CORRUPT");
}

static void raise_if_needed(node *n, int type, uint32_t want, uint32_t active)
{
    uint32_t bit = KV_ALARM_BIT(type);
    if (!(want & bit) || (active & bit)) {
        n->alarms_logged &= ~bit; /* the next episode is logged again */
        return;
    }
    if (!(n->alarms_logged & bit)) /* one line per episode */
        log_raise(n, type);
    n->alarms_logged |= bit;
    /* A leader that cannot write its log would only pile the proposal up
     * in memory; a follower's goes to a leader that may have space. */
    uint64_t now = now_ms();
    if (atomic_load(&n->disk_full) && raft_role_get(n->r) == RAFT_LEADER)
        return;
    if (n->alarm_proposed_ms[type] && now - n->alarm_proposed_ms[type] < ALARM_RETRY_MS)
        return;
    n->alarm_proposed_ms[type] = now;
    propose_alarm(n, type);
}

void node_alarm_tick(node *n, uint64_t now)
{
    if (now < n->next_alarm_check_ms)
        return;
    n->next_alarm_check_ms = now + ALARM_CHECK_MS;
    uint32_t want = node_alarm_conditions(n), active = kv_alarms_active(n->kv);
    raise_if_needed(n, KV_ALARM_NOSPACE, want, active);
    raise_if_needed(n, KV_ALARM_CORRUPT, want, active);
}
