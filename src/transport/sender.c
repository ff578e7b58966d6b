/* sender: pushes Raft messages and snapshots to peers with a libcurl
 * multi handle — from the node loop itself (cfg.loop_driven: a message
 * leaves in the turn that produced it, and the loop's one wait covers the
 * peers' sockets and its inbox) or from a thread of its own.
 *
 * Per peer: a bounded queue (full => the new message is dropped; Raft
 * retransmits), up to LANES message requests in flight, each on a lane of
 * its own (an easy handle and its keep-alive connection), everything
 * queued when a lane frees sent as one batch numbered in the peer's order
 * (Raftkv-Seq: the peer steps its batches in that order, peer_order.c),
 * and an exponential backoff after a failure. Pipelining: a follower
 * answers a batch only once it is durable (answers.c), so with one lane
 * the leader could not send the next batch until then; with two the next
 * one is in the follower's inbox when its fsync ends. Beside the lanes, at
 * most one snapshot upload. Every batch asks to be answered in its
 * response (Raftkv-Answer): the peer's messages back to us arrive there,
 * checked like the listener checks a request, and go to on_messages.
 *
 * Locking: `mu` guards the peer list, every queue, url, removed and
 * snap_busy. Fields marked "thread" are touched only by the driving thread
 * (the sender's, or the node loop), which is also the only one that frees
 * a peer, so it may keep peer pointers across an unlock. Callbacks run with
 * no lock held.
 *
 * Must never block a caller: transport_send only copies into a queue (and,
 * loop-driven, moves what the sockets take without waiting). */
#include "transport/transport_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MSG_CONNECT_MS 1000L
#define MSG_TIMEOUT_MS 5000L
#define BACKOFF_MIN_MS 50u
#define BACKOFF_MAX_MS 1000u
#define IDLE_POLL_MS 1000
#define LANES_MAX 4

struct peer;

/* What a handle's CURLOPT_PRIVATE points at: a lane, or (a snapshot
 * upload) its peer; both begin with the tag. */
enum { TAG_LANE = 1, TAG_PEER };

/* One request in flight at a time; thread-only. */
typedef struct lane {
    int tag;
    struct peer *p;
    CURL *easy;
    struct curl_slist *headers; /* the sender's, then this batch's Raftkv-Seq: */
    struct curl_slist *seq_hdr; /* its last node, rewritten per batch */
    bool busy, start;
    raft_msg *batch;
    size_t batch_n;
    buf body;
    buf answer;             /* the response body: the peer's messages to us */
    bool answer_too_large;
    char err[CURL_ERROR_SIZE]; /* libcurl's words for the last failure */
} lane;

typedef struct peer {
    int tag;
    struct peer *next;
    raft_id id;
    char *url;              /* mu */
    bool removed;           /* mu: the thread will abort and free it */
    raft_msg *q;            /* mu: FIFO of owned copies */
    size_t q_len, q_cap;    /* mu */
    transport_snap_job *snap_pending; /* mu: handed to the thread */
    bool snap_busy;         /* mu: pending or active */
    /* thread */
    lane lanes[LANES_MAX];
    uint64_t epoch;         /* this peer object's numbering (peer_order.h) */
    uint64_t seq;           /* batches numbered so far */
    transport_snap_job *snap_active;
    bool start_msg, start_snap, snap_armed;
    uint32_t backoff_ms;
    uint64_t retry_at;
    bool tls_warned;        /* its TLS failure is in the log since its last success */
    struct peer *ready_next;
} peer;

struct transport_sender {
    transport_config cfg;
    pthread_mutex_t mu;
    peer *peers; /* mu */
    bool stop;   /* mu */
    CURLM *multi;
    struct curl_slist *msg_headers;
    bool threaded;
    unsigned lanes; /* per peer, 1..LANES_MAX */
    uint64_t last_epoch; /* mu: the last peer object's epoch */
    pthread_t thread;
    uint64_t requests; /* message requests started (atomic: read by /metrics) */
};

static peer *find_peer(transport_sender *s, raft_id id)
{
    for (peer *p = s->peers; p; p = p->next)
        if (p->id == id && !p->removed)
            return p;
    return NULL;
}

