/* inbox: the bounded multi-producer queue into the node loop (inbox.c),
 * and the events that travel on it. Any thread pushes; only the node loop
 * takes. Must never grow without bound: a full inbox refuses. */
#ifndef RAFTKV_INBOX_H
#define RAFTKV_INBOX_H

#include "raft/raft.h"
#include "server/node.h"
#include "transport/transport.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ev_kind { EV_MSGS = 1, EV_SNAP_RECV, EV_UNREACHABLE, EV_SNAP_SENT, EV_PROPOSE, EV_READ, EV_MEMBER,
               EV_MOVE };

typedef struct event {
    struct event *next;
    int kind;
    raft_msg *msgs; /* EV_MSGS (n), EV_SNAP_RECV (1) */
    transport_answer *answer; /* EV_MSGS: the sender waits for our answer */
    bool has_seq;             /* EV_MSGS: numbered by its sender (peer_order.h) */
    transport_seq seq;
    size_t n;
    char *path;     /* EV_SNAP_RECV */
    raft_id peer;   /* EV_UNREACHABLE, EV_SNAP_SENT */
    bool ok;
    uint8_t *data;  /* EV_PROPOSE; EV_MEMBER: the Idempotency-Key stamp, if any */
    size_t len;
    node_write_cb wcb;
    node_done_cb dcb;
    void *ud;
    int op;         /* EV_MEMBER */
    uint64_t id;
    char *url;
    uint64_t *chosen;
} event;

#define INBOX_MAX_EVENTS 100000

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    event *head, *tail;
    size_t count;
    bool closed; /* the loop has stopped: requests are refused at once */
    int wake_fd; /* eventfd, readable while events wait: the loop polls it */
    pthread_t taker;  /* the loop's thread, once it took: its own pushes */
    bool taker_known; /* (the peer listener runs on it) are no hand-off */
} inbox;

int inbox_init(inbox *q);
void inbox_destroy(inbox *q);
/* Queues ev; returns -1 (ev untouched) if full or closed. */
int inbox_push(inbox *q, event *ev);
/* Takes every queued event, waiting until one arrives or deadline_ms
 * (monotonic) passes (0: no wait). */
event *inbox_take_all(inbox *q, uint64_t deadline_ms);
/* Readable while events wait (or a wake-up is pending): a loop that waits
 * on other descriptors too polls it, then takes with deadline 0. */
int inbox_wait_fd(const inbox *q);
/* Wakes the loop with no event (its turn then looks at its flags). */
void inbox_wake(inbox *q);
/* Closes the inbox and returns what was still queued. */
event *inbox_close(inbox *q);
/* Frees ev and all it carries; a staged snapshot file (path) is removed. */
void event_free(event *ev);
/* Completes a request event with an error (calls its callback). */
void event_fail(event *ev, int status);

#endif
