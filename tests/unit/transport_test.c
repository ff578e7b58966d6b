/* transport_test: two real transports on loopback exchange message batches
 * (answers riding the request, two requests in flight, numbered) and a
 * streamed snapshot; a dead peer is reported unreachable; garbage posted
 * to the peer endpoints (a malformed Raftkv-Seq too) is answered 400/413
 * and reaches no callback. A third, loop-driven transport (its listener
 * run by a poll loop, as the node runs it) takes batches and answers
 * them on that loop, and keeps serving while a hash is computed on the
 * peer work thread; that thread's queue refuses when full and cancels
 * what is queued at stop.
 * Waits are condition waits with deadlines, never sleeps. */
#include "../alloc_wrap.h"
#include "../test.h"
#include "msg_eq.h"
#include "transport/transport.h"
#include "transport/transport_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CLUSTER 0xabcdef0123456789ull
#define DEADLINE_MS 10000

/* ---- what the callbacks saw ---- */
typedef struct {
    transport_seq seq; /* first: by_seq compares it */
    size_t at, n;      /* its messages: msgs[at .. at + n) */
} got_batch;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    raft_msg *msgs;
    size_t n_msgs, cap;
    int batches;
    raft_msg *snap_msg;
    char *snap_path;
    int snaps;
    int unreachable[16]; /* by peer id */
    int snap_ok, snap_fail;
    /* a peer asking for an answer: answered at once (as a loop that sends
     * nothing back would), or held for the test to answer */
    transport *t;
    bool hold;
    transport_answer *held, *held2; /* the first two held */
    /* every batch in arrival order: its number (Raftkv-Seq; 0.0 if it had
     * none) and where its messages are in msgs — two lanes may deliver
     * batches out of order, which the node's peer order undoes by these
     * numbers (server/peer_order.c) */
    got_batch got[512];
    int n_got;
    int refuse; /* batches to drop, as a full inbox does (on_messages false) */
    int refused;
    bool loop_driven; /* its node's poll loop flushes the answers */
    bool hold_hash; /* GET /raft/hash blocks until cleared */
    int hashing;    /* hash callbacks entered */
} sink;

/* ---- out of memory: the n-th allocation of the transports' threads
 * (not the test's own, not the sink's) fails while armed ---- */
static atomic_long oom_at, oom_seen;
static _Thread_local bool test_thread, sink_alloc;

bool alloc_wrap_fails(void)
{
    return !test_thread && !sink_alloc && atomic_load(&oom_at) > 0 &&
           atomic_fetch_add(&oom_seen, 1) + 1 == atomic_load(&oom_at);
}

static void sink_init(sink *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &a);
    pthread_condattr_destroy(&a);
}

