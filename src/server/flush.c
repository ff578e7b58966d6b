/* flush: when the node commits kv.db's applied batches. A batch is applied
 * inside the writer's open transaction and its clients are answered then
 * (the entries are durable in the Raft log of a quorum already); one
 * SQLite commit then covers every batch of the last few milliseconds
 * instead of one each, which is most of the pages a write cost. The node
 * flushes at the end of a turn when a reader waits for it (kv_visible.c
 * wakes the loop), when a read barrier is answered, when the oldest
 * unflushed batch is NODE_FLUSH_MS old, when the kept entries grow large,
 * after a membership change, while defrag writes kv.db on a connection of
 * its own (the write lock must not stay taken), before a snapshot, and at
 * stop.
 *
 * A commit that fails on a full disk loses the batches since the last
 * one; their entries are kept here (copies) and applied again, before
 * anything newer, once the disk has room — without their side effects
 * beyond kv.db, which already happened. Any other failure stops the node
 * (the Raft log has the entries; a restart applies them from kv.db's
 * applied index). Must never answer a reader from a batch it did not
 * flush, and never apply a newer batch while lost ones wait. */
#include "server/apply.h"
#include "server/node_int.h"
#include "server/status.h"
#include "server/trace.h"

#include <stdlib.h>
#include <string.h>

/* The longest a batch stays unflushed while nobody asks for it; a reader
 * who asks gets it at the end of the current turn. Chosen by measurement
 * (docs/PERFORMANCE.md): 20 ms against 5 gave PUT at 1 connection +12 %
 * and a third fewer bytes written; 50 ms lost 16 % at 64 connections (one
 * commit that large holds the loop). */
#define NODE_FLUSH_MS 20
/* Kept entries beyond which the node flushes at once. */
#define NODE_FLUSH_ENTRIES 1024
#define NODE_FLUSH_BYTES (4u << 20)

static void kept_clear(node *n)
{
    for (size_t i = 0; i < n->n_kept; i++)
        free(n->kept[i].data);
    n->n_kept = 0;
    n->kept_bytes = 0;
}

/* kv.db was replaced by a snapshot's copy: the kept entries are older. */
void node_flush_forget(node *n)
{
    kept_clear(n);
    n->replay_due = false;
    n->unflushed_since_ms = 0;
    kv_gate_open(n->kv, false);
}

void node_flush_free(node *n)
{
    kept_clear(n);
    free(n->kept);
    n->kept = NULL;
    n->cap_kept = 0;
}

/* Copies of the batch's entries, for a lost flush; -1 if memory runs out. */
static int keep(node *n, const raft_entry *ents, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++) {
        if (xgrow(&n->kept, &n->cap_kept, n->n_kept, sizeof *n->kept) < 0)
            return -1;
        raft_entry e = ents[i];
        if (e.len) {
            e.data = malloc(e.len);
            if (!e.data)
                return -1;
            memcpy(e.data, ents[i].data, e.len);
        }
        n->kept[n->n_kept++] = e;
        n->kept_bytes += e.len;
    }
    return 0;
}

static void flushed(node *n)
{
    kept_clear(n);
    n->unflushed_since_ms = 0;
    n->kv_flushes_total++;
    kv_gate_open(n->kv, false);
}

/* A rollback lost batches kv had applied: they wait to be applied again,
 * and readers read what kv.db has meanwhile. */
void node_flush_note_lost(node *n)
{
    if (!kv_take_lost(n->kv))
        return;
    n->replay_due = true;
    kv_gate_open(n->kv, true);
}

/* The commit failed: on a full disk the lost batches wait to be applied
 * again; anything else stops. */
static int flush_failed(node *n, int rc)
{
    if (rc != KV_ERR_NO_SPACE_DISK)
        node_fatal(n, NODE_EXIT_STORAGE, "kv: cannot commit applied batches");
    node_flush_note_lost(n);
    if (!atomic_exchange(&n->disk_full, true))
        log_warn("disk full committing kv.db: applied batches wait to be applied again "
                 "(writes that add data get 507); reads go on");
    node_reserve_release(n);
    return -1;
}

int node_flush(node *n)
{
    if (!kv_unflushed(n->kv))
        return 0;
    TRACE_MARK(t0);
    int rc = kv_apply_flush(n->kv);
    TRACE_ADD(TRACE_FLUSH, t0);
    if (rc != KV_OK)
        return flush_failed(n, rc);
    flushed(n);
    return 0;
}

static void no_conf(void *ud, const raft_conf_change *cc, const char *url)
{
    (void)ud, (void)cc, (void)url;
}

static void no_batch(void *ud, size_t cnt) { (void)ud, (void)cnt; }

static void replay_fatal(void *ud, int code, const char *what) { node_fatal(ud, code, what); }

/* Applies the lost batches again as one and commits them: 0, or -1 while
 * the disk is still full. No waiter is answered (they were), and no hook
 * beyond kv runs (its effect stands). */
static int replay(node *n)
{
    node_apply_env env = {
        .kv = n->kv, .self = 0, .w = &n->w, .leases = NULL, .ud = n,
        .conf_applied = no_conf, .batch_applied = no_batch, .fatal = replay_fatal,
    };
    (void)kv_take_lost(n->kv); /* this attempt's own loss is all that counts now */
    if (node_apply_batch(&env, n->kept, n->n_kept) != NODE_APPLY_OK)
        return -1;
    int rc = kv_apply_flush(n->kv);
    if (rc != KV_OK)
        return flush_failed(n, rc);
    log_info("kv: %zu entries lost by a failed commit are applied again", n->n_kept);
    n->replay_due = false;
    flushed(n);
    return 0;
}

int node_flush_before_apply(node *n)
{
    if (!n->replay_due)
        return 0;
    uint64_t now = now_ms();
    if (now < n->next_replay_ms) /* a full disk: once a second at most */
        return -1;
    n->next_replay_ms = now + 1000;
    return replay(n);
}

void node_flush_after_apply(node *n, const raft_entry *ents, size_t cnt, bool must)
{
    if (!kv_unflushed(n->kv))
        return;
    if (!n->unflushed_since_ms)
        n->unflushed_since_ms = now_ms();
    must |= !kv_defer_ok(n->kv);
    /* kept even when flushed at once: a full disk may lose this commit too */
    if (keep(n, ents, cnt) < 0)
        node_fatal(n, NODE_EXIT_INTERNAL, "out of memory keeping applied entries");
    if (must || n->n_kept >= NODE_FLUSH_ENTRIES || n->kept_bytes >= NODE_FLUSH_BYTES)
        node_flush(n);
}

void node_flush_turn(node *n, uint64_t now)
{
    if (!kv_unflushed(n->kv))
        return;
    if (atomic_exchange(&n->flush_wanted, false) || now >= node_flush_deadline(n))
        node_flush(n);
}

uint64_t node_flush_deadline(const node *n)
{
    return n->unflushed_since_ms ? n->unflushed_since_ms + NODE_FLUSH_MS : 0;
}

/* kv_visible.c's hook, on a reader's thread: the loop flushes this turn. */
void node_want_flush(void *ud)
{
    node *n = ud;
    atomic_store(&n->flush_wanted, true);
    inbox_wake(&n->in);
}