static void snap_report(transport_sender *s, raft_id id, bool ok)
{
    if (s->cfg.cb.on_snapshot_sent)
        s->cfg.cb.on_snapshot_sent(s->cfg.cb.ud, id, ok);
}

/* Thread, after the peer left the list: nothing else can reach it. */
static void lane_free(transport_sender *s, lane *l)
{
    if (l->easy) {
        if (l->busy)
            curl_multi_remove_handle(s->multi, l->easy);
        curl_easy_cleanup(l->easy);
    }
    curl_slist_free_all(l->headers);
    transport_free_msgs(l->batch, l->batch_n);
    buf_free(&l->body);
    buf_free(&l->answer);
}

static void peer_free(transport_sender *s, peer *p, bool report)
{
    for (unsigned i = 0; i < LANES_MAX; i++)
        lane_free(s, &p->lanes[i]);
    transport_free_msgs(p->q, p->q_len);
    transport_snap_job *jobs[2] = {p->snap_pending, p->snap_active};
    for (int i = 0; i < 2; i++) {
        if (!jobs[i])
            continue;
        if (jobs[i] == p->snap_active)
            curl_multi_remove_handle(s->multi, jobs[i]->easy);
        transport_snap_job_free(jobs[i]);
        if (report)
            snap_report(s, p->id, false);
    }
    free(p->url);
    free(p);
}

/* Wall-clock nanoseconds: a peer object made after a restart numbers in
 * a later epoch than any of the last life's. */
static uint64_t sender_epoch(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the caller side ---- */

int transport_sender_set_peer(transport_sender *s, raft_id id, const char *url)
{
    char *u = xstrdup(url);
    if (!u)
        return -1;
    pthread_mutex_lock(&s->mu);
    peer *p = find_peer(s, id);
    if (p) {
        free(p->url);
        p->url = u; /* the next request uses it */
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        pthread_mutex_unlock(&s->mu);
        free(u);
        return -1;
    }
    p->tag = TAG_PEER;
    /* a new peer object numbers from 1 in an epoch of its own, above any
     * earlier one's (a peer removed and added again) */
    uint64_t now = sender_epoch();
    p->epoch = s->last_epoch = now > s->last_epoch ? now : s->last_epoch + 1;
    p->id = id;
    p->url = u;
    for (unsigned i = 0; i < LANES_MAX; i++) {
        p->lanes[i].tag = TAG_LANE;
        p->lanes[i].p = p;
        buf_init(&p->lanes[i].body);
        buf_init(&p->lanes[i].answer);
    }
    p->next = s->peers;
    s->peers = p;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void transport_sender_remove_peer(transport_sender *s, raft_id id)
{
    pthread_mutex_lock(&s->mu);
    peer *p = find_peer(s, id);
    if (p) {
        p->removed = true;
        transport_free_msgs(p->q, p->q_len);
        p->q = NULL;
        p->q_len = p->q_cap = 0;
    }
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
}

/* mu held. Drops the message when the queue is full or memory is short. */
static void enqueue(transport_sender *s, peer *p, const raft_msg *m)
{
    if (p->q_len >= s->cfg.queue_cap || xgrow(&p->q, &p->q_cap, p->q_len, sizeof *p->q) < 0)
        return;
    if (transport_msg_copy(m, &p->q[p->q_len]) == 0)
        p->q_len++;
}

static int sender_pass(transport_sender *s);

void transport_sender_send(transport_sender *s, const raft_msg *msgs, size_t n)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        peer *p = find_peer(s, msgs[i].to);
        if (p)
            enqueue(s, p, &msgs[i]);
    }
    pthread_mutex_unlock(&s->mu);
    if (s->threaded) {
        handoff_count(HANDOFF_SENDER);
        curl_multi_wakeup(s->multi);
    } else {
        sender_pass(s); /* out now: before the caller's fsync */
    }
}

