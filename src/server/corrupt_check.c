/* corrupt_check: the leader compares the members' hashes of the key-value
 * state at one revision — at start and every --corrupt-check-ms — and
 * raises the CORRUPT alarm for a member that differs or that finds one of
 * its own rows damaged, naming it (once: not again while that member has
 * the alarm). Members that have not applied that
 * revision yet, or have compacted it, or cannot be reached, are left for
 * the next round.
 *
 * Must never run on the node loop (it waits for peers over HTTP: a thread
 * of its own, woken to stop), judge hashes taken at different revisions or
 * compact revisions, raise a member's alarm again while it is active, or
 * raise one from answers older than a disarm (an operator who repaired a
 * member and disarmed must not see a round begun before the repair put
 * the alarm back: that round is dropped and the next one, soon after,
 * judges the repaired member).
 */
#include "server/corrupt_check.h"

#include "server/peers.h"

#include <stdlib.h>
#include <string.h>

#define HASH_TIMEOUT_MS 2000
#define FIRST_CHECK_MS 2000 /* after start: a leader, and something applied */
#define RETRY_MS 500        /* while this node cannot run a round yet */

static bool judged(const corrupt_answer *a, const corrupt_answer *ref)
{
    return a->status == TRANSPORT_HASH_OK && a->h.revision == ref->h.revision &&
           a->h.compact_revision == ref->h.compact_revision;
}

/* The hash most judged members have; a tie goes to answers[0]'s. */
static uint32_t majority_hash(const corrupt_answer *a, size_t n)
{
    uint32_t best = a[0].h.hash;
    size_t best_votes = 0;
    for (size_t i = 0; i < n; i++) {
        if (!judged(&a[i], &a[0]))
            continue;
        size_t votes = 0;
        for (size_t j = 0; j < n; j++)
            votes += judged(&a[j], &a[0]) && a[j].h.hash == a[i].h.hash;
        if (votes > best_votes || (votes == best_votes && a[i].h.hash == a[0].h.hash)) {
            best = a[i].h.hash;
            best_votes = votes;
        }
    }
    return best;
}

size_t corrupt_odd_members(const corrupt_answer *a, size_t n, uint64_t *odd)
{
    size_t k = 0;
    if (n == 0)
        return 0;
    uint32_t want = a[0].status == TRANSPORT_HASH_OK ? majority_hash(a, n) : 0;
    for (size_t i = 0; i < n; i++) {
        bool bad = a[i].status == TRANSPORT_HASH_CORRUPT ||
                   (a[0].status == TRANSPORT_HASH_OK && judged(&a[i], &a[0]) &&
                    a[i].h.hash != want);
        if (bad)
            odd[k++] = a[i].id;
    }
    return k;
}

static void on_alarm_applied(void *ud, int status, kv_result *res)
{
    (void)ud;
    (void)status;
    if (res) {
        kv_result_free(res);
        free(res);
    }
}

static void raise_corrupt(node *n, uint64_t id, const corrupt_answer *a)
{
    log_error("corruption check: member %llu differs (%s at revision %lld): raising CORRUPT",
              (unsigned long long)id, a && a->status == TRANSPORT_HASH_CORRUPT ? "a row fails its checksum" : "hash",
              a ? (long long)a->h.revision : 0LL);
    buf cmd;
    buf_init(&cmd);
    if (kv_encode_alarm(KV_ALARM_ACTIVATE, id, KV_ALARM_CORRUPT, &cmd) == KV_OK)
        node_propose(n, cmd.data, cmd.len, on_alarm_applied, NULL);
    buf_free(&cmd);
}

/* Fills answers[1..] from the other members (answers[0] is ours). */
static size_t ask_members(node *n, int64_t rev, corrupt_answer *answers, size_t cap)
{
    kv_conn *c = kv_reader_acquire(n->kv);
    kv_member *m = NULL;
    size_t nm = 0, k = 1;
    int rc = c ? kv_members(c, &m, &nm) : KV_ERR_INTERNAL;
    if (c)
        kv_reader_release(n->kv, c);
    for (size_t i = 0; rc == KV_OK && i < nm && k < cap; i++) {
        if (m[i].id == n->cfg->id)
            continue;
        answers[k].id = m[i].id;
        answers[k].status = transport_fetch_hash(m[i].peer_url, rev, HASH_TIMEOUT_MS,
                                                 &answers[k].h);
        k++;
    }
    if (rc == KV_OK)
        kv_members_free(m, nm);
    return k;
}

