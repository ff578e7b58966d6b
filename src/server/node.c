/* node: the loop that owns the Raft core. One thread, one order of work per
 * turn: take every queued event (peer messages, proposals, reads, membership
 * requests), tick if due, then drain the Ready — persist (one transaction,
 * one fsync for all of it: group commit), send, apply, advance — and answer
 * the requests that became answerable. Must never block on a client or a
 * peer: everything outside comes in through the inbox. The work of each
 * step lives in its own file (requests, membership, reads, apply,
 * snapshot, peers, status); this one only orders it. */
#include "server/node_int.h"

#include "server/alarms.h"
#include "server/apply.h"
#include "server/corrupt_check.h"
#include "server/failover.h"
#include "server/membership.h"
#include "server/peer_order.h"
#include "server/peers.h"
#include "server/reads.h"
#include "server/requests.h"
#include "server/snapshot.h"
#include "server/status.h"
#include "server/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* How long a leader's new commit index may wait for an APPEND to carry it
 * (commit_notice_turn); the clock is in ms, so it goes out 1-2 ms later. */
#define COMMIT_NOTICE_MS 2

/* ------------------------------------------------------------------ */
/* Events                                                               */
/* ------------------------------------------------------------------ */

/* A leader told us we acknowledged entries our log no longer has: the
 * disk was rolled back or truncated under us. Serving on could lose
 * committed writes, as etcd also refuses to. */
static void log_lost(node *n)
{
    char msg[200];
    snprintf(msg, sizeof msg,
             "raft log corrupted, truncated or lost? the leader says index %llu was "
             "acknowledged, the log ends at %llu",
             (unsigned long long)raft_lost_index(n->r), (unsigned long long)raft_last_index(n->r));
    node_fatal(n, NODE_EXIT_LOG_LOST, msg);
}

static void step_all(node *n, raft_msg *msgs, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++) {
        if (msgs[i].to != n->cfg->id)
            continue;
        if (raft_step(n->r, &msgs[i]) == RAFT_ERR_LOG_LOST)
            log_lost(n);
    }
}

static void handle_event(node *n, event *ev)
{
    switch (ev->kind) {
    case EV_MSGS:
        step_all(n, ev->msgs, ev->n);
        if (ev->answer) /* what we send that peer now rides its request */
            transport_answer_handled(n->tp, ev->answer);
        break;
    case EV_SNAP_RECV:
        /* the staged file stays until the Ready installs (or cleanup drops) it */
        free(ev->path);
        ev->path = NULL;
        step_all(n, ev->msgs, 1);
        break;
    case EV_UNREACHABLE: raft_report_unreachable(n->r, ev->peer); break;
    case EV_SNAP_SENT: raft_report_snapshot(n->r, ev->peer, ev->ok); break;
    case EV_PROPOSE:
        if (n->handing_off) /* stopping: the forwarding member retries elsewhere */
            event_fail(ev, NODE_ERR_STOPPING);
        else
            node_handle_propose(n, ev);
        break;
    case EV_MOVE: node_handle_move(n, ev); break;
    case EV_READ: node_handle_read(n, ev); break;
    case EV_MEMBER: node_handle_member(n, ev); break;
    default: break;
    }
}

/* ------------------------------------------------------------------ */
/* Ready                                                               */
/* ------------------------------------------------------------------ */

/* Sends a Ready's messages; a snapshot message goes with the snapshot
 * file. Returns the peer whose snapshot could not be sent (0 if none), to
 * be reported to Raft after raft_advance — never between Ready and advance. */
static raft_id send_messages(node *n, const raft_msg *msgs, size_t cnt)
{
    size_t start = 0;
    raft_id failed = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (msgs[i].type != RAFT_MSG_SNAP)
            continue;
        transport_send(n->tp, msgs + start, i - start);
        start = i + 1;
        char *path = storage_snapshot_path(n->st, n->snap.meta.index);
        if (path && n->snap.meta.index == msgs[i].snapshot.index)
            transport_send_snapshot(n->tp, &msgs[i], path, n->snap.size, n->snap.crc);
        else
            failed = msgs[i].to;
        free(path);
    }
    transport_send(n->tp, msgs + start, cnt - start);
    return failed;
}

bool node_disk_full(node *n) { return atomic_load(&n->disk_full); }

/* Term and vote must be on disk before anything depends on them; the
 * commit index need not be (a restart takes kv.db's applied index as its
 * floor, recovery.c, and a leader tells it again). So a hard state that
 * moved only its commit is not written: one 4 KiB page less in raft.db's
 * log per write on every member, and no transaction at all for a
 * follower's commit-only Ready. */
