/* conn_guard: the total time a client connection may take to deliver a
 * request. libmicrohttpd's own timeout restarts with every byte, so a
 * client sending one byte a second (slowloris) would hold its connection
 * for ever; here every connection carries a deadline — from accept for
 * its first request, from the end of its previous request for the next
 * (that one includes the keep-alive idle allowance) — and a reaper thread
 * shuts down the socket of any connection still receiving past it. A
 * request whose body has arrived has no deadline: waiting on Raft and
 * streaming a watch are the server's time, not the client's.
 *
 * Must never close a descriptor: it only shut()s sockets down, under the
 * lock that libmicrohttpd's close notification also takes, and
 * libmicrohttpd notifies before it closes, so a descriptor number reused by
 * a newer connection is never touched. */
#include "api/api_int.h"

#include <stdlib.h>
#include <sys/socket.h>

#define GUARD_PERIOD_MS 100

struct api_conn {
    struct api_conn *prev, *next;
    int fd;
    int64_t deadline_ms; /* 0: not receiving */
};

static void guard_unlink(api_guard *g, api_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

void api_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                      enum MHD_ConnectionNotificationCode code)
{
    api_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        api_conn *c = calloc(1, sizeof *c);
        if (!c || !ci) { /* unguarded, but MHD's idle timeout still holds */
            free(c);
            *socket_context = NULL;
            return;
        }
        c->fd = ci->connect_fd;
        c->deadline_ms = (int64_t)now_ms() + g->first_ms;
        pthread_mutex_lock(&g->mu);
        c->next = g->head;
        if (g->head)
            g->head->prev = c;
        g->head = c;
        pthread_mutex_unlock(&g->mu);
        *socket_context = c;
        return;
    }
    api_conn *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    guard_unlink(g, c);
    pthread_mutex_unlock(&g->mu);
    free(c);
    *socket_context = NULL;
}

static api_conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void set_deadline(api_guard *g, struct MHD_Connection *conn, int64_t deadline_ms)
{
    api_conn *c = conn_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    c->deadline_ms = deadline_ms;
    pthread_mutex_unlock(&g->mu);
}

void api_guard_received(api_guard *g, struct MHD_Connection *conn) { set_deadline(g, conn, 0); }

void api_guard_next(api_guard *g, struct MHD_Connection *conn)
{
    set_deadline(g, conn, (int64_t)now_ms() + g->next_ms);
}

static void reap(api_guard *g, int64_t now)
{
    pthread_mutex_lock(&g->mu);
    for (api_conn *c = g->head; c; c = c->next) {
        if (c->deadline_ms && c->deadline_ms <= now) {
            shutdown(c->fd, SHUT_RDWR); /* MHD sees the end and closes it */
            c->deadline_ms = 0;
            g->cut++;
        }
    }
    pthread_mutex_unlock(&g->mu);
}

static void *guard_main(void *arg)
{
    api_guard *g = arg;
    pthread_mutex_lock(&g->stop_mu);
    while (!g->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += GUARD_PERIOD_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->stop_cv, &g->stop_mu, &ts);
        if (g->stopping)
            break;
        pthread_mutex_unlock(&g->stop_mu);
        reap(g, (int64_t)now_ms());
        pthread_mutex_lock(&g->stop_mu);
    }
    pthread_mutex_unlock(&g->stop_mu);
    return NULL;
}

int api_guard_start(api_guard *g, uint32_t first_ms, uint32_t next_ms)
{
    g->head = NULL;
    g->first_ms = first_ms;
    g->next_ms = next_ms;
    g->stopping = false;
    g->cut = 0;
    if (pthread_mutex_init(&g->mu, NULL) != 0)
        return -1;
    if (pthread_mutex_init(&g->stop_mu, NULL) != 0)
        goto no_stop_mu;
    if (pthread_cond_init(&g->stop_cv, NULL) != 0)
        goto no_cv;
    if (pthread_create(&g->thread, NULL, guard_main, g) != 0)
        goto no_thread;
    return 0;
no_thread:
    pthread_cond_destroy(&g->stop_cv);
no_cv:
    pthread_mutex_destroy(&g->stop_mu);
no_stop_mu:
    pthread_mutex_destroy(&g->mu);
    return -1;
}

/* After MHD stopped: every connection was closed and notified by then. */
void api_guard_stop(api_guard *g)
{
    pthread_mutex_lock(&g->stop_mu);
    g->stopping = true;
    pthread_cond_signal(&g->stop_cv);
    pthread_mutex_unlock(&g->stop_mu);
    pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->stop_cv);
    pthread_mutex_destroy(&g->stop_mu);
    pthread_mutex_destroy(&g->mu);
}