void transport_sender_snapshot(transport_sender *s, const raft_msg *msg, const char *path,
                               uint64_t size, uint32_t crc)
{
    transport_snap_job *j = transport_snap_job_new(s->cfg.cluster_id, msg, path, size, crc);
    pthread_mutex_lock(&s->mu);
    peer *p = find_peer(s, msg->to);
    bool accepted = j && p && !p->snap_busy;
    if (accepted) {
        p->snap_pending = j;
        p->snap_busy = true;
    }
    pthread_mutex_unlock(&s->mu);
    if (!accepted) {
        if (!j)
            log_warn("transport: cannot prepare snapshot %s for peer %llu", path,
                     (unsigned long long)msg->to);
        transport_snap_job_free(j);
        snap_report(s, msg->to, false);
        return;
    }
    curl_multi_wakeup(s->multi);
}

/* ---- the thread: picking work (mu held) ---- */

/* Moves the head of the queue, up to TRANSPORT_BATCH_MAX_BYTES, into l->batch. */
static int take_batch(peer *p, lane *l)
{
    size_t n = 0, bytes = 0;
    for (; n < p->q_len; n++) {
        size_t sz = transport_msg_wire_size(&p->q[n]);
        if (n > 0 && bytes + sz > TRANSPORT_BATCH_MAX_BYTES)
            break;
        bytes += sz;
    }
    l->batch = malloc(n * sizeof *l->batch);
    if (!l->batch)
        return -1;
    memcpy(l->batch, p->q, n * sizeof *l->batch);
    memmove(p->q, p->q + n, (p->q_len - n) * sizeof *p->q);
    l->batch_n = n;
    p->q_len -= n;
    return 0;
}

static size_t keep_answer(char *data, size_t size, size_t nmemb, void *ud)
{
    lane *l = ud;
    size_t n = size * nmemb;
    if (l->answer_too_large || n > TRANSPORT_BODY_MAX_BYTES - l->answer.len ||
        buf_append(&l->answer, data, n) < 0)
        l->answer_too_large = true; /* read on, deliver nothing */
    return n;
}

/* The lane's header list, made once: the sender's headers and a last
 * node for the batch number. */
static int make_headers(transport_sender *s, lane *l)
{
    struct curl_slist *h = NULL;
    for (const struct curl_slist *b = s->msg_headers; b; b = b->next)
        if (!(h = transport_slist_add(h, b->data)))
            return -1;
    if (!(h = transport_slist_add(h, TRANSPORT_HDR_SEQ ": 0.0")))
        return -1;
    for (l->seq_hdr = h; l->seq_hdr->next;)
        l->seq_hdr = l->seq_hdr->next;
    l->headers = h;
    return curl_easy_setopt(l->easy, CURLOPT_HTTPHEADER, h) == CURLE_OK ? 0 : -1;
}

/* This batch's number (the peer object's epoch, its sequence): the peer
 * steps our batches in that order. One string per batch, in place. */
static int number_batch(peer *p, lane *l, uint64_t seq)
{
    char line[80];
    snprintf(line, sizeof line, TRANSPORT_HDR_SEQ ": %llu.%llu", (unsigned long long)p->epoch,
             (unsigned long long)seq);
    char *d = xstrdup(line);
    if (!d)
        return -1;
    free(l->seq_hdr->data); /* libcurl's list strings are malloc'd: its free */
    l->seq_hdr->data = d;
    return 0;
}

