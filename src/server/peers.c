/* peers: what the transport calls, and what the node tells the transport
 * about its peers. The callbacks run on transport threads: they only turn
 * what arrived into inbox events (dropped when the inbox is full: Raft
 * retransmits) and must never touch the Raft core or kv, which belong to
 * the node thread. */
#include "server/peers.h"
#include "util/failpoint.h"

#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ */
/* Transport callbacks (transport threads): queue for the loop          */
/* ------------------------------------------------------------------ */

static bool push_or_drop(node *n, event *ev)
{
    if (inbox_push(&n->in, ev) == 0)
        return true;
    event_free(ev);
    return false;
}

static bool on_messages(void *ud, raft_msg *msgs, size_t cnt, transport_answer *answer,
                        const transport_seq *seq)
{
    node *n = ud;
    event *ev = calloc(1, sizeof *ev);
    if (!ev) {
        transport_free_msgs(msgs, cnt);
        return false;
    }
    ev->kind = EV_MSGS;
    ev->msgs = msgs;
    ev->n = cnt;
    ev->answer = answer;
    /* only a batch whose sender waits for our answer may be held back */
    ev->has_seq = seq && answer;
    if (ev->has_seq)
        ev->seq = *seq;
    return push_or_drop(n, ev);
}

static void on_snapshot(void *ud, raft_msg *msg, char *path)
{
    node *n = ud;
    event *ev = calloc(1, sizeof *ev);
    if (!ev) {
        transport_free_msgs(msg, 1);
        remove(path);
        free(path);
        return;
    }
    ev->kind = EV_SNAP_RECV;
    ev->msgs = msg;
    ev->n = 1;
    ev->path = path;
    push_or_drop(n, ev);
}

static void on_peer_report(node *n, int kind, raft_id peer, bool ok)
{
    event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return;
    ev->kind = kind;
    ev->peer = peer;
    ev->ok = ok;
    push_or_drop(n, ev);
}

static void on_unreachable(void *ud, raft_id peer) { on_peer_report(ud, EV_UNREACHABLE, peer, false); }
static void on_snapshot_sent(void *ud, raft_id peer, bool ok) { on_peer_report(ud, EV_SNAP_SENT, peer, ok); }
static bool is_removed(void *ud, raft_id id) { return removed_has(ud, id); }

static void on_removed(void *ud)
{
    node *n = ud;
    if (!atomic_exchange(&n->told_removed, true))
        log_warn("a peer says this node was removed from the cluster");
}

/* ------------------------------------------------------------------ */
/* Peer list and transport start (node thread)                         */
/* ------------------------------------------------------------------ */

int node_each_member_url(node *n, member_url_fn fn, void *ud)
{
    kv_conn *c = kv_reader_acquire(n->kv);
    kv_member *m = NULL;
    size_t nm = 0;
    /* a table that cannot be read is not an empty one: --cluster would
     * name URLs members may have moved from */
    int rc = c && kv_members(c, &m, &nm) == KV_OK ? 0 : -1;
    bool more = rc == 0;
    for (size_t i = 0; more && i < nm; i++)
        more = fn(ud, m[i].id, m[i].peer_url);
    for (size_t i = 0; more && nm == 0 && i < n->cfg->n_peers; i++)
        more = fn(ud, i + 1, n->cfg->peers[i]);
    kv_members_free(m, nm);
    if (c)
        kv_reader_release(n->kv, c);
    return rc;
}

typedef struct {
    node *n;
    bool failed;
} sync_walk;

static bool set_peer(void *ud, uint64_t id, const char *url)
{
    sync_walk *w = ud;
    if (id != w->n->cfg->id && transport_set_peer(w->n->tp, id, url) < 0)
        w->failed = true;
    return !w->failed;
}

int node_sync_peers(node *n)
{
    if (failpoint_hit("peers.sync"))
        return -1;
    sync_walk w = {.n = n};
    return node_each_member_url(n, set_peer, &w) < 0 || w.failed ? -1 : 0;
}

/* GET /raft/hash on the peer port (listener thread): a kv reader, never
 * the loop. */
static int on_hash(void *ud, int64_t rev, transport_hash *out)
{
    return node_hash(ud, rev, out);
}

int node_hash(node *n, int64_t rev, transport_hash *out)
{
    kv_conn *c = kv_reader_acquire(n->kv);
    if (!c)
        return TRANSPORT_HASH_ERROR;
    int rc = kv_hash(c, rev, &out->hash, &out->compact_revision, &out->revision);
    kv_reader_release(n->kv, c);
    switch (rc) {
    case KV_OK: return TRANSPORT_HASH_OK;
    case KV_ERR_COMPACTED: return TRANSPORT_HASH_COMPACTED;
    case KV_ERR_FUTURE_REV: return TRANSPORT_HASH_FUTURE;
    case KV_ERR_CORRUPT: return TRANSPORT_HASH_CORRUPT;
    default: return TRANSPORT_HASH_ERROR;
    }
}

int node_start_transport(node *n)
{
    char err[256] = "";
    transport_config tc = {
        .cluster_id = n->cluster_id,
        .self = n->cfg->id,
        .listen_host = n->cfg->listen_host,
        .listen_port = n->cfg->listen_port,
        .tls = n->cfg->peer_tls,
        .cert_file = n->cfg->peer_cert_file,
        .key_file = n->cfg->peer_key_file,
        .ca_file = n->cfg->peer_trusted_ca_file,
        .data_dir = n->cfg->data_dir,
        .queue_cap = 4096,
        .max_snapshot_bytes = 64ull << 30,
        .loop_driven = true, /* node_run polls it (node.c wait_for_work) */
        .cb = {.ud = n, .on_messages = on_messages, .on_snapshot = on_snapshot,
               .on_unreachable = on_unreachable, .on_snapshot_sent = on_snapshot_sent,
               .is_removed = is_removed, .on_removed = on_removed, .hash = on_hash},
    };
    n->tp = transport_start(&tc, err, sizeof err);
    if (!n->tp) {
        log_error("peer listener %s:%u: %s", n->cfg->listen_host, n->cfg->listen_port, err);
        return -1;
    }
    if (node_sync_peers(n) < 0) {
        log_error("cannot point the transport at the members' peer URLs");
        return -1;
    }
    return 0;
}

uint64_t node_peer_requests(node *n) { return n->tp ? transport_requests(n->tp) : 0; }
