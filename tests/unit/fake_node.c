/* fake_node: every function of server/node.h, without Raft. Requests go
 * to one worker thread that applies them straight to a real kv and calls
 * back from that thread, so the api's suspend/resume is exercised across
 * threads as with the real node. Test hooks can fail the next request,
 * hold callbacks back, and change what node_get_info reports.
 *
 * Must never be linked into raftkv itself (it replaces node.o in tests).
 */
#include "server/node.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* test hooks (declared again in api_test.c) */
void fake_node_fail_next(node *n, int status);
void fake_node_hold(node *n, bool hold);
void fake_node_wait_held(node *n, size_t count);
void fake_node_set_leader(node *n, uint64_t leader);

enum job_kind { JOB_PROPOSE, JOB_BARRIER, JOB_MEMBER };

typedef struct job {
    enum job_kind kind;
    uint8_t *cmd;
    size_t len;
    int op;
    uint64_t id;
    char *url;
    uint64_t *chosen;
    node_write_cb wcb;
    node_done_cb dcb;
    void *ud;
    int fail; /* NODE_OK, or the status to answer with */
    struct job *next;
} job;

struct node {
    kv *kv;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    size_t queued;
    bool stop, hold;
    int fail_next;
    uint64_t index, next_id, leader;
    int64_t revision, compact_revision;
};

bool node_disk_full(node *n)
{
    (void)n;
    return false;
}

/* Publishes what node_get_info reports, then answers: like the real node,
 * a client that has its answer must see the write's revision. */
static void finish(node *n, job *j, int status, kv_result *res)
{
    int64_t rev = kv_revision(n->kv), compact = kv_compact_revision(n->kv);
    pthread_mutex_lock(&n->mu);
    n->revision = rev;
    n->compact_revision = compact;
    pthread_mutex_unlock(&n->mu);
    if (j->kind == JOB_PROPOSE)
        j->wcb(j->ud, status, res);
    else
        j->dcb(j->ud, status);
    free(j->cmd);
    free(j->url);
    free(j);
}

static int apply_member(node *n, job *j)
{
    uint64_t id = j->id ? j->id : n->next_id;
    if (j->chosen)
        *j->chosen = id;
    if (kv_apply_begin(n->kv) != KV_OK)
        return NODE_ERR_INTERNAL;
    int rc = kv_apply_member(n->kv, j->op, id, j->url);
    if (rc != KV_OK) {
        kv_apply_rollback(n->kv);
        return rc == KV_ERR_NOT_FOUND ? NODE_ERR_NOT_FOUND : NODE_ERR_INVALID;
    }
    if (kv_apply_commit(n->kv, ++n->index, 1) != KV_OK)
        return NODE_ERR_INTERNAL;
    if (id >= n->next_id)
        n->next_id = id + 1;
    return NODE_OK;
}

static void run_propose(node *n, job *j)
{
    kv_result *res = calloc(1, sizeof *res);
    if (!res || kv_apply_begin(n->kv) != KV_OK) {
        free(res);
        finish(n, j, NODE_ERR_INTERNAL, NULL);
        return;
    }
    if (kv_apply_cmd(n->kv, j->cmd, j->len, res) != KV_OK ||
        kv_apply_commit(n->kv, ++n->index, 1) != KV_OK) {
        kv_apply_rollback(n->kv);
        kv_result_free(res);
        free(res);
        finish(n, j, NODE_ERR_INTERNAL, NULL);
        return;
    }
    finish(n, j, NODE_OK, res);
}

static void run(node *n, job *j)
{
    if (j->fail != NODE_OK) {
        finish(n, j, j->fail, NULL);
    } else if (j->kind == JOB_PROPOSE) {
        run_propose(n, j);
    } else if (j->kind == JOB_MEMBER) {
        finish(n, j, apply_member(n, j), NULL);
    } else {
        finish(n, j, NODE_OK, NULL);
    }
}

static void *worker(void *arg)
{
    node *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->stop && (!n->head || n->hold))
            pthread_cond_wait(&n->cv, &n->mu);
        if (!n->head)
            break; /* stopping and drained */
        job *j = n->head;
        n->head = j->next;
        if (!n->head)
            n->tail = NULL;
        n->queued--;
        if (n->stop)
            j->fail = NODE_ERR_STOPPING;
        pthread_mutex_unlock(&n->mu);
        run(n, j);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

