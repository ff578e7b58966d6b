/* inbox: the bounded multi-producer queue into the node loop. API threads
 * and transport threads push; only the node loop takes. Bounded so that a
 * flood of clients or peers cannot grow memory without limit: a full inbox
 * refuses (clients get 503 busy, peer messages are dropped and Raft
 * retransmits). Must never block a producer beyond the lock: pushing
 * never waits for room. */
#include "server/inbox.h"

#include "transport/transport.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

int inbox_init(inbox *q)
{
    pthread_condattr_t ca;
    q->head = q->tail = NULL;
    q->count = 0;
    q->closed = false;
    q->taker_known = false; /* no loop has taken yet: every push is a hand-off */
    q->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->wake_fd < 0)
        return -1;
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        close(q->wake_fd);
        q->wake_fd = -1;
        return -1;
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&q->cond, &ca);
    pthread_condattr_destroy(&ca);
    return rc == 0 ? 0 : -1;
}

void inbox_destroy(inbox *q)
{
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    if (q->wake_fd >= 0)
        close(q->wake_fd);
    q->wake_fd = -1;
}

int inbox_wait_fd(const inbox *q) { return q->wake_fd; }

int inbox_push(inbox *q, event *ev)
{
    pthread_mutex_lock(&q->mu);
    if (q->closed || q->count >= INBOX_MAX_EVENTS) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    ev->next = NULL;
    bool was_empty = !q->head;
    if (q->tail)
        q->tail->next = ev;
    else
        q->head = ev;
    q->tail = ev;
    q->count++;
    if (!q->taker_known || !pthread_equal(q->taker, pthread_self()))
        handoff_count(HANDOFF_LOOP);
    pthread_cond_signal(&q->cond);
    if (was_empty) { /* one wake-up per batch the loop takes */
        uint64_t one = 1;
        if (write(q->wake_fd, &one, sizeof one) < 0) {
            /* the counter is non-zero already: the loop wakes anyway */
        }
    }
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void inbox_wake(inbox *q)
{
    pthread_mutex_lock(&q->mu);
    pthread_cond_signal(&q->cond);
    uint64_t one = 1;
    if (write(q->wake_fd, &one, sizeof one) < 0) {
        /* the counter is non-zero already: the loop wakes anyway */
    }
    pthread_mutex_unlock(&q->mu);
}

static event *take_locked(inbox *q)
{
    uint64_t drained;
    if (read(q->wake_fd, &drained, sizeof drained) < 0) {
        /* EAGAIN: nothing pending */
    }
    event *all = q->head;
    q->head = q->tail = NULL;
    q->count = 0;
    return all;
}

event *inbox_take_all(inbox *q, uint64_t deadline_ms)
{
    pthread_mutex_lock(&q->mu);
    q->taker = pthread_self();
    q->taker_known = true;
    while (!q->head) {
        uint64_t now = now_ms();
        if (now >= deadline_ms)
            break;
        struct timespec ts;
        monotonic_after(deadline_ms - now, &ts);
        pthread_cond_timedwait(&q->cond, &q->mu, &ts);
    }
    event *all = take_locked(q);
    pthread_mutex_unlock(&q->mu);
    return all;
}

event *inbox_close(inbox *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = true;
    event *all = take_locked(q);
    pthread_mutex_unlock(&q->mu);
    return all;
}

void event_free(event *ev)
{
    if (ev->msgs)
        transport_free_msgs(ev->msgs, ev->n);
    if (ev->path) {
        remove(ev->path);
        free(ev->path);
    }
    free(ev->data);
    free(ev->url);
    free(ev);
}

void event_fail(event *ev, int status)
{
    if (ev->wcb)
        ev->wcb(ev->ud, status, NULL);
    else if (ev->dcb)
        ev->dcb(ev->ud, status);
}