static void sink_free(sink *s)
{
    transport_free_msgs(s->msgs, s->n_msgs);
    if (s->snap_msg)
        transport_free_msgs(s->snap_msg, 1);
    free(s->snap_path);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

static bool on_messages(void *ud, raft_msg *msgs, size_t n, transport_answer *answer,
                        const transport_seq *seq)
{
    sink *s = ud;
    pthread_mutex_lock(&s->mu);
    bool drop = s->refuse > 0;
    if (drop) {
        s->refuse--;
        s->refused++;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (drop) {
        transport_free_msgs(msgs, n);
        return false;
    }
    if (answer && !s->hold) {
        transport_answer_handled(s->t, answer);
        if (!s->loop_driven) /* a loop flushes at the end of its turn */
            transport_flush_answers(s->t);
    }
    pthread_mutex_lock(&s->mu);
    if (answer && s->hold)
        *(s->held ? &s->held2 : &s->held) = answer;
    if (s->n_msgs + n > s->cap) {
        size_t cap = (s->n_msgs + n) * 2;
        sink_alloc = true; /* the test's own memory: never failed */
        raft_msg *p = realloc(s->msgs, cap * sizeof *p);
        sink_alloc = false;
        if (!p)
            abort();
        s->msgs = p;
        s->cap = cap;
    }
    if (s->n_got < 512)
        s->got[s->n_got++] = (got_batch){seq ? *seq : (transport_seq){0, 0}, s->n_msgs, n};
    memcpy(s->msgs + s->n_msgs, msgs, n * sizeof *msgs); /* entries move too */
    s->n_msgs += n;
    s->batches++;
    free(msgs);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return true;
}

static void on_snapshot(void *ud, raft_msg *msg, char *path)
{
    sink *s = ud;
    pthread_mutex_lock(&s->mu);
    if (s->snap_msg)
        transport_free_msgs(s->snap_msg, 1);
    free(s->snap_path);
    s->snap_msg = msg;
    s->snap_path = path;
    s->snaps++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void on_unreachable(void *ud, raft_id peer)
{
    sink *s = ud;
    pthread_mutex_lock(&s->mu);
    if (peer < 16)
        s->unreachable[peer]++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void on_snapshot_sent(void *ud, raft_id peer, bool ok)
{
    sink *s = ud;
    pthread_mutex_lock(&s->mu);
    if (ok)
        s->snap_ok++;
    else
        s->snap_fail++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* A fixed hash at any revision; while hold_hash, it waits (as a hash of
 * a large store takes long). */
static int on_hash(void *ud, int64_t rev, transport_hash *out)
{
    sink *s = ud;
    pthread_mutex_lock(&s->mu);
    s->hashing++;
    pthread_cond_broadcast(&s->cv);
    while (s->hold_hash)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    *out = (transport_hash){.hash = 4242, .revision = rev, .compact_revision = 1};
    return TRANSPORT_HASH_OK;
}

/* Waits (mutex held by caller) until *counter >= want or the deadline. */
static bool wait_for(sink *s, const int *counter, int want)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += DEADLINE_MS / 1000;
    while (*counter < want)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
            return *counter >= want;
    return true;
}

static bool wait_msgs(sink *s, size_t want)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += DEADLINE_MS / 1000;
    while (s->n_msgs < want)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
            return s->n_msgs >= want;
    return true;
}

/* ---- a node: temp dir + transport + sink ---- */
typedef struct {
    char dir[64];
    sink sk;
    transport *t;
    char url[64];
    bool loop_driven; /* then `loop` polls it until `stop` */
    pthread_t loop;
    atomic_bool stop;
} node;

static void *poll_loop(void *arg)
{
    node *n = arg;
    while (!atomic_load(&n->stop)) { /* a turn of the node's loop, without Raft */
        transport_poll(n->t, -1, 20);
        transport_flush_answers(n->t);
    }
    return NULL;
}

static void node_start(node *n, raft_id id, uint64_t max_snap)
{
    strcpy(n->dir, "/tmp/rkv-transport-XXXXXX");
    CHECK(mkdtemp(n->dir) != NULL);
    sink_init(&n->sk);
    transport_config cfg = {
        .cluster_id = CLUSTER, .self = id, .listen_host = "127.0.0.1", .listen_port = 0,
        .data_dir = n->dir, .queue_cap = 4096, .max_snapshot_bytes = max_snap,
        .loop_driven = n->loop_driven,
        .cb = {&n->sk, on_messages, on_snapshot, on_unreachable, on_snapshot_sent,
               .hash = on_hash},
    };
    char err[256] = "";
    n->t = transport_start(&cfg, err, sizeof err);
    CHECK_MSG(n->t != NULL, "transport_start: %s", err);
    if (!n->t)
        exit(1);
    n->sk.t = n->t;
    n->sk.loop_driven = n->loop_driven;
    snprintf(n->url, sizeof n->url, "http://127.0.0.1:%u", (unsigned)transport_listen_port(n->t));
    atomic_init(&n->stop, false);
    if (n->loop_driven)
        CHECK(pthread_create(&n->loop, NULL, poll_loop, n) == 0);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

static void node_stop(node *n)
{
    if (n->loop_driven) { /* a loop-driven transport stops on its loop's thread, after it */
        atomic_store(&n->stop, true);
        pthread_join(n->loop, NULL);
    }
    transport_stop(n->t);
    sink_free(&n->sk);
    nftw(n->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static node A, B, C; /* C is loop-driven */

/* ---- helpers ---- */

static raft_msg make_msg(raft_id from, raft_id to, uint64_t i, raft_entry *ents, uint32_t n)
{
    raft_msg m;
    memset(&m, 0, sizeof m);
    /* Only proposals and appends carry entries (the decoder checks). */
    m.type = (uint8_t)(n ? RAFT_MSG_PROP : RAFT_MSG_APPEND + i % 8);
    m.from = from;
    m.to = to;
    m.term = 3;
    m.index = i;
    m.context = i * 7919;
    m.entries = ents;
    m.n_entries = n;
    return m;
}

/* A port nothing listens on: bind, note the port, close. */
static uint16_t dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static size_t keep_body(char *p, size_t size, size_t nmemb, void *ud)
{
    return buf_append(ud, p, size * nmemb) == 0 ? size * nmemb : 0;
}

/* One blocking request; returns the status (0 on transport error). */
static long http(const char *method, const char *url, const void *body, size_t len,
                 struct curl_slist *headers, buf *resp)
{
    CURL *e = curl_easy_init();
    long code = 0;
    if (!e)
        return 0;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)DEADLINE_MS);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    return code;
}

static bool body_has(const buf *b, const char *s)
{
    return b->len && memmem(b->data, b->len, s, strlen(s)) != NULL;
}

/* Fills a file with n pseudo-random bytes; returns its CRC-32C. */
static uint32_t write_file(const char *path, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    uint32_t crc = 0, x = 12345;
    uint8_t chunk[4096];
    for (size_t done = 0; f && done < n; done += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk; i++) {
            x = x * 1103515245u + 12345u;
            chunk[i] = (uint8_t)(x >> 16);
        }
        size_t k = n - done < sizeof chunk ? n - done : sizeof chunk;
        CHECK(fwrite(chunk, 1, k, f) == k);
        crc = crc32c(crc, chunk, k);
    }
    if (f)
        fclose(f);
    return crc;
}

static bool files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool eq = fa && fb;
    int ca, cb;
    while (eq) {
        ca = getc(fa);
        cb = getc(fb);
        eq = ca == cb;
        if (ca == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return eq;
}

/* Entries in <dir>/snap, or -1 if it does not exist. */
static int count_dir(const char *dir)
{
    char path[128];
    snprintf(path, sizeof path, "%s/snap", dir);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static int by_seq(const void *a, const void *b)
{
    const transport_seq *x = &((const got_batch *)a)->seq, *y = &((const got_batch *)b)->seq;
    if (x->epoch != y->epoch)
        return x->epoch < y->epoch ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The positions in s->msgs of the messages in the order their batches'
 * numbers give (as the receiving node steps them); NULL if s holds more
 * batches than it recorded. s->got keeps its arrival order. Caller holds
 * s->mu and frees the array. */
static size_t *in_seq_order(const sink *s)
{
    size_t *pos = calloc(s->n_msgs ? s->n_msgs : 1, sizeof *pos);
    got_batch *order = malloc(sizeof s->got);
    if (!pos || !order || s->n_got >= 512) {
        free(pos);
        free(order);
        return NULL;
    }
    memcpy(order, s->got, (size_t)s->n_got * sizeof *order);
    qsort(order, (size_t)s->n_got, sizeof *order, by_seq);
    size_t k = 0;
    for (int b = 0; b < s->n_got; b++)
        for (size_t i = 0; i < order[b].n && k < s->n_msgs; i++)
            pos[k++] = order[b].at + i;
    free(order);
    return pos;
}

/* ---- tests ---- */

static void test_batch_exchange(void)
{
    enum { N = 300 };
    static raft_entry ents[2];
    static uint8_t data[] = {0, 1, 2, 0xff, 0};
    ents[0] = (raft_entry){.term = 3, .index = 1, .type = RAFT_ENTRY_NORMAL, .len = 5, .data = data,
                           .crc = crc32c(0, data, 5)};
    ents[1] = (raft_entry){.term = 3, .index = 2, .type = RAFT_ENTRY_NORMAL};
    raft_msg m[N];
    for (uint64_t i = 0; i < N; i++)
        m[i] = make_msg(1, 2, i, i % 2 ? ents : NULL, i % 2 ? 2 : 0);
    /* several calls, so batching happens across them */
    transport_send(A.t, m, N / 2);
    transport_send(A.t, m + N / 2, N - N / 2);

    pthread_mutex_lock(&B.sk.mu);
    CHECK(wait_msgs(&B.sk, N));
    CHECK(B.sk.n_msgs == N);
    size_t *pos = in_seq_order(&B.sk);
    CHECK(pos != NULL);
    for (size_t i = 0; pos && i < B.sk.n_msgs && i < N; i++) {
        const raft_msg *g = &B.sk.msgs[pos[i]];
        CHECK_MSG(g->index == i && g->type == m[i].type && g->context == m[i].context &&
                      g->from == 1 && g->to == 2,
                  "message %zu out of order or changed", i);
        CHECK(g->n_entries == m[i].n_entries);
        if (g->n_entries == 2)
            CHECK(g->entries[0].len == 5 && memcmp(g->entries[0].data, data, 5) == 0 &&
                  g->entries[1].len == 0);
    }
    free(pos);
    CHECK(B.sk.batches >= 1 && B.sk.batches <= N);
    pthread_mutex_unlock(&B.sk.mu);

    raft_msg back = make_msg(2, 1, 77, NULL, 0);
    transport_send(B.t, &back, 1);
    pthread_mutex_lock(&A.sk.mu);
    CHECK(wait_msgs(&A.sk, 1));
    CHECK(A.sk.n_msgs == 1 && A.sk.msgs[0].index == 77);
    CHECK(A.sk.unreachable[2] == 0);
    pthread_mutex_unlock(&A.sk.mu);
}

/* A sends B one message (numbered index) asking for an answer, and B's
 * sink holds it: the open answer, or NULL (a failed check). *a_before is
 * how many messages A had then. */
static transport_answer *held_request(uint64_t index, size_t *a_before)
{
    pthread_mutex_lock(&B.sk.mu);
    B.sk.hold = true;
    size_t before = B.sk.n_msgs;
    pthread_mutex_unlock(&B.sk.mu);
    raft_msg m = make_msg(1, 2, index, NULL, 0);
    transport_send(A.t, &m, 1);
    pthread_mutex_lock(&B.sk.mu);
    CHECK(wait_msgs(&B.sk, before + 1));
    transport_answer *held = B.sk.held;
    B.sk.held = NULL;
    B.sk.hold = false;
    pthread_mutex_unlock(&B.sk.mu);
    CHECK(held != NULL);
    pthread_mutex_lock(&A.sk.mu);
    *a_before = A.sk.n_msgs;
    pthread_mutex_unlock(&A.sk.mu);
    return held;
}

/* B's message to A rides the answer to A's request: it arrives at A,
 * checked, without B starting a request of its own — and only once B
 * flushes (after its "fsync"), not when the batch was handed over. */
static void test_answer_rides_the_request(void)
{
    uint64_t b_requests = transport_requests(B.t);
    size_t a_before;
    transport_answer *held = held_request(5, &a_before);
    if (!held)
        return;
    transport_answer_handled(B.t, held);
    raft_msg back = make_msg(2, 1, 88, NULL, 0);
    transport_send(B.t, &back, 1); /* into the answer, not a request */
    pthread_mutex_lock(&A.sk.mu);
    CHECK(A.sk.n_msgs == a_before); /* nothing before the flush */
    pthread_mutex_unlock(&A.sk.mu);
    transport_flush_answers(B.t);
    pthread_mutex_lock(&A.sk.mu);
    CHECK(wait_msgs(&A.sk, a_before + 1));
    CHECK(A.sk.n_msgs == a_before + 1 && A.sk.msgs[a_before].index == 88 &&
          A.sk.msgs[a_before].from == 2);
    pthread_mutex_unlock(&A.sk.mu);
    CHECK(transport_requests(B.t) == b_requests);
}

/* An answer is held to a batch's bytes, as a request is: a follower
 * catching up is sent far more than the asker takes in one answer (it
 * drops an answer over 64 MiB whole). B's 70 messages of 1 MiB each for A
 * while it holds A's request all arrive: the first 16 MiB in the answer,
 * the rest in B's own requests. */
static void test_large_answer_overflows_into_requests(void)
{
    enum { N = 70, LEN = 1 << 20 };
    static uint8_t data[LEN];
    static raft_entry ent[N];
    for (size_t i = 0; i < LEN; i++)
        data[i] = (uint8_t)(i * 31);
    uint32_t crc = crc32c(0, data, LEN);
    size_t a_before;
    transport_answer *held = held_request(6, &a_before);
    if (!held)
        return;
    uint64_t b_requests = transport_requests(B.t);
    transport_answer_handled(B.t, held);
    raft_msg back[N];
    for (uint64_t i = 0; i < N; i++) {
        ent[i] = (raft_entry){.term = 3, .index = 100 + i, .type = RAFT_ENTRY_NORMAL, .len = LEN,
                              .data = data, .crc = crc};
        back[i] = make_msg(2, 1, 1000 + i, &ent[i], 1);
    }
    transport_send(B.t, back, N);
    transport_flush_answers(B.t);
    pthread_mutex_lock(&A.sk.mu);
    CHECK(wait_msgs(&A.sk, a_before + N));
    bool seen[N] = {false};
    for (size_t i = a_before; i < A.sk.n_msgs; i++) {
        const raft_msg *g = &A.sk.msgs[i];
        if (g->from == 2 && g->index >= 1000 && g->index < 1000 + N && g->n_entries == 1 &&
            g->entries[0].len == LEN && memcmp(g->entries[0].data, data, LEN) == 0)
            seen[g->index - 1000] = true;
    }
    int n_seen = 0;
    for (int i = 0; i < N; i++)
        n_seen += seen[i];
    CHECK_MSG(n_seen == N, "%d of %d messages arrived whole", n_seen, N);
    pthread_mutex_unlock(&A.sk.mu);
    CHECK(transport_requests(B.t) > b_requests); /* what the answer could not take */
}

/* Pipelining: while B holds the answer to A's batch (its "fsync" not done),
 * A's next batch still reaches B on a second request, and the two carry
 * consecutive numbers of one epoch, for B to step them in that order. */
static void test_second_batch_in_flight_while_first_waits(void)
{
    pthread_mutex_lock(&B.sk.mu);
    B.sk.hold = true;
    size_t before = B.sk.n_msgs;
    int seq0 = B.sk.n_got;
    pthread_mutex_unlock(&B.sk.mu);
    raft_msg m = make_msg(1, 2, 9, NULL, 0), next = make_msg(1, 2, 10, NULL, 0);
    transport_send(A.t, &m, 1);
    pthread_mutex_lock(&B.sk.mu);
    CHECK(wait_msgs(&B.sk, before + 1));
    pthread_mutex_unlock(&B.sk.mu);
    transport_send(A.t, &next, 1);
    pthread_mutex_lock(&B.sk.mu);
    CHECK(wait_msgs(&B.sk, before + 2)); /* the first is still unanswered */
    transport_answer *held[2] = {B.sk.held, B.sk.held2};
    CHECK(held[0] && held[1]);
    CHECK(B.sk.n_msgs == before + 2 && B.sk.msgs[before + 1].index == 10);
    CHECK(B.sk.n_got == seq0 + 2);
    if (B.sk.n_got == seq0 + 2)
        CHECK(B.sk.got[seq0].seq.seq > 0 &&
              B.sk.got[seq0].seq.epoch == B.sk.got[seq0 + 1].seq.epoch &&
              B.sk.got[seq0 + 1].seq.seq == B.sk.got[seq0].seq.seq + 1);
    B.sk.held = B.sk.held2 = NULL;
    B.sk.hold = false;
    pthread_mutex_unlock(&B.sk.mu);
    for (int i = 0; i < 2; i++)
        if (held[i])
            transport_answer_handled(B.t, held[i]);
    transport_flush_answers(B.t);
}

/* B drops a batch that asked for an answer (its inbox full): the leader's
 * request is answered empty at once, not left suspended, so A's next
 * message arrives and A never sees B as unreachable. */
static void test_dropped_batch_answers_at_once(void)
{
    pthread_mutex_lock(&B.sk.mu);
    B.sk.refuse = 1;
    size_t before = B.sk.n_msgs;
    pthread_mutex_unlock(&B.sk.mu);
    pthread_mutex_lock(&A.sk.mu);
    int unreachable = A.sk.unreachable[2];
    pthread_mutex_unlock(&A.sk.mu);
    raft_msg m = make_msg(1, 2, 6, NULL, 0);
    transport_send(A.t, &m, 1);
    pthread_mutex_lock(&B.sk.mu);
    CHECK(wait_for(&B.sk, &B.sk.refused, 1));
    pthread_mutex_unlock(&B.sk.mu);
    raft_msg next = make_msg(1, 2, 7, NULL, 0);
    transport_send(A.t, &next, 1);
    pthread_mutex_lock(&B.sk.mu);
    CHECK(wait_msgs(&B.sk, before + 1));
    CHECK(B.sk.n_msgs == before + 1 && B.sk.msgs[before].index == 7);
    pthread_mutex_unlock(&B.sk.mu);
    pthread_mutex_lock(&A.sk.mu);
    CHECK(A.sk.unreachable[2] == unreachable);
    pthread_mutex_unlock(&A.sk.mu);
}

static void test_snapshot_stream(void)
{
    char src[128];
    snprintf(src, sizeof src, "%s/snap-src.db", A.dir);
    size_t size = 3u * 1024 * 1024 + 123;
    uint32_t crc = write_file(src, size);
    raft_msg m = make_msg(1, 2, 0, NULL, 0);
    m.type = RAFT_MSG_SNAP;
    m.snapshot.index = 42;
    m.snapshot.term = 7;
    m.snapshot.conf.n_voters = 2;
    m.snapshot.conf.voters[0] = 1;
    m.snapshot.conf.voters[1] = 2;
    transport_send_snapshot(A.t, &m, src, size, crc);

    pthread_mutex_lock(&A.sk.mu);
    CHECK(wait_for(&A.sk, &A.sk.snap_ok, 1));
    CHECK(A.sk.snap_fail == 0);
    pthread_mutex_unlock(&A.sk.mu);

    pthread_mutex_lock(&B.sk.mu);
    CHECK(wait_for(&B.sk, &B.sk.snaps, 1));
    char want[160];
    snprintf(want, sizeof want, "%s/snap/recv-42-7.db", B.dir);
    CHECK(B.sk.snap_path && strcmp(B.sk.snap_path, want) == 0);
    CHECK(files_equal(src, want));
    CHECK(B.sk.snap_msg && B.sk.snap_msg->type == RAFT_MSG_SNAP &&
          B.sk.snap_msg->snapshot.index == 42 && B.sk.snap_msg->snapshot.term == 7 &&
          B.sk.snap_msg->snapshot.conf.n_voters == 2 &&
          B.sk.snap_msg->snapshot.conf.voters[1] == 2);
    pthread_mutex_unlock(&B.sk.mu);
    CHECK(count_dir(B.dir) == 1); /* no temp file left beside it */
    unlink(want);
}

static void test_dead_peer_unreachable(void)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)dead_port());
    CHECK(transport_set_peer(A.t, 3, url) == 0);
    raft_msg m = make_msg(1, 3, 1, NULL, 0);
    transport_send(A.t, &m, 1);
    pthread_mutex_lock(&A.sk.mu);
    CHECK(wait_for(&A.sk, &A.sk.unreachable[3], 1));
    pthread_mutex_unlock(&A.sk.mu);
    /* after the backoff, the next message is tried (and fails) again */
    transport_send(A.t, &m, 1);
    pthread_mutex_lock(&A.sk.mu);
    CHECK(wait_for(&A.sk, &A.sk.unreachable[3], 2));
    CHECK(A.sk.unreachable[2] == 0);
    pthread_mutex_unlock(&A.sk.mu);
    transport_remove_peer(A.t, 3);
}

static void test_snapshot_one_in_flight(void)
{
    /* A peer that accepts connections but never reads: the upload stalls. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 4) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    char url[64], src[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    snprintf(src, sizeof src, "%s/stall.db", A.dir);
    uint32_t crc = write_file(src, 64 * 1024);
    CHECK(transport_set_peer(A.t, 4, url) == 0);
    raft_msg m = make_msg(1, 4, 0, NULL, 0);
    m.type = RAFT_MSG_SNAP;
    m.snapshot.index = 5;
    m.snapshot.term = 1;
    transport_send_snapshot(A.t, &m, src, 64 * 1024, crc);
    transport_send_snapshot(A.t, &m, src, 64 * 1024, crc); /* refused at once */
    pthread_mutex_lock(&A.sk.mu);
    CHECK(A.sk.snap_fail == 1);
    pthread_mutex_unlock(&A.sk.mu);
    /* removing the peer aborts the stalled upload and reports it */
    transport_remove_peer(A.t, 4);
    pthread_mutex_lock(&A.sk.mu);
    CHECK(wait_for(&A.sk, &A.sk.snap_fail, 2));
    pthread_mutex_unlock(&A.sk.mu);
    /* a snapshot for an unknown peer or a missing file fails at once */
    transport_send_snapshot(A.t, &m, src, 64 * 1024, crc);
    m.to = 2;
    transport_send_snapshot(A.t, &m, "/nonexistent/file", 1, 0);
    pthread_mutex_lock(&A.sk.mu);
    CHECK(A.sk.snap_fail == 4);
    pthread_mutex_unlock(&A.sk.mu);
    close(fd);
}

static void test_removed_peer_drops(void)
{
    pthread_mutex_lock(&B.sk.mu);
    size_t before = B.sk.n_msgs;
    pthread_mutex_unlock(&B.sk.mu);
    transport_remove_peer(A.t, 2);
    raft_msg lost = make_msg(1, 2, 1000, NULL, 0);
    transport_send(A.t, &lost, 1); /* no peer: dropped */
    CHECK(transport_set_peer(A.t, 2, B.url) == 0);
    raft_msg marker = make_msg(1, 2, 1001, NULL, 0);
    transport_send(A.t, &marker, 1);
    pthread_mutex_lock(&B.sk.mu);
    CHECK(wait_msgs(&B.sk, before + 1));
    CHECK(B.sk.n_msgs == before + 1 && B.sk.msgs[before].index == 1001);
    pthread_mutex_unlock(&B.sk.mu);
}

/* Posts to B and checks the status and, if given, the reason in the body. */
static void post_expect(const char *path, const void *body, size_t len,
                        struct curl_slist *h, long want, const char *reason)
{
    char url[128];
    buf resp;
    buf_init(&resp);
    snprintf(url, sizeof url, "%s%s", B.url, path);
    long code = http("POST", url, body, len, h, &resp);
    CHECK_MSG(code == want, "POST %s: got %ld, want %ld", path, code, want);
    if (reason)
        CHECK_MSG(body_has(&resp, reason), "POST %s: no reason %s", path, reason);
    buf_free(&resp);
}

static struct curl_slist *snap_headers(uint64_t cluster, raft_id to, const char *size,
                                       const char *crc)
{
    raft_msg m = make_msg(1, to, 0, NULL, 0);
    m.type = RAFT_MSG_SNAP;
    m.snapshot.index = 9;
    m.snapshot.term = 2;
    char *hex = transport_snap_header_encode(cluster, &m);
    char line[2048];
    snprintf(line, sizeof line, "%s: %s", TRANSPORT_HDR_SNAP_MSG, hex ? hex : "");
    free(hex);
    struct curl_slist *h = curl_slist_append(NULL, line);
    snprintf(line, sizeof line, "%s: %s", TRANSPORT_HDR_SNAP_SIZE, size);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof line, "%s: %s", TRANSPORT_HDR_SNAP_CRC, crc);
    return curl_slist_append(h, line);
}

static void test_garbage_rejected(void)
{
    pthread_mutex_lock(&B.sk.mu);
    size_t msgs_before = B.sk.n_msgs;
    int snaps_before = B.sk.snaps;
    pthread_mutex_unlock(&B.sk.mu);

    uint8_t junk[1000];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 31 + 7);
    post_expect("/raft/message", junk, sizeof junk, NULL, 400, "bad_message");
    post_expect("/raft/message", "", 0, NULL, 400, "bad_message");

    buf b; /* well-formed, but foreign, or for another node */
    buf_init(&b);
    raft_msg m = make_msg(1, 2, 1, NULL, 0);
    CHECK(transport_encode(CLUSTER + 1, &m, 1, &b) == 0);
    post_expect("/raft/message", b.data, b.len, NULL, 400, "foreign cluster");
    buf_reset(&b);
    m.to = 5;
    CHECK(transport_encode(CLUSTER, &m, 1, &b) == 0);
    post_expect("/raft/message", b.data, b.len, NULL, 400, "another node");
    buf_reset(&b); /* well-formed, for us, under a malformed batch number */
    m.to = 2;
    CHECK(transport_encode(CLUSTER, &m, 1, &b) == 0);
    static const char *const bad_seq[] = {"7", "7.0", ".3", "7.", "x.1", "7.1x",
                                          "123456789012345678901234.1"};
    for (size_t i = 0; i < sizeof bad_seq / sizeof bad_seq[0]; i++) {
        char line[80];
        snprintf(line, sizeof line, TRANSPORT_HDR_SEQ ": %s", bad_seq[i]);
        struct curl_slist *h = curl_slist_append(NULL, line);
        post_expect("/raft/message", b.data, b.len, h, 400, TRANSPORT_HDR_SEQ);
        curl_slist_free_all(h);
    }
    buf_free(&b);

    post_expect("/raft/snapshot", junk, sizeof junk, NULL, 400, "bad_message");
    /* the 1000 junk bytes under headers that each get one thing wrong */
    static const struct {
        uint64_t cluster;
        const char *size, *crc;
        long want;
        const char *reason;
    } bad_snap[] = {
        {CLUSTER, "1000", "1", 400, "checksum"},
        {CLUSTER, "999", "1", 400, "longer than declared"},
        {CLUSTER, "1001", "1", 400, "shorter than declared"},
        {CLUSTER + 1, "1000", "1", 400, "foreign cluster"},
        {CLUSTER, "99999999999", "1", 413, "too_large"},
        {CLUSTER, "-5", "x", 400, "bad_message"},
    };
    for (size_t i = 0; i < sizeof bad_snap / sizeof bad_snap[0]; i++) {
        struct curl_slist *h = snap_headers(bad_snap[i].cluster, 2, bad_snap[i].size,
                                            bad_snap[i].crc);
        post_expect("/raft/snapshot", junk, sizeof junk, h, bad_snap[i].want,
                    bad_snap[i].reason);
        curl_slist_free_all(h);
    }

    char url[128];
    buf resp;
    buf_init(&resp);
    snprintf(url, sizeof url, "%s/raft/message", B.url);
    CHECK(http("GET", url, NULL, 0, NULL, &resp) == 405);
    snprintf(url, sizeof url, "%s/nope", B.url);
    CHECK(http("GET", url, NULL, 0, NULL, &resp) == 404);
    buf_free(&resp);

    pthread_mutex_lock(&B.sk.mu);
    CHECK(B.sk.n_msgs == msgs_before && B.sk.snaps == snaps_before);
    pthread_mutex_unlock(&B.sk.mu);
    CHECK(count_dir(B.dir) <= 0); /* no temp file survived a rejection */
}

static void test_fetch_cluster_id(void)
{
    uint64_t id = 0;
    CHECK(transport_fetch_cluster_id(B.url, &id, 2000) == 0);
    CHECK(id == CLUSTER);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)dead_port());
    CHECK(transport_fetch_cluster_id(url, &id, 2000) < 0);
}