static int arm_easy(transport_sender *s, peer *p, lane *l)
{
    if (!l->easy) {
        l->easy = curl_easy_init();
        if (!l->easy)
            return -1;
        transport_curl_common(l->easy, MSG_CONNECT_MS);
        curl_easy_setopt(l->easy, CURLOPT_TIMEOUT_MS, MSG_TIMEOUT_MS);
        curl_easy_setopt(l->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(l->easy, CURLOPT_PRIVATE, l);
        curl_easy_setopt(l->easy, CURLOPT_WRITEFUNCTION, keep_answer);
        curl_easy_setopt(l->easy, CURLOPT_WRITEDATA, l);
        curl_easy_setopt(l->easy, CURLOPT_ERRORBUFFER, l->err);
    }
    if (!l->headers && make_headers(s, l) < 0)
        return -1;
    char *url = transport_url_join(p->url, "/raft/message");
    if (!url)
        return -1;
    CURLcode rc = curl_easy_setopt(l->easy, CURLOPT_URL, url);
    free(url);
    return rc == CURLE_OK ? number_batch(p, l, p->seq + 1) : -1;
}

static lane *free_lane(transport_sender *s, peer *p)
{
    for (unsigned i = 0; i < s->lanes; i++)
        if (!p->lanes[i].busy && !p->lanes[i].start)
            return &p->lanes[i];
    return NULL;
}

/* mu held: decides what this peer starts now; returns how long the thread
 * may sleep as far as this peer is concerned. */
static int pick_work(transport_sender *s, peer *p, uint64_t now, peer **ready)
{
    int timeout = IDLE_POLL_MS;
    p->start_msg = p->start_snap = false;
    if (p->snap_pending && !p->snap_active) {
        p->snap_active = p->snap_pending;
        p->snap_pending = NULL;
        p->snap_armed = transport_snap_job_arm(p->snap_active, p->url) == 0;
        curl_easy_setopt(p->snap_active->easy, CURLOPT_PRIVATE, p);
        p->start_snap = true;
    }
    lane *l;
    while (p->q_len > 0 && (l = free_lane(s, p))) {
        if (now < p->retry_at) {
            timeout = (int)(p->retry_at - now);
            break;
        }
        if (arm_easy(s, p, l) < 0 || take_batch(p, l) < 0)
            break;
        p->seq++;
        l->start = p->start_msg = true;
    }
    if (p->start_msg || p->start_snap) {
        p->ready_next = *ready;
        *ready = p;
    }
    return timeout;
}

/* mu held: unlinks removed peers into *dead and picks work for the rest. */
static int collect(transport_sender *s, peer **dead, peer **ready)
{
    uint64_t now = now_ms();
    int timeout = IDLE_POLL_MS;
    for (peer **pp = &s->peers; *pp;) {
        peer *p = *pp;
        if (p->removed) {
            *pp = p->next;
            p->next = *dead;
            *dead = p;
            continue;
        }
        int t = pick_work(s, p, now, ready);
        if (t < timeout)
            timeout = t;
        pp = &p->next;
    }
    return timeout;
}

/* ---- the thread: starting and finishing requests (no lock) ---- */

static void drop_batch(lane *l)
{
    transport_free_msgs(l->batch, l->batch_n);
    l->batch = NULL;
    l->batch_n = 0;
    buf_reset(&l->body);
    buf_reset(&l->answer);
    l->answer_too_large = false;
    l->busy = l->start = false;
}

/* The peer's messages to us in its answer: held to what its listener
 * would accept from it as a request (our cluster, from that peer, to us). */
static void take_answer(transport_sender *s, peer *p, lane *l)
{
    raft_msg *msgs;
    size_t n;
    const char *err = NULL;
    if (l->answer_too_large)
        err = "too large";
    else if (transport_decode(l->answer.data, l->answer.len, s->cfg.cluster_id, &msgs, &n, &err) == 0) {
        for (size_t i = 0; i < n && !err; i++)
            if (msgs[i].from != p->id || (s->cfg.self && msgs[i].to != s->cfg.self))
                err = "a message not from that peer to us";
        if (err || !s->cfg.cb.on_messages)
            transport_free_msgs(msgs, n);
        else
            s->cfg.cb.on_messages(s->cfg.cb.ud, msgs, n, NULL, NULL);
    }
    if (err)
        log_warn("transport: answer from peer %llu dropped: %s", (unsigned long long)p->id, err);
}

static void msg_done(transport_sender *s, lane *l, bool ok, long code)
{
    peer *p = l->p;
    if (ok && code == 200)
        take_answer(s, p, l);
    drop_batch(l);
    if (ok) {
        p->backoff_ms = 0;
        p->retry_at = 0;
        return;
    }
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (p->backoff_ms > BACKOFF_MAX_MS)
        p->backoff_ms = BACKOFF_MAX_MS;
    p->retry_at = now_ms() + p->backoff_ms;
    if (s->cfg.cb.on_unreachable)
        s->cfg.cb.on_unreachable(s->cfg.cb.ud, p->id);
}

static void snap_done(transport_sender *s, peer *p, bool ok)
{
    transport_snap_job_free(p->snap_active);
    p->snap_active = NULL;
    pthread_mutex_lock(&s->mu);
    p->snap_busy = false;
    pthread_mutex_unlock(&s->mu);
    if (!ok)
        log_warn("transport: snapshot to peer %llu failed", (unsigned long long)p->id);
    snap_report(s, p->id, ok);
}

static void start_msg(transport_sender *s, lane *l)
{
    l->start = false;
    buf_reset(&l->body);
    if (transport_encode(s->cfg.cluster_id, l->batch, l->batch_n, &l->body) < 0) {
        log_warn("transport: cannot encode %zu messages for peer %llu", l->batch_n,
                 (unsigned long long)l->p->id);
        drop_batch(l); /* not the peer's fault: no backoff */
        return;
    }
    curl_easy_setopt(l->easy, CURLOPT_POSTFIELDS, l->body.data);
    curl_easy_setopt(l->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)l->body.len);
    l->err[0] = '\0';
    l->busy = true;
    __atomic_fetch_add(&s->requests, 1, __ATOMIC_RELAXED);
    if (curl_multi_add_handle(s->multi, l->easy) != CURLM_OK)
        msg_done(s, l, false, 0);
}