static bool hard_state_moved(const node *n, const raft_ready *rd)
{
    return rd->has_hard_state &&
           (rd->hs.term != n->durable_hs.term || rd->hs.vote != n->durable_hs.vote);
}

/* Messages whose meaning does not depend on what this Ready had to write:
 * a leader's appends and heartbeats (which may leave before its fsync
 * anyway), forwarded requests, read rounds and their answers, and a
 * heartbeat answer when our term and vote are on disk. */
static bool independent_of_disk(node *n, const raft_ready *rd, const raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
    case RAFT_MSG_HEARTBEAT: return raft_role_get(n->r) == RAFT_LEADER;
    case RAFT_MSG_PROP:
    case RAFT_MSG_READINDEX:
    case RAFT_MSG_READINDEX_RESP:
    case RAFT_MSG_TRANSFER: return true;
    case RAFT_MSG_HEARTBEAT_RESP: return !hard_state_moved(n, rd);
    default: return false;
    }
}

static void answer_refused(node *n, const raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_refused; i++)
        node_refused(n, &rd->refused[i]);
}

/* The disk is full: the Ready's hard state and entries are offered again
 * on the next turn (raft_advance_held), and the loop waits for that turn.
 * Meanwhile what needs no disk goes on: messages that do not depend on it
 * (the others are dropped; Raft sends again what matters), read rounds,
 * and the reads whose index is applied. */
static void hold_ready(node *n, const raft_ready *rd, bool sent_early, const char *where)
{
    if (!atomic_exchange(&n->disk_full, true))
        log_warn("disk full writing %s: writes wait (and writes that add data get 507) "
                 "until there is space; reads go on", where);
    n->ready_held = true;
    for (size_t i = 0; i < rd->n_messages && !sent_early; i++)
        if (independent_of_disk(n, rd, &rd->messages[i]))
            transport_send(n->tp, &rd->messages[i], 1);
    for (size_t i = 0; i < rd->n_reads; i++)
        node_confirm_reads(n, &rd->reads[i]);
    answer_refused(n, rd);
    node_answer_reads(n);
}

/* 0 once the Ready's term, vote and entries are on disk, -1 if the disk
 * is full (held). Any other failure stops the node. */
static int persist(node *n, const raft_ready *rd)
{
    bool hs = hard_state_moved(n, rd);
    if (!hs && !rd->n_entries)
        return 0;
    TRACE_MARK(t0);
    int rc = storage_append(n->st, hs ? &rd->hs : NULL, rd->entries, rd->n_entries);
    TRACE_ADD(TRACE_PERSIST, t0);
    if (rc == STORAGE_ERR_NOSPACE)
        return -1;
    if (rc < 0) {
        log_error("storage: %s", storage_errmsg(n->st));
        node_fatal(n, NODE_EXIT_STORAGE, "cannot persist the raft log");
    }
    if (hs)
        n->durable_hs = rd->hs;
    return 0;
}

static void handle_ready(node *n)
{
    raft_ready rd;
    if (raft_ready_get(n->r, &rd) != RAFT_OK) {
        node_fatal(n, NODE_EXIT_INTERNAL, "raft: cannot build Ready");
        return;
    }
    if (rd.has_snapshot)
        node_install_snapshot(n, &rd.snapshot);
    bool sent_early = raft_ready_may_send_early(n->r, &rd);
    if (sent_early)
        send_messages(n, rd.messages, rd.n_messages);
    if (persist(n, &rd) < 0) {
        /* What is committed is durable on a quorum: apply it anyway, so
         * that reads are answered while our own disk is full. */
        bool applied = !rd.has_snapshot &&
                       node_apply_committed(n, rd.committed, rd.n_committed) == NODE_APPLY_OK;
        if (!applied && rd.n_committed)
            node_reserve_release(n);
        hold_ready(n, &rd, sent_early, "raft.db");
        raft_advance_held(n->r, applied);
        return;
    }
    if (atomic_load(&n->stop))
        return; /* never acknowledge what may not be durable */
    raft_id snap_failed = sent_early ? 0 : send_messages(n, rd.messages, rd.n_messages);
    /* The answers are true now (what they answer is stepped and durable):
     * they leave before the apply, which no peer waits for. */
    transport_flush_answers(n->tp);
    TRACE_MARK(t0);
    int applied = node_apply_committed(n, rd.committed, rd.n_committed);
    TRACE_ADD(TRACE_APPLY, t0);
    TRACE_ENTRIES(rd.n_entries, rd.n_committed);
    if (applied == NODE_APPLY_NOSPACE) {
        node_reserve_release(n); /* committed entries must apply: the next turn retries */
        hold_ready(n, &rd, true, "kv.db"); /* its messages are out already */
        raft_advance_held(n->r, false);
        return;
    }
    for (size_t i = 0; i < rd.n_reads; i++)
        node_confirm_reads(n, &rd.reads[i]);
    answer_refused(n, &rd);
    raft_advance(n->r, &rd);
    /* writes again only with the space reserve back (reserve.c) */
    if (atomic_load(&n->disk_full) && node_reserve_ready(n) &&
        atomic_exchange(&n->disk_full, false))
        log_info("disk has space again: writes go on");
    if (snap_failed)
        raft_report_snapshot(n->r, snap_failed, false);
    node_answer_reads(n);
    node_maybe_snapshot(n);
}