static void test_bind_conflict_reported(void)
{
    transport_config cfg = {
        .cluster_id = CLUSTER, .self = 9, .listen_host = "127.0.0.1",
        .listen_port = transport_listen_port(B.t), .data_dir = "/tmp", .queue_cap = 4,
    };
    char err[256] = "";
    transport *t = transport_start(&cfg, err, sizeof err);
    CHECK(t == NULL && err[0] != '\0');
    transport_stop(t);
}

/* ---- the loop-driven listener and its work thread ---- */

/* C's listener runs on its poll loop: A's batches arrive in order, each
 * answered on that loop (an empty answer here), with no request of C's. */
static void test_loop_driven_listener_takes_batches(void)
{
    enum { N = 200 };
    raft_msg m[N];
    for (uint64_t i = 0; i < N; i++)
        m[i] = make_msg(1, 7, i, NULL, 0);
    for (int i = 0; i < N; i += 20)
        transport_send(A.t, m + i, 20);
    pthread_mutex_lock(&C.sk.mu);
    CHECK(wait_msgs(&C.sk, N));
    for (size_t i = 0; i < C.sk.n_msgs && i < N; i++)
        CHECK_MSG(C.sk.msgs[i].index == i && C.sk.msgs[i].from == 1, "message %zu", i);
    pthread_mutex_unlock(&C.sk.mu);
    pthread_mutex_lock(&A.sk.mu);
    CHECK(A.sk.unreachable[7] == 0);
    pthread_mutex_unlock(&A.sk.mu);
    CHECK(transport_requests(C.t) == 0);
}