static void start_ready(transport_sender *s, peer *ready)
{
    for (peer *p = ready; p; p = p->ready_next) {
        if (p->start_snap) {
            if (!p->snap_armed || curl_multi_add_handle(s->multi, p->snap_active->easy) != CURLM_OK)
                snap_done(s, p, false);
        }
        for (unsigned i = 0; p->start_msg && i < s->lanes; i++)
            if (p->lanes[i].start)
                start_msg(s, &p->lanes[i]);
    }
}

/* A peer whose TLS handshake fails never heals by retrying: its
 * certificate does not cover the address in its URL, comes from another
 * CA, or it refuses ours. Say so once per run of failures, so that an
 * operator hears of it and a peer that stays wrong costs one line, not one
 * per retry. */
static void note_outcome(peer *p, CURLcode rc, const char *detail)
{
    if (rc == CURLE_OK) {
        p->tls_warned = false;
        return;
    }
    if (p->tls_warned || !transport_curl_tls_error(rc))
        return;
    p->tls_warned = true;
    char line[CURL_ERROR_SIZE]; /* it may quote the peer's certificate: one line */
    snprintf(line, sizeof line, "%s", detail && detail[0] ? detail : curl_easy_strerror(rc));
    for (char *c = line; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    log_warn("transport: TLS with peer %llu failed: %s", (unsigned long long)p->id, line);
}

/* Returns how many requests finished. */
static int finish_done(transport_sender *s)
{
    CURLMsg *m;
    int left, done = 0;
    while ((m = curl_multi_info_read(s->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        done++;
        CURL *e = m->easy_handle;
        bool ok = transport_curl_ok(e, m->data.result);
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        if (code == 410 && s->cfg.cb.on_removed)
            s->cfg.cb.on_removed(s->cfg.cb.ud);
        char *priv = NULL; /* a lane's handle points at the lane, a snapshot's at its peer */
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        curl_multi_remove_handle(s->multi, e);
        if (!priv)
            continue;
        if (*(int *)priv == TAG_LANE) {
            lane *l = (lane *)priv;
            note_outcome(l->p, m->data.result, l->err);
            msg_done(s, l, ok, code);
            continue;
        }
        peer *p = (peer *)priv;
        note_outcome(p, m->data.result, NULL);
        if (p->snap_active && e == p->snap_active->easy)
            snap_done(s, p, ok);
    }
    return done;
}

static void bury(transport_sender *s, peer *dead, bool report)
{
    while (dead) {
        peer *next = dead->next;
        peer_free(s, dead, report);
        dead = next;
    }
}

/* Starts what may start, moves what the sockets take, finishes what is
 * done — without waiting; returns how long the caller may wait as far as
 * queued work is concerned, or -1 once stopping. */
static int sender_pass(transport_sender *s)
{
    for (;;) {
        peer *dead = NULL, *ready = NULL;
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop;
        int timeout = stop ? 0 : collect(s, &dead, &ready);
        pthread_mutex_unlock(&s->mu);
        if (stop)
            return -1;
        bury(s, dead, true);
        start_ready(s, ready);
        int running;
        curl_multi_perform(s->multi, &running);
        /* a finished request frees its peer: what was queued behind it must
         * go now, not after the next wake-up (up to a heartbeat later) */
        if (finish_done(s) == 0)
            return timeout;
    }
}

static void *sender_main(void *arg)
{
    transport_sender *s = arg;
    int timeout;
    while ((timeout = sender_pass(s)) >= 0)
        curl_multi_poll(s->multi, NULL, 0, timeout, NULL);
    return NULL;
}

void transport_sender_poll(transport_sender *s, int wake_fd, int listen_fd, int timeout_ms)
{
    int t = sender_pass(s);
    if (t < 0)
        return;
    struct curl_waitfd w[2];
    unsigned n = 0;
    if (wake_fd >= 0)
        w[n++] = (struct curl_waitfd){.fd = wake_fd, .events = CURL_WAIT_POLLIN};
    if (listen_fd >= 0)
        w[n++] = (struct curl_waitfd){.fd = listen_fd, .events = CURL_WAIT_POLLIN};
    curl_multi_poll(s->multi, n ? w : NULL, n, t < timeout_ms ? t : timeout_ms, NULL);
    sender_pass(s);
}

uint64_t transport_sender_requests(const transport_sender *s)
{
    return __atomic_load_n(&s->requests, __ATOMIC_RELAXED);
}

/* ---- lifecycle ---- */

/* Lanes per peer: RAFTKV_PEER_LANES (1..4) to measure with, else 2 —
 * pipelining needs answers (without them a request ends at once). */
static unsigned sender_lanes(void)
{
    const char *v = getenv("RAFTKV_PEER_LANES");
    const char *ans = getenv("RAFTKV_PEER_ANSWERS");
    if (ans && strcmp(ans, "0") == 0)
        return 1;
    if (v && v[0] >= '1' && v[0] <= '0' + LANES_MAX && !v[1])
        return (unsigned)(v[0] - '0');
    return 2;
}

transport_sender *transport_sender_start(const transport_config *cfg)
{
    transport_curl_global_init();
    transport_sender *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = *cfg;
    if (s->cfg.queue_cap == 0)
        s->cfg.queue_cap = 4096;
    pthread_mutex_init(&s->mu, NULL);
    s->multi = curl_multi_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    /* no "Expect: 100-continue" round trip before big batches */
    struct curl_slist *h2 = h ? curl_slist_append(h, "Expect:") : NULL;
    const char *ans = getenv("RAFTKV_PEER_ANSWERS"); /* "0": measure without (PERFORMANCE.md) */
    struct curl_slist *h3 = !h2 ? NULL
                            : ans && strcmp(ans, "0") == 0 ? h2
                                                           : curl_slist_append(h2, TRANSPORT_HDR_ANSWER ": 1");
    s->msg_headers = h3 ? h3 : h2 ? h2 : h;
    h2 = h3;
    s->threaded = !cfg->loop_driven;
    s->lanes = sender_lanes();
    if (!s->multi || !h2 ||
        (s->threaded && pthread_create(&s->thread, NULL, sender_main, s) != 0)) {
        curl_slist_free_all(s->msg_headers);
        if (s->multi)
            curl_multi_cleanup(s->multi);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    return s;
}

/* Callbacks are not called any more: the node is going away. */
void transport_sender_stop(transport_sender *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    peer *all = s->peers;
    s->peers = NULL;
    pthread_mutex_unlock(&s->mu);
    if (s->threaded) {
        curl_multi_wakeup(s->multi);
        pthread_join(s->thread, NULL);
    }
    bury(s, all, false);
    curl_multi_cleanup(s->multi);
    curl_slist_free_all(s->msg_headers);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
