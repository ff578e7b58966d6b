/* recovery: turns a data dir into a running Raft core — a brand new
 * cluster (bootstrap), a node joining one (--join), or a restart. It refuses
 * a data dir that is damaged or belongs to another node, and repairs the
 * one gap a crash can leave: a key-value database behind the last snapshot
 * is restored from the snapshot file before anything is served. Must never
 * start Raft on a data dir it could not check. */
#include "server/envelope.h"
#include "server/node_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CLUSTER_ID_MASK ((1ull << 53) - 1) /* stays a safe JSON integer */

/* The peer URLs and --initial-cluster-token, as etcd mixes its token in:
 * two clusters on the same URLs get different ids. */
static uint64_t cluster_id_from_peers(const config *c)
{
    buf b;
    buf_init(&b);
    for (size_t i = 0; i < c->n_peers; i++) {
        if (buf_append(&b, c->peers[i], strlen(c->peers[i]) + 1) < 0)
            break;
    }
    (void)buf_append(&b, c->cluster_token, strlen(c->cluster_token) + 1);
    uint64_t id = fnv64(b.data, b.len) & CLUSTER_ID_MASK;
    buf_free(&b);
    return id ? id : 1;
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    log_error("cannot create data dir %s: %s", path, strerror(errno));
    return -1;
}

/* The first entries of a new cluster: one membership entry per initial
 * peer, committed at term 1 by every founding node alike, so a node that
 * joins later learns the whole membership history from the log. */
static int bootstrap_log(node *n)
{
    const config *c = n->cfg;
    raft_entry ents[CONFIG_MAX_PEERS];
    buf datas[CONFIG_MAX_PEERS];
    int rc = 0;
    for (size_t i = 0; i < c->n_peers; i++) {
        buf ctx;
        buf_init(&ctx);
        buf_init(&datas[i]);
        raft_conf_change cc = {.op = RAFT_CONF_ADD_VOTER, .id = i + 1};
        if (envelope_wrap(&ctx, 0, 0, c->peers[i], strlen(c->peers[i])) < 0)
            rc = -1;
        cc.ctx = ctx.data;
        cc.ctx_len = (uint32_t)ctx.len;
        size_t sz = raft_conf_change_size(&cc);
        if (rc == 0 && buf_reserve(&datas[i], sz) == 0 &&
            raft_conf_change_encode(&cc, datas[i].data, sz) == sz)
            datas[i].len = sz;
        else
            rc = -1;
        buf_free(&ctx);
        ents[i] = (raft_entry){.term = 1, .index = i + 1, .type = RAFT_ENTRY_CONF,
                               .len = (uint32_t)datas[i].len, .data = datas[i].data,
                               .crc = crc32c(0, datas[i].data, datas[i].len)};
    }
    raft_hard_state hs = {.term = 1, .vote = 0, .commit = c->n_peers};
    if (rc == 0 && storage_append(n->st, &hs, ents, c->n_peers) < 0) {
        log_error("bootstrap: %s", storage_errmsg(n->st));
        rc = -1;
    }
    for (size_t i = 0; i < c->n_peers; i++)
        buf_free(&datas[i]);
    return rc;
}

static int fetch_cluster_id(node *n, uint64_t *id)
{
    const config *c = n->cfg;
    uint64_t deadline = now_ms() + 60000;
    while (now_ms() < deadline && !atomic_load(&n->stop)) {
        for (size_t i = 0; i < c->n_peers; i++) {
            if (i + 1 != c->id && transport_fetch_cluster_id(c->peers[i], id, 1000) == 0)
                return 0;
        }
    }
    log_error("--join: no peer in --cluster answered with its cluster id");
    return -1;
}

static int establish_identity(node *n)
{
    uint64_t node_id = 0, cluster_id = 0;
    int rc = storage_get_identity(n->st, &node_id, &cluster_id);
    if (rc < 0) {
        log_error("%s", storage_errmsg(n->st));
        return -1;
    }
    if (rc == 0) {
        if (node_id != n->cfg->id) {
            log_error("data dir %s belongs to node %llu, not --id %llu; refusing to start",
                      n->cfg->data_dir, (unsigned long long)node_id,
                      (unsigned long long)n->cfg->id);
            return -1;
        }
        n->cluster_id = cluster_id;
        return 1; /* restart */
    }
    if (n->cfg->join) {
        if (fetch_cluster_id(n, &cluster_id) < 0)
            return -1;
    } else {
        cluster_id = cluster_id_from_peers(n->cfg);
    }
    if (storage_set_identity(n->st, n->cfg->id, cluster_id) < 0) {
        log_error("%s", storage_errmsg(n->st));
        return -1;
    }
    n->cluster_id = cluster_id;
    if (!n->cfg->join)
        return bootstrap_log(n) < 0 ? -1 : 0;
    return 0;
}

/* kv.db is written with synchronous=NORMAL (the log can replay it), so
 * after a crash it may be older than the last snapshot, whose entries are
 * gone from the log: restore it from the snapshot file first. */
static int catch_up_kv(node *n)
{
    uint64_t applied, term;
    kv_applied(n->kv, &applied, &term);
    if (n->snap.meta.index == 0 || applied >= n->snap.meta.index)
        return 0;
    char err[256] = "";
    char *path = storage_snapshot_path(n->st, n->snap.meta.index);
    int rc = -1;
    if (!path)
        return -1;
    if (storage_verify_snapshot(n->st, &n->snap) < 0)
        log_error("snapshot %s: %s", path, storage_errmsg(n->st));
    else if (kv_restore(n->kv, path, err, sizeof err) < 0)
        log_error("restoring kv from snapshot %s: %s", path, err);
    else
        rc = 0;
    free(path);
    return rc;
}