typedef struct {
    const char *url;
    int rc;
    transport_hash h;
} hash_call;

static void *fetch_hash(void *arg)
{
    hash_call *c = arg;
    c->rc = transport_fetch_hash(c->url, 17, DEADLINE_MS, &c->h);
    return NULL;
}

/* A hash that takes long runs on the work thread: meanwhile C's loop
 * still answers GET /raft/info and takes A's batches; then the hash is
 * answered. */
static void test_slow_hash_leaves_the_listener_free(void)
{
    pthread_mutex_lock(&C.sk.mu);
    C.sk.hold_hash = true;
    int entered = C.sk.hashing;
    size_t before = C.sk.n_msgs;
    pthread_mutex_unlock(&C.sk.mu);
    hash_call call = {.url = C.url, .rc = -1};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, fetch_hash, &call) == 0);
    pthread_mutex_lock(&C.sk.mu);
    CHECK(wait_for(&C.sk, &C.sk.hashing, entered + 1));
    pthread_mutex_unlock(&C.sk.mu);

    uint64_t id = 0;
    CHECK(transport_fetch_cluster_id(C.url, &id, 2000) == 0 && id == CLUSTER);
    raft_msg m = make_msg(1, 7, 999, NULL, 0);
    transport_send(A.t, &m, 1);
    pthread_mutex_lock(&C.sk.mu);
    CHECK(wait_msgs(&C.sk, before + 1));
    CHECK(C.sk.n_msgs == before + 1 && C.sk.msgs[before].index == 999);
    C.sk.hold_hash = false;
    pthread_cond_broadcast(&C.sk.cv);
    pthread_mutex_unlock(&C.sk.mu);
    pthread_join(th, NULL);
    CHECK(call.rc == TRANSPORT_HASH_OK && call.h.hash == 4242 && call.h.revision == 17);
}

