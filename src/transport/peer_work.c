/* peer_work: the peer listener's slow requests, done on one thread of
 * their own — a member's hash (it reads the whole store, and a reader
 * waits for the loop's kv.db commit) and a received snapshot's fsync and
 * rename — because the listener runs on the node loop, which must never
 * block on them. The listener suspends the connection and queues a job;
 * the job ends by resuming it, which wakes the loop.
 *
 * Must never: hold more than PEER_WORK_MAX jobs (a full queue refuses and
 * the peer is answered 503 at once), or drop a queued job at stop (stop
 * calls it with run = false, so its connection is resumed all the same). */
#include "transport/transport_int.h"

#include <stdlib.h>

typedef struct {
    peer_work_fn fn;
    void *arg;
} job;

struct peer_work {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    job q[PEER_WORK_MAX];
    size_t head, n;
    bool stop;
};

static bool take(peer_work *w, job *out)
{
    pthread_mutex_lock(&w->mu);
    while (!w->n && !w->stop)
        pthread_cond_wait(&w->cond, &w->mu);
    bool got = w->n > 0 && !w->stop;
    if (got) {
        *out = w->q[w->head];
        w->head = (w->head + 1) % PEER_WORK_MAX;
        w->n--;
    }
    pthread_mutex_unlock(&w->mu);
    return got;
}

static void *work_main(void *arg)
{
    peer_work *w = arg;
    job j;
    while (take(w, &j))
        j.fn(j.arg, true);
    return NULL;
}

peer_work *peer_work_start(void)
{
    peer_work *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, work_main, w) != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

bool peer_work_submit(peer_work *w, peer_work_fn fn, void *arg)
{
    pthread_mutex_lock(&w->mu);
    bool ok = !w->stop && w->n < PEER_WORK_MAX;
    if (ok) {
        w->q[(w->head + w->n) % PEER_WORK_MAX] = (job){fn, arg};
        w->n++;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->mu);
    return ok;
}

bool peer_work_stopping(peer_work *w)
{
    pthread_mutex_lock(&w->mu);
    bool stopping = w->stop;
    pthread_mutex_unlock(&w->mu);
    return stopping;
}

void peer_work_stop(peer_work *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL); /* the job it runs ends first */
    for (; w->n; w->n--, w->head = (w->head + 1) % PEER_WORK_MAX)
        w->q[w->head].fn(w->q[w->head].arg, false);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