/* ------------------------------------------------------------------ */
/* Loop                                                                */
/* ------------------------------------------------------------------ */

static void on_tick(node *n, uint64_t now)
{
    raft_tick(n->r);
    n->next_tick_ms += n->cfg->heartbeat_ms;
    if (n->next_tick_ms < now) /* the loop fell behind: do not tick in a burst */
        n->next_tick_ms = now + n->cfg->heartbeat_ms;
    waiters_expire(&n->w, now, false, raft_leader(n->r) ? NODE_ERR_TIMEOUT : NODE_ERR_NO_LEADER);
    node_retry_unproposed(n);
    node_lease_tick(n, now);
    /* a copy that finished after the last Ready is adopted here: an idle
     * node (one member, no writes) has no other turn that would */
    if (n->snapjob)
        node_maybe_snapshot(n);
    node_update_db_size(n);
    node_alarm_tick(n, now);
    node_reserve_tick(n, now);
    if (n->replay_due) /* batches a full disk lost: again, once it has room */
        node_flush_before_apply(n);
    if (now >= n->next_trim_ms) { /* a few ms at most, every 10 s */
        n->next_trim_ms = now + 10000;
        size_t freed = mem_release_free(32u << 20);
        if (freed)
            log_debug("gave back up to %zu MB of free heap", freed >> 20);
    }
}

/* The loop's one wait: for its inbox, the peers' sockets (the transport
 * is loop-driven: answers and sends move here) or the next tick. */
static event *wait_for_work(node *n)
{
    uint64_t now = now_ms(), until = n->next_tick_ms;
    uint64_t held = peer_order_deadline(&n->order); /* a held batch given up on */
    if (held && held < until)
        until = held;
    uint64_t flush = node_flush_deadline(n); /* applied batches to commit */
    if (flush && flush < until)
        until = flush;
    if (n->commit_due_ms && n->commit_due_ms < until)
        until = n->commit_due_ms;
    if (n->tp && now < until)
        transport_poll(n->tp, inbox_wait_fd(&n->in), (int)(until - now));
    if (transport_broken(n->tp))
        node_fatal(n, NODE_EXIT_INTERNAL, "the peer listener failed");
    return inbox_take_all(&n->in, n->tp ? 0 : until);
}

/* Numbered peer batches go through the peer order (peer_order.h) and come
 * after the rest, which keeps its order. */
static event *in_order(node *n, event *evs, uint64_t now)
{
    event *out = NULL, **tail = &out;
    while (evs) {
        event *next = evs->next;
        if (evs->kind == EV_MSGS && evs->has_seq) {
            peer_order_add(&n->order, evs, now);
        } else {
            evs->next = NULL;
            *tail = evs;
            tail = &evs->next;
        }
        evs = next;
    }
    *tail = peer_order_take(&n->order, now);
    return out;
}

/* Until the core has nothing more, or a Ready could not be written
 * (ready_held: a full disk; the next turn tries again). */
static void drain_ready(node *n)
{
    while (raft_has_ready(n->r) && !atomic_load(&n->stop) && !n->ready_held)
        handle_ready(n);
}

/* A new commit index rides the leader's next APPEND to each follower —
 * under a stream of writes the next one leaves within a round trip — so
 * a write costs no round of empty APPENDs. If none has carried it
 * COMMIT_NOTICE_MS later, empty APPENDs do: a quiet leader's followers
 * apply (and serve reads and watches) at most that much later. */
static void commit_notice_turn(node *n, uint64_t now)
{
    if (!raft_commit_untold(n->r)) {
        n->commit_due_ms = 0;
        return;
    }
    if (!n->commit_due_ms)
        n->commit_due_ms = now + COMMIT_NOTICE_MS;
    if (now < n->commit_due_ms)
        return;
    n->commit_due_ms = 0;
    raft_send_commit(n->r);
    drain_ready(n);
}