/* peer_work alone: one job runs, PEER_WORK_MAX wait, the next is refused;
 * they run in order; at stop, what is queued is called with run = false. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gate_open;
    int started;
    int order[PEER_WORK_MAX + 2];
    int n_ran, n_cancelled;
} work_log;

typedef struct {
    work_log *log;
    int id;
} work_item;

static void work_job(void *arg, bool run)
{
    work_item *it = arg;
    work_log *l = it->log;
    pthread_mutex_lock(&l->mu);
    l->started++;
    pthread_cond_broadcast(&l->cv);
    while (run && !l->gate_open)
        pthread_cond_wait(&l->cv, &l->mu);
    if (run)
        l->order[l->n_ran++] = it->id;
    else
        l->n_cancelled++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static bool work_wait(work_log *l, const int *counter, int want)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += DEADLINE_MS / 1000;
    pthread_mutex_lock(&l->mu);
    while (*counter < want && pthread_cond_timedwait(&l->cv, &l->mu, &dl) != ETIMEDOUT) {
    }
    bool ok = *counter >= want;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

static void work_log_init(work_log *l, work_item *items, int n)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &a);
    pthread_condattr_destroy(&a);
    for (int i = 0; i < n; i++)
        items[i] = (work_item){l, i};
}

static void open_gate(work_log *l)
{
    pthread_mutex_lock(&l->mu);
    l->gate_open = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void test_work_queue_is_bounded(void)
{
    work_log l;
    work_item items[PEER_WORK_MAX + 2];
    work_log_init(&l, items, PEER_WORK_MAX + 2);
    peer_work *w = peer_work_start();
    CHECK(w != NULL);
    if (!w)
        return;
    CHECK(peer_work_submit(w, work_job, &items[0]));
    CHECK(work_wait(&l, &l.started, 1)); /* running, off the queue */
    for (int i = 1; i <= PEER_WORK_MAX; i++)
        CHECK(peer_work_submit(w, work_job, &items[i]));
    CHECK(!peer_work_submit(w, work_job, &items[PEER_WORK_MAX + 1]));
    open_gate(&l);
    CHECK(work_wait(&l, &l.n_ran, PEER_WORK_MAX + 1));
    for (int i = 0; i < l.n_ran; i++)
        CHECK(l.order[i] == i);
    peer_work_stop(w);
    CHECK(l.n_cancelled == 0 && l.n_ran == PEER_WORK_MAX + 1);
}

