/* lease_expiry: the leader's side of leases, run on the node thread each
 * tick. A node that has just become leader first extends every lease by
 * its TTL (no lease expires because of a failover); then the leader
 * proposes LEASE_REVOKE for expired leases, at most LEASE_REVOKES_PER_TICK
 * per tick (a mass expiry never floods the log ahead of client writes),
 * and not again for one lease until its retry interval passed.
 *
 * Must never revoke on a follower, and never go through the inbox: a
 * revoke is handed to the Raft core directly while this node leads, so it
 * either commits in this leader's term or is dropped with it — a deposed
 * leader's stale decision is never forwarded to its successor. */
#include "server/envelope.h"
#include "server/node_int.h"

#define LEASE_REVOKES_PER_TICK 100

int64_t node_lease_min_ttl(node *n)
{
    /* etcd's rule of thumb: a lease must outlive a few elections */
    uint64_t ms = 3ull * n->cfg->election_ms;
    int64_t s = (int64_t)((ms + 999) / 1000);
    return s > 0 ? s : 1;
}

int64_t node_lease_remaining_ms(node *n, int64_t id)
{
    return lease_clock_remaining_ms(&n->leases, id, now_ms());
}

static void propose_revoke(node *n, int64_t id, buf *cmd, buf *entry)
{
    buf_reset(cmd);
    /* seq 0: no client waits for this entry */
    if (kv_encode_lease_revoke(id, cmd) != KV_OK ||
        envelope_wrap(entry, n->cfg->id, 0, cmd->data, cmd->len) < 0) {
        log_error("lease %lld: cannot encode its revoke", (long long)id);
        return;
    }
    int rc = raft_propose(n->r, entry->data, (uint32_t)entry->len);
    if (rc != RAFT_OK)
        log_warn("lease %lld: revoke not proposed (raft error %d); will retry",
                 (long long)id, rc);
    else
        log_debug("lease %lld expired: revoke proposed", (long long)id);
}

void node_lease_tick(node *n, uint64_t now)
{
    bool leader = raft_role_get(n->r) == RAFT_LEADER;
    if (leader && !n->lease_leader) {
        lease_clock_renew_all(&n->leases, now);
        log_info("leader: every lease extended by its TTL");
    }
    n->lease_leader = leader;
    if (!leader)
        return;
    int64_t ids[LEASE_REVOKES_PER_TICK];
    size_t k = lease_clock_expired(&n->leases, now, n->request_timeout_ms, ids,
                                   LEASE_REVOKES_PER_TICK);
    if (k == 0)
        return;
    buf cmd, entry;
    buf_init(&cmd);
    buf_init(&entry);
    for (size_t i = 0; i < k; i++)
        propose_revoke(n, ids[i], &cmd, &entry);
    buf_free(&cmd);
    buf_free(&entry);
}
