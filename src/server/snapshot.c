/* snapshot: the node's snapshots — installing one a leader sent, starting
 * a background copy of kv.db every snapshot_count applied entries (sooner
 * for big values), and adopting a finished copy (Raft's say-so, then
 * storage's rename). Must never write kv.db on the node thread for a
 * snapshot of its own (kv's snapjob copies it in the background), never
 * keep a snapshot Raft refused, and never go on after storage failed to
 * record one (but for a full disk). */
#include "server/snapshot.h"

#include "server/peers.h"
#include "server/status.h"

#include <stdlib.h>
#include <unistd.h>

void node_install_snapshot(node *n, const raft_snapshot_meta *meta)
{
    char err[256] = "";
    char *staged = storage_recv_path(n->st, meta->index, meta->term);
    char *path = storage_snapshot_path(n->st, meta->index);
    if (!staged || !path || storage_install_snapshot(n->st, meta, staged, &n->snap) < 0) {
        node_fatal(n, NODE_EXIT_STORAGE, "installing snapshot");
    } else if (kv_restore(n->kv, path, err, sizeof err) < 0) {
        log_error("snapshot restore: %s", err);
        node_fatal(n, NODE_EXIT_STORAGE, "installing snapshot");
    } else {
        n->last_snapshot_index = meta->index;
        n->log_bytes = 0;
        node_flush_forget(n); /* what it kept to apply again is older */
        /* else the transport would miss members, and ids removed since
         * would be given out again */
        if (node_sync_peers(n) < 0)
            node_fatal(n, NODE_EXIT_STORAGE, "installing snapshot: reading the members");
        if (removed_load(n) < 0)
            node_fatal(n, NODE_EXIT_STORAGE, "installing snapshot: reading the removed members");
        if (lease_clock_reload(&n->leases, n->kv, now_ms()) < 0)
            node_fatal(n, NODE_EXIT_INTERNAL, "reloading leases after a snapshot");
        watch_notify(n->hub, kv_revision(n->kv));
        watch_wake_all(n->hub); /* history jumped: every watcher re-reads */
        log_info("installed snapshot at index %llu term %llu",
                 (unsigned long long)meta->index, (unsigned long long)meta->term);
    }
    free(staged);
    free(path);
}

/* Big values fill the log long before snapshot_count entries: 100 000
 * entries of 1 MiB are 100 GB of raft.db, and of memory, since the core
 * keeps its log in memory. So a snapshot is also due once the entries
 * applied since the last hold SNAPSHOT_LOG_BYTES, or a quarter of kv.db's
 * size if that is larger: a snapshot copies kv.db, so its copy costs at
 * most four times the log it lets go (as one every 100 000 small writes
 * does), and it still comes while kv.db grows faster than the log (new
 * keys: kv.db keeps a value twice). The tail kept for slow followers
 * holds at most SNAPSHOT_TAIL_BYTES. */
#define SNAPSHOT_LOG_BYTES (64u << 20)
#define SNAPSHOT_TAIL_BYTES (16u << 20)
#define SNAPSHOT_TAIL_ENTRIES 5000

static bool log_bytes_due(const node *n)
{
    uint64_t due = n->db_size / 4 > SNAPSHOT_LOG_BYTES ? n->db_size / 4 : SNAPSHOT_LOG_BYTES;
    return n->log_bytes >= due;
}

void node_snapshot_count(node *n, const raft_entry *ents, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++)
        n->log_bytes += ents[i].len;
}

/* Records a finished background snapshot with Raft and storage. Raft
 * refuses it if membership changed or a leader's snapshot was installed
 * since the copy began; the next round takes a new one. */
static void adopt_snapshot(node *n, const char *staged, const kv_snapfile *f)
{
    uint64_t index = f->index;
    uint64_t every = n->cfg->snapshot_count;
    /* the catch-up tail for slow followers */
    uint64_t keep = every < SNAPSHOT_TAIL_ENTRIES ? every : SNAPSHOT_TAIL_ENTRIES;
    raft_index compact_to = raft_tail_start(n->r, index, keep, SNAPSHOT_TAIL_BYTES);
    raft_snapshot_meta meta;
    int rc = raft_snapshot_taken_at(n->r, index, compact_to, &meta);
    if (rc != RAFT_OK) {
        log_debug("snapshot at index %llu dropped (%d): the state moved on under it",
                  (unsigned long long)index, rc);
        unlink(staged);
        n->last_snapshot_index = 0; /* try again soon */
    } else if ((rc = storage_snapshot_adopt(n->st, &meta, staged, f->size, f->crc, compact_to,
                                            &n->snap)) == STORAGE_ERR_NOSPACE) {
        /* the core keeps it, and this node cannot send it until a later
         * one is recorded: a full disk's cost, as writes wait too */
        log_warn("snapshot at %llu not recorded: %s", (unsigned long long)index,
                 storage_errmsg(n->st));
    } else if (rc < 0) { /* a failed rename or fsync is never retried */
        log_error("storage: %s", storage_errmsg(n->st));
        node_fatal(n, NODE_EXIT_STORAGE, "adopting a snapshot");
    } else {
        log_info("snapshot at index %llu, log compacted to %llu", (unsigned long long)index,
                 (unsigned long long)compact_to);
    }
}

/* Snapshots are copied in the background (kv_snapjob) so that applying
 * never stops for them; a turn only starts one and adopts a finished one. */
void node_maybe_snapshot(node *n)
{
    if (n->snapjob) {
        kv_snapfile f;
        int rc = kv_snapjob_poll(n->snapjob, &f);
        if (rc == 1)
            return;
        kv_snapjob_free(n->snapjob);
        n->snapjob = NULL;
        char *staged = storage_staging_path(n->st);
        if (rc == KV_OK && staged)
            adopt_snapshot(n, staged, &f);
        else
            log_error("snapshot failed; trying again after %llu entries",
                      (unsigned long long)n->cfg->snapshot_count);
        free(staged);
        return;
    }
    raft_index applied = raft_applied_index(n->r);
    if (applied < n->last_snapshot_index + n->cfg->snapshot_count && !log_bytes_due(n))
        return;
    /* the copy is of what kv.db has committed: all that is applied */
    if (n->replay_due || node_flush(n) < 0)
        return;
    char *staged = storage_staging_path(n->st);
    n->snapjob = staged ? kv_snapjob_start(n->kv, staged) : NULL;
    if (!n->snapjob)
        log_error("cannot start a snapshot at %llu", (unsigned long long)applied);
    /* even on failure, wait another round before trying again */
    n->last_snapshot_index = applied;
    n->log_bytes = 0;
    free(staged);
}