static void *stop_work(void *arg)
{
    peer_work_stop(arg);
    return NULL;
}

/* The stop flag is set while job 0 still runs (the gate is closed, so
 * stop cannot have freed w yet); only then does the gate open, so jobs
 * 1-3 are always cancelled, never run. */
static bool wait_stopping(peer_work *w)
{
    for (int ms = 0; ms < DEADLINE_MS; ms++) {
        if (peer_work_stopping(w))
            return true;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return false;
}

static void test_work_stop_cancels_the_queued(void)
{
    work_log l;
    work_item items[4];
    work_log_init(&l, items, 4);
    peer_work *w = peer_work_start();
    CHECK(w != NULL);
    if (!w)
        return;
    for (int i = 0; i < 4; i++)
        CHECK(peer_work_submit(w, work_job, &items[i]));
    CHECK(work_wait(&l, &l.started, 1));
    pthread_t th; /* stop waits for the running job */
    CHECK(pthread_create(&th, NULL, stop_work, w) == 0);
    CHECK(wait_stopping(w));
    CHECK(!peer_work_submit(w, work_job, &items[0])); /* refused once stopping */
    open_gate(&l);
    pthread_join(th, NULL);
    CHECK(l.n_ran == 1 && l.order[0] == 0);
    CHECK(l.n_cancelled == 3);
}

/* ---- the listeners out of memory ---- */

/* POSTs body to url with the n-th allocation of the transports' threads
 * failed; the status (0: no answer), and whether the n-th was reached. */
static long post_failing(long n, const char *url, const void *body, size_t len,
                         struct curl_slist *h, bool *hit)
{
    buf resp;
    buf_init(&resp);
    atomic_store(&oom_seen, 0);
    atomic_store(&oom_at, n);
    long code = http("POST", url, body, len, h, &resp);
    *hit = atomic_load(&oom_seen) >= n;
    atomic_store(&oom_at, 0);
    buf_free(&resp);
    return code;
}

/* Posts the batch m to n's listener with each allocation of the
 * transports' threads failed in turn. The answer is 2xx with the whole
 * batch delivered, or a 5xx (or a closed connection) with all of it or
 * none of it delivered: never a 400 or 413 that blames the sender's
 * bytes for this node's memory, never part of a batch. Returns the tries
 * that hit an allocation. */
static long sweep_listener(node *n, const raft_msg *m, size_t count, bool answer)
{
    buf body;
    buf_init(&body);
    CHECK(transport_encode(CLUSTER, m, count, &body) == 0);
    char url[128];
    snprintf(url, sizeof url, "%s/raft/message", n->url);
    struct curl_slist *h = answer ? curl_slist_append(NULL, TRANSPORT_HDR_ANSWER ": 1") : NULL;
    long tries = 1;
    for (;; tries++) {
        pthread_mutex_lock(&n->sk.mu);
        size_t before = n->sk.n_msgs;
        pthread_mutex_unlock(&n->sk.mu);
        bool hit;
        long code = post_failing(tries, url, body.data, body.len, h, &hit);
        /* the callback runs before the answer leaves: nothing to wait for */
        pthread_mutex_lock(&n->sk.mu);
        size_t got = n->sk.n_msgs - before;
        bool whole = got == count;
        for (size_t i = 0; whole && i < count; i++)
            whole = msg_eq(&n->sk.msgs[before + i], &m[i]);
        pthread_mutex_unlock(&n->sk.mu);
        CHECK_MSG(code / 100 == 2 ? whole : (code >= 500 || code == 0) && (got == 0 || whole),
                  "%s listener%s, allocation %ld failed: %ld, %zu of %zu messages delivered",
                  n->loop_driven ? "loop-driven" : "threaded", answer ? " (answer asked)" : "",
                  tries, code, got, count);
        if (!hit)
            break;
    }
    curl_slist_free_all(h);
    buf_free(&body);
    return tries - 1;
}

static bool file_holds(const char *path, const uint8_t *want, size_t n)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    uint8_t got[4096];
    size_t k = f ? fread(got, 1, sizeof got, f) : 0;
    if (f)
        fclose(f);
    return k == n && memcmp(got, want, n) == 0;
}

