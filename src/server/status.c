/* status: the node's published state — node_get_info's snapshot of the
 * loop, kv.db's size, the reason codes behind /health and errors — and
 * node_fatal, the stop on an error that must not be carried on past.
 * Must never call another node file (everyone calls this one) and never
 * block: api threads only take info_mu for a copy. */
#include "server/status.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

void node_get_info(node *n, node_info *out)
{
    pthread_mutex_lock(&n->info_mu);
    *out = n->info;
    pthread_mutex_unlock(&n->info_mu);
    uint64_t last = out->ms_since_apply_or_heartbeat;
    out->ms_since_apply_or_heartbeat = last ? now_ms() - last : UINT64_MAX;
}

void node_publish_info(node *n, uint64_t now)
{
    node_info *i = &n->info;
    if (raft_leader(n->r))
        n->last_leader_ms = now;
    pthread_mutex_lock(&n->info_mu);
    i->member_id = n->cfg->id;
    i->cluster_id = n->cluster_id;
    i->leader = raft_leader(n->r);
    i->raft_term = raft_term_get(n->r);
    i->raft_index = raft_last_index(n->r);
    i->commit_index = raft_commit_index(n->r);
    i->applied_index = raft_applied_index(n->r);
    i->revision = kv_revision(n->kv);
    i->compact_revision = kv_compact_revision(n->kv);
    i->is_learner = raft_is_learner(n->r, n->cfg->id);
    i->role = raft_role_get(n->r);
    i->ms_since_apply_or_heartbeat = n->last_leader_ms;
    i->proposals_total = n->proposals_total;
    i->proposals_refused_total = n->proposals_refused_total;
    i->applied_total = n->applied_total;
    i->read_rounds_total = n->read_rounds_total;
    i->peer_batches_held_total = n->order.held_total;
    i->peer_gaps_total = n->order.gaps_total;
    i->kv_commits_total = n->kv_flushes_total;
    i->reads_total = n->reads_total;
    pthread_mutex_unlock(&n->info_mu);
}

void node_update_db_size(node *n)
{
    uint64_t size, in_use;
    if (kv_db_size(n->kv, &size, &in_use) != KV_OK)
        return; /* kept as it was: the next tick asks again */
    n->db_size = size;
    pthread_mutex_lock(&n->info_mu);
    n->info.db_size = size;
    n->info.db_size_in_use = in_use;
    pthread_mutex_unlock(&n->info_mu);
}

void node_fatal(node *n, int code, const char *what)
{
    (void)n;
    log_error("fatal: %s: stopping to protect the data (exit %d)", what, code);
    fflush(stderr);
    /* No clean-up: another thread must not answer a client or acknowledge
     * a peer after this point, and nothing on disk needs more than what a
     * crash gives it (SQLite WAL, the log replayed at restart). */
    _exit(code);
}