static void run_turn(node *n)
{
    TRACE_MARK(t0);
    event *evs = wait_for_work(n);
    TRACE_ADD(TRACE_WAIT, t0);
    TRACE_MARK(t1);
    uint64_t now = now_ms();
    evs = in_order(n, evs, now);
    while (evs) {
        event *next = evs->next;
        handle_event(n, evs);
        event_free(evs);
        evs = next;
    }
    if (now >= n->next_tick_ms)
        on_tick(n, now);
    node_ask_read_index(n, now);
    TRACE_ADD(TRACE_EVENTS, t1);
    TRACE_MARK(t2);
    n->ready_held = false;
    drain_ready(n);
    commit_notice_turn(n, now_ms());
    TRACE_ADD(TRACE_READY, t2);
    transport_flush_answers(n->tp); /* after the fsync: answers may say "durable" */
    node_flush_turn(n, now_ms());
    node_watch_leader(n);
    node_move_turn(n, now);
    node_stop_turn(n, now);
    node_publish_info(n, now);
    TRACE_TURN();
}

static void shut_down_requests(node *n)
{
    event *evs = inbox_close(&n->in);
    peer_order_free(&n->order); /* their senders are answered by transport_stop */
    while (evs) {
        event *next = evs->next;
        event_fail(evs, NODE_ERR_STOPPING);
        event_free(evs);
        evs = next;
    }
    waiters_expire(&n->w, 0, true, NODE_ERR_STOPPING);
}

int node_run(node *n)
{
    n->next_tick_ms = now_ms() + n->cfg->heartbeat_ms;
    while (!atomic_load(&n->stop) && !n->removed && !atomic_load(&n->told_removed))
        run_turn(n);
    if (n->removed || atomic_load(&n->told_removed))
        log_info("this node was removed from the cluster; shutting down");
    node_flush(n);
    kv_gate_open(n->kv, true); /* nobody flushes from now on: readers read what is there */
    shut_down_requests(n);
    return NODE_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */
/* ------------------------------------------------------------------ */

int node_create(const config *cfg, node **out)
{
    node *n = calloc(1, sizeof *n);
    if (!n)
        return -1;
    n->cfg = cfg;
    n->in.wake_fd = -1; /* inbox_destroy may run before inbox_init */
    /* next_seq and next_read_ctx: from this start's number (recovery.c) */
    n->request_timeout_ms = cfg->election_ms * 5 > 5000 ? cfg->election_ms * 5 : 5000;
    atomic_init(&n->stop, false);
    atomic_init(&n->stop_asked, false);
    pthread_mutex_init(&n->info_mu, NULL);
    pthread_mutex_init(&n->removed_mu, NULL);
    atomic_init(&n->told_removed, false);
    log_set_node(cfg->id);
    *out = n;
    if (lease_clock_init(&n->leases) < 0 || inbox_init(&n->in) < 0 || node_recover(n) < 0 ||
        lease_clock_reload(&n->leases, n->kv, now_ms()) < 0 ||
        !(n->hub = watch_hub_create(n->kv)) || node_start_transport(n) < 0 ||
        corrupt_check_start(n) < 0)
        return -1;
    kv_set_flush_hook(n->kv, node_want_flush, n);
    if (kv_start_wal_flusher(n->kv) < 0) /* only the tail latency depends on it */
        log_warn("kv: cannot start the log flusher thread; going on without it");
    node_reserve_make(n);
    node_publish_info(n, now_ms());
    node_update_db_size(n);
    return 0;
}

void node_destroy(node *n)
{
    if (!n)
        return;
    corrupt_check_stop(n); /* it asks peers: before the transport goes */
    if (n->tp)
        transport_stop(n->tp);
    shut_down_requests(n);
    if (n->r)
        raft_free(n->r);
    kv_snapjob_free(n->snapjob); /* before kv: it copies kv.db */
    watch_hub_destroy(n->hub); /* before kv: its thread reads history */
    if (n->kv)
        kv_close(n->kv);
    if (n->st)
        storage_close(n->st);
    inbox_destroy(&n->in);
    lease_clock_destroy(&n->leases);
    removed_free(n);
    node_flush_free(n);
    pthread_mutex_destroy(&n->removed_mu);
    pthread_mutex_destroy(&n->info_mu);
    free(n);
}

kv *node_kv(node *n) { return n->kv; }

watch_hub *node_watch_hub(node *n) { return n->hub; }

/* Async-signal-safe: the loop hands leadership over, then stops
 * (failover.c); a second request stops at once. */
void node_request_stop(node *n)
{
    if (atomic_exchange(&n->stop_asked, true))
        atomic_store(&n->stop, true);
}