/* The same for a streamed snapshot: 204 with the snapshot handed over
 * whole, or a 5xx (or a closed connection) with nothing handed over and
 * no file left behind; never a 400 or 413. */
static long sweep_snapshot(node *n, raft_id to)
{
    uint8_t body[3000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(i * 13 + 5);
    char size[24], crc[24], url[128];
    snprintf(size, sizeof size, "%zu", sizeof body);
    snprintf(crc, sizeof crc, "%u", (unsigned)crc32c(0, body, sizeof body));
    snprintf(url, sizeof url, "%s/raft/snapshot", n->url);
    struct curl_slist *h = snap_headers(CLUSTER, to, size, crc);
    long tries = 1;
    for (;; tries++) {
        pthread_mutex_lock(&n->sk.mu);
        int before = n->sk.snaps;
        pthread_mutex_unlock(&n->sk.mu);
        bool hit;
        long code = post_failing(tries, url, body, sizeof body, h, &hit);
        /* the work thread hands it over before the answer leaves */
        pthread_mutex_lock(&n->sk.mu);
        int got = n->sk.snaps - before;
        bool whole = got == 1 && file_holds(n->sk.snap_path, body, sizeof body);
        if (got && n->sk.snap_path)
            unlink(n->sk.snap_path); /* as the node does once installed */
        pthread_mutex_unlock(&n->sk.mu);
        CHECK_MSG(code == 204 ? whole : (code >= 500 || code == 0) && got == 0,
                  "snapshot to %s listener, allocation %ld failed: %ld, %d handed over",
                  n->loop_driven ? "loop-driven" : "threaded", tries, code, got);
        CHECK_MSG(count_dir(n->dir) <= 0, "allocation %ld: a snapshot file left behind", tries);
        if (!hit)
            break;
    }
    curl_slist_free_all(h);
    return tries - 1;
}

static void test_listeners_out_of_memory(void)
{
    static uint8_t data[3][40];
    raft_entry ents[3];
    for (int i = 0; i < 3; i++) {
        memset(data[i], 'a' + i, sizeof data[i]);
        ents[i] = (raft_entry){.term = 3, .index = 10 + (uint64_t)i, .type = RAFT_ENTRY_NORMAL,
                               .len = sizeof data[i], .data = data[i],
                               .crc = crc32c(0, data[i], sizeof data[i])};
    }
    raft_msg to_b[2] = {make_msg(1, 2, 9, ents, 3), make_msg(1, 2, 10, NULL, 0)};
    raft_msg to_c[2] = {make_msg(1, 7, 9, ents, 3), make_msg(1, 7, 10, NULL, 0)};
    B.sk.hold = false;
    long tries = 0;
    for (int answer = 0; answer < 2; answer++)
        tries += sweep_listener(&B, to_b, 2, answer) + sweep_listener(&C, to_c, 2, answer);
    long snaps = sweep_snapshot(&B, 2) + sweep_snapshot(&C, 7);
    printf("  %ld batches and %ld snapshots each ran out of memory once\n", tries, snaps);
    CHECK(tries > 10 && snaps > 4);
}

int main(void)
{
    test_thread = true;
    node_start(&A, 1, 0);
    node_start(&B, 2, 64u << 20);
    C.loop_driven = true;
    node_start(&C, 7, 0);
    CHECK(transport_set_peer(A.t, 2, B.url) == 0);
    CHECK(transport_set_peer(B.t, 1, A.url) == 0);
    CHECK(transport_set_peer(A.t, 7, C.url) == 0); /* 3 and 4 are other tests' */

    RUN(test_batch_exchange);
    RUN(test_answer_rides_the_request);
    RUN(test_large_answer_overflows_into_requests);
    RUN(test_dropped_batch_answers_at_once);
    RUN(test_second_batch_in_flight_while_first_waits);
    RUN(test_snapshot_stream);
    RUN(test_dead_peer_unreachable);
    RUN(test_snapshot_one_in_flight);
    RUN(test_removed_peer_drops);
    RUN(test_garbage_rejected);
    RUN(test_fetch_cluster_id);
    RUN(test_bind_conflict_reported);
    RUN(test_loop_driven_listener_takes_batches);
    RUN(test_slow_hash_leaves_the_listener_free);
    RUN(test_work_queue_is_bounded);
    RUN(test_work_stop_cancels_the_queued);
    RUN(test_listeners_out_of_memory);

    node_stop(&A);
    node_stop(&B);
    node_stop(&C);
    TEST_MAIN_END();
}