/* Does member id already have the CORRUPT alarm? */
static bool already_raised(node *n, uint64_t id)
{
    kv_conn *c = kv_reader_acquire(n->kv);
    kv_alarm *al = NULL;
    size_t na = 0;
    bool found = false;
    if (c && kv_alarms_list(c, &al, &na) == KV_OK)
        for (size_t i = 0; i < na; i++)
            found |= al[i].member_id == id && al[i].type == KV_ALARM_CORRUPT;
    free(al);
    if (c)
        kv_reader_release(n->kv, c);
    return found;
}

/* One comparison; false when this node could not run one (not leading,
 * nothing applied yet, a disarm during the round). */
static bool check_round(node *n)
{
    node_info info;
    node_get_info(n, &info);
    if (info.role != RAFT_LEADER || info.revision <= 0)
        return false;
    uint64_t disarms = kv_alarm_disarms(n->kv);
    corrupt_answer a[CONFIG_MAX_PEERS + 1];
    memset(a, 0, sizeof a);
    a[0].id = n->cfg->id;
    a[0].status = node_hash(n, info.revision, &a[0].h);
    size_t na = ask_members(n, info.revision, a, sizeof a / sizeof a[0]);
    uint64_t odd[CONFIG_MAX_PEERS + 1];
    size_t k = corrupt_odd_members(a, na, odd);
    if (k > 0 && kv_alarm_disarms(n->kv) != disarms) {
        log_info("corruption check: an alarm was disarmed during the round: judging again");
        return false;
    }
    for (size_t i = 0; i < k; i++) {
        const corrupt_answer *who = NULL;
        for (size_t j = 0; j < na; j++)
            who = a[j].id == odd[i] ? &a[j] : who;
        if (!already_raised(n, odd[i]))
            raise_corrupt(n, odd[i], who);
    }
    return true;
}

static void *checker_main(void *arg)
{
    node *n = arg;
    uint64_t every = n->cfg->corrupt_check_ms;
    uint64_t next = now_ms() + FIRST_CHECK_MS;
    bool checked = false;
    pthread_mutex_lock(&n->check_mu);
    while (!n->check_stop) {
        uint64_t now = now_ms();
        if (now >= next) {
            pthread_mutex_unlock(&n->check_mu);
            bool ran = check_round(n);
            checked |= ran;
            pthread_mutex_lock(&n->check_mu);
            /* until a first round ran (a leader, something applied), try
             * again soon; then every --corrupt-check-ms */
            next = now_ms() + (ran && every ? every : RETRY_MS);
            continue;
        }
        if (checked && every == 0)
            next = UINT64_MAX; /* only at start */
        struct timespec ts;
        monotonic_after(next == UINT64_MAX ? 3600000 : next - now, &ts);
        pthread_cond_timedwait(&n->check_cond, &n->check_mu, &ts);
    }
    pthread_mutex_unlock(&n->check_mu);
    return NULL;
}

int corrupt_check_start(node *n)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_mutex_init(&n->check_mu, NULL) || pthread_cond_init(&n->check_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc || pthread_create(&n->check_thread, NULL, checker_main, n) != 0) {
        log_error("corruption check: cannot start its thread");
        return -1;
    }
    n->check_started = true;
    return 0;
}

void corrupt_check_stop(node *n)
{
    if (!n->check_started)
        return;
    pthread_mutex_lock(&n->check_mu);
    n->check_stop = true;
    pthread_cond_signal(&n->check_cond);
    pthread_mutex_unlock(&n->check_mu);
    pthread_join(n->check_thread, NULL);
    pthread_cond_destroy(&n->check_cond);
    pthread_mutex_destroy(&n->check_mu);
    n->check_started = false;
}