static void submit(node *n, job *j)
{
    pthread_mutex_lock(&n->mu);
    j->fail = n->fail_next;
    n->fail_next = NODE_OK;
    if (n->tail)
        n->tail->next = j;
    else
        n->head = j;
    n->tail = j;
    n->queued++;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

void node_propose(node *n, const uint8_t *cmd, size_t len, node_write_cb cb, void *ud)
{
    job *j = calloc(1, sizeof *j);
    uint8_t *copy = xmemdup(cmd, len);
    if (!j || !copy) {
        free(j);
        free(copy);
        cb(ud, NODE_ERR_INTERNAL, NULL); /* as the real node answers */
        return;
    }
    *j = (job){.kind = JOB_PROPOSE, .cmd = copy, .len = len, .wcb = cb, .ud = ud};
    submit(n, j);
}

void node_read_barrier(node *n, node_done_cb cb, void *ud)
{
    job *j = calloc(1, sizeof *j);
    if (!j) {
        cb(ud, NODE_ERR_INTERNAL);
        return;
    }
    *j = (job){.kind = JOB_BARRIER, .dcb = cb, .ud = ud};
    submit(n, j);
}

void node_change_member(node *n, int op, uint64_t id, const char *peer_url, const buf *stamp,
                        uint64_t *chosen_id, node_done_cb cb, void *ud)
{
    (void)stamp;
    job *j = calloc(1, sizeof *j);
    char *url = peer_url ? xstrdup(peer_url) : NULL;
    if (!j || (peer_url && !url)) {
        free(j);
        free(url);
        cb(ud, NODE_ERR_INTERNAL);
        return;
    }
    *j = (job){.kind = JOB_MEMBER, .op = op, .id = id, .url = url, .chosen = chosen_id,
               .dcb = cb, .ud = ud};
    submit(n, j);
}

void node_get_info(node *n, node_info *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&n->mu);
    out->member_id = 1;
    out->cluster_id = 0x1234567;
    out->leader = n->leader;
    out->raft_term = 1;
    out->raft_index = out->commit_index = out->applied_index = n->index;
    out->revision = n->revision;
    out->compact_revision = n->compact_revision;
    pthread_mutex_unlock(&n->mu);
}

kv *node_kv(node *n) { return n->kv; }

/* leases: no expiry clock here; a fixed minimum TTL */
int64_t node_lease_min_ttl(node *n)
{
    (void)n;
    return 2;
}

int64_t node_lease_remaining_ms(node *n, int64_t id)
{
    (void)n, (void)id;
    return -1;
}

/* The api takes its hub from api_config (api_test passes none); this
 * stays only because server/node.h declares it. */
watch_hub *node_watch_hub(node *n)
{
    (void)n;
    return NULL;
}

int node_create(const config *cfg, node **out)
{
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/kv.db", cfg->data_dir);
    node *n = calloc(1, sizeof *n);
    if (!n)
        return -1;
    n->next_id = 2;
    n->leader = 1;
    if (kv_open(path, &n->kv, err, sizeof err) != KV_OK) {
        fprintf(stderr, "fake node: %s\n", err);
        free(n);
        return -1;
    }
    n->revision = kv_revision(n->kv);
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    if (pthread_create(&n->thread, NULL, worker, n) != 0) {
        kv_close(n->kv);
        free(n);
        return -1;
    }
    *out = n;
    return 0;
}

int node_run(node *n)
{
    pthread_mutex_lock(&n->mu);
    while (!n->stop)
        pthread_cond_wait(&n->cv, &n->mu);
    pthread_mutex_unlock(&n->mu);
    return 0;
}

void node_request_stop(node *n)
{
    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

void node_destroy(node *n)
{
    if (!n)
        return;
    node_request_stop(n);
    pthread_join(n->thread, NULL);
    kv_close(n->kv);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
}

void fake_node_fail_next(node *n, int status)
{
    pthread_mutex_lock(&n->mu);
    n->fail_next = status;
    pthread_mutex_unlock(&n->mu);
}

void fake_node_hold(node *n, bool hold)
{
    pthread_mutex_lock(&n->mu);
    n->hold = hold;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

/* Waits (on a condition, not a clock) until count requests are held. */
void fake_node_wait_held(node *n, size_t count)
{
    pthread_mutex_lock(&n->mu);
    while (n->queued < count)
        pthread_cond_wait(&n->cv, &n->mu);
    pthread_mutex_unlock(&n->mu);
}

void fake_node_set_leader(node *n, uint64_t leader)
{
    pthread_mutex_lock(&n->mu);
    n->leader = leader;
    pthread_mutex_unlock(&n->mu);
}

/* The fake has one member and no transfers: moving leadership is refused. */
void node_move_leader(node *n, uint64_t to, node_done_cb cb, void *ud)
{
    (void)n;
    (void)to;
    cb(ud, NODE_ERR_NOT_FOUND);
}