static int conf_from_kv(node *n, raft_conf *conf)
{
    kv_conn *c = kv_reader_acquire(n->kv);
    kv_member *m = NULL;
    size_t nm = 0;
    memset(conf, 0, sizeof *conf);
    if (!c || kv_members(c, &m, &nm) != KV_OK) {
        if (c)
            kv_reader_release(n->kv, c);
        return -1;
    }
    kv_reader_release(n->kv, c);
    for (size_t i = 0; i < nm && i < RAFT_MAX_MEMBERS; i++) {
        if (m[i].is_learner)
            conf->learners[conf->n_learners++] = m[i].id;
        else
            conf->voters[conf->n_voters++] = m[i].id;
    }
    kv_members_free(m, nm);
    return 0;
}

static int open_stores(node *n)
{
    char err[512] = "";
    char path[4096];
    if (make_dir(n->cfg->data_dir) < 0)
        return -1;
    if (storage_open(n->cfg->data_dir, &n->st, err, sizeof err) < 0) {
        log_error("refusing to start: %s", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/kv.db", n->cfg->data_dir);
    if (kv_open(path, &n->kv, err, sizeof err) < 0) {
        log_error("refusing to start: %s", err);
        return -1;
    }
    return 0;
}

/* The latest snapshot file is checked against the size and CRC-32C raft.db
 * recorded for it at every start, not only when kv.db needs it: it is what
 * a slow follower would be sent. */
static int verify_snapshot_file(node *n)
{
    if (n->snap.meta.index == 0)
        return 0;
    if (storage_verify_snapshot(n->st, &n->snap) == 0)
        return 0;
    log_error("refusing to start: snapshot: %s", storage_errmsg(n->st));
    return -1;
}

static uint32_t entry_checksum(const uint8_t *data, size_t len)
{
    return crc32c(0, data, len);
}

static int start_raft(node *n)
{
    raft_hard_state hs;
    raft_entry *ents = NULL;
    size_t n_ents = 0;
    if (storage_load(n->st, &hs, &n->snap, &ents, &n_ents) < 0) {
        log_error("refusing to start: %s", storage_errmsg(n->st));
        return -1;
    }
    storage_cleanup_snapshots(n->st);
    int rc = -1;
    if (verify_snapshot_file(n) < 0)
        goto out;
    raft_init_state init = {.hs = hs, .snap = n->snap.meta, .n_entries = n_ents, .entries = ents};
    n->durable_hs = hs;
    uint64_t applied, term;
    if (catch_up_kv(n) < 0 || conf_from_kv(n, &init.conf) < 0 || removed_load(n) < 0)
        goto out;
    kv_applied(n->kv, &applied, &term);
    /* Only committed entries are applied, but the commit index itself is
     * written without an fsync (storage.h), so after a crash kv.db may be
     * ahead of it: the entries it applied are committed. Beyond the log
     * itself, though, kv.db cannot belong to this log. */
    raft_index last = n_ents ? ents[n_ents - 1].index : n->snap.meta.index;
    if (applied > last) {
        log_error("refusing to start: kv.db applied index %llu is beyond the log's last index %llu",
                  (unsigned long long)applied, (unsigned long long)last);
        goto out;
    }
    if (applied > init.hs.commit)
        init.hs.commit = applied;
    init.applied = applied;
    n->last_snapshot_index = n->snap.meta.index;
    const config *c = n->cfg;
    int election_tick = (int)(c->election_ms / c->heartbeat_ms);
    raft_config rc_cfg = {.id = c->id, .election_tick = election_tick, .heartbeat_tick = 1,
                          .pre_vote = true, .check_quorum = true, .max_inflight = 256,
                          .max_msg_bytes = 1u << 20, .seed = now_ms() ^ (c->id << 32),
                          .checksum = entry_checksum,
                          .defer_commit_notice = true /* node.c commit_notice_turn */};
    if (raft_new(&rc_cfg, &init, &n->r) != RAFT_OK) {
        log_error("cannot start the raft core");
        goto out;
    }
    log_info("started: term=%llu commit=%llu applied=%llu snapshot=%llu log=%zu entries",
             (unsigned long long)hs.term, (unsigned long long)hs.commit,
             (unsigned long long)applied, (unsigned long long)n->snap.meta.index, n_ents);
    rc = 0;
out:
    storage_free_entries(ents, n_ents);
    return rc;
}

/* Sequence numbers and read contexts start from this start's number:
 * entries proposed before a crash may still be applied after it, and a
 * late answer to a read round of the previous life must confirm nothing
 * (a read state confirms every round at or below its context). 2^40 per
 * start is more than a node proposes in its life. */
static int number_this_start(node *n)
{
    uint64_t inc;
    if (storage_next_incarnation(n->st, &inc) < 0) {
        log_error("refusing to start: %s", storage_errmsg(n->st));
        return -1;
    }
    n->next_seq = (inc << 40) + 1;
    n->next_read_ctx = inc << 40;
    return 0;
}

int node_recover(node *n)
{
    if (open_stores(n) < 0)
        return -1;
    int id = establish_identity(n);
    if (id < 0 || number_this_start(n) < 0)
        return -1;
    return start_raft(n);
}
