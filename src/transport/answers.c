/* answers: a leader's POST /raft/message answered with this node's own
 * messages back to it, in the HTTP response (the request asked for it with
 * the Raftkv-Answer header). The listener suspends the connection and
 * opens a slot; the node loop steps the batch (transport_answer_handled),
 * and whatever it sends to that peer from then on — append and heartbeat
 * responses, after the fsync that makes them true — goes into the slot
 * instead of a request of our own; at the end of the loop's turn
 * (transport_flush_answers) every handled slot is encoded and resumed.
 * One HTTP exchange per round trip instead of two, and no thread of ours
 * between the fsync and the bytes leaving.
 *
 * Must never: hold a connection beyond the loop turn that handled its
 * batch, or answer with a message for anyone but the peer that asked
 * (the leader checks it too). Locking: `mu` guards the list and every
 * slot's messages; a slot leaves the list before it is resumed. */
#include "transport/transport_int.h"

#include <microhttpd.h>
#include <stdlib.h>

#define SLOT_MAX_MSGS 4096

struct transport_answer {
    struct transport_answer *next;
    struct MHD_Connection *conn;
    raft_id peer;
    bool handled;  /* mu: the loop stepped the batch */
    bool ready;    /* set before the resume: body is the answer */
    raft_msg *msgs; /* mu */
    size_t n, cap;
    size_t bytes;   /* mu: the messages' wire size, held to a batch's */
    buf body;
};

transport_answers *transport_answers_new(uint64_t cluster_id)
{
    transport_answers *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->cluster_id = cluster_id;
    pthread_mutex_init(&a->mu, NULL);
    return a;
}

void transport_answers_free(transport_answers *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->mu);
    free(a);
}

transport_answer *transport_answer_open(transport_answers *a, struct MHD_Connection *conn,
                                        raft_id peer)
{
    transport_answer *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conn = conn;
    s->peer = peer;
    buf_init(&s->body);
    pthread_mutex_lock(&a->mu);
    if (a->closed) { /* stopping: answer at once, never wait */
        pthread_mutex_unlock(&a->mu);
        free(s);
        return NULL;
    }
    /* at the tail: the oldest slot of a peer takes its messages first */
    transport_answer **pp = &a->slots;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    pthread_mutex_unlock(&a->mu);
    return s;
}

void transport_answer_free(transport_answer *s)
{
    if (!s)
        return;
    transport_free_msgs(s->msgs, s->n);
    buf_free(&s->body);
    free(s);
}

bool transport_answer_ready(const transport_answer *s) { return s && s->ready; }

const buf *transport_answer_body(const transport_answer *s) { return &s->body; }

void transport_answers_handled(transport_answers *a, transport_answer *s)
{
    pthread_mutex_lock(&a->mu);
    s->handled = true;
    pthread_mutex_unlock(&a->mu);
}

/* mu held: a copy of m into the peer's oldest slot; false if it has none
 * (or no room: then the message goes out as a request of our own). Room is
 * a batch's bytes: the asker drops a larger answer whole, and with it the
 * APPENDs a catching-up follower needs (256 in flight of up to 1 MiB each).
 * A slot
 * whose batch is not stepped yet (in the inbox, or held for an earlier one,
 * peer_order.h) carries it when that batch is: the same or the next turn,
 * and one request fewer per write at 1 connection than sending it alone. */
static bool add_locked(transport_answers *a, const raft_msg *m)
{
    for (transport_answer *s = a->slots; s; s = s->next) {
        if (s->peer != m->to)
            continue;
        size_t sz = transport_msg_wire_size(m);
        if (s->n >= SLOT_MAX_MSGS || (s->n && s->bytes + sz > TRANSPORT_BATCH_MAX_BYTES) ||
            xgrow(&s->msgs, &s->cap, s->n, sizeof *s->msgs) < 0 ||
            transport_msg_copy(m, &s->msgs[s->n]) < 0)
            return false;
        s->n++;
        s->bytes += sz;
        return true;
    }
    return false;
}

size_t transport_answers_take(transport_answers *a, const raft_msg *msgs, size_t n, raft_msg *rest)
{
    size_t left = 0;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < n; i++)
        if (msgs[i].type == RAFT_MSG_SNAP || !add_locked(a, &msgs[i]))
            rest[left++] = msgs[i]; /* a shallow copy: the sender copies it */
    pthread_mutex_unlock(&a->mu);
    return left;
}

/* Encodes and resumes; s is off the list. An answer that cannot be
 * encoded is an empty one: Raft sends again what matters. */
static void resume(transport_answers *a, transport_answer *s)
{
    if (s->n && transport_encode(a->cluster_id, s->msgs, s->n, &s->body) < 0)
        buf_reset(&s->body);
    transport_free_msgs(s->msgs, s->n);
    s->msgs = NULL;
    s->n = s->cap = s->bytes = 0;
    s->ready = true;
    if (!a->in_loop)
        handoff_count(HANDOFF_PEER_ANSWER);
    MHD_resume_connection(s->conn);
}

/* Returns how many connections it resumed. */
static size_t flush(transport_answers *a, bool all)
{
    transport_answer *out = NULL;
    pthread_mutex_lock(&a->mu);
    a->closed = a->closed || all;
    for (transport_answer **pp = &a->slots; *pp;) {
        transport_answer *s = *pp;
        if (s->handled || all) {
            *pp = s->next;
            s->next = out;
            out = s;
        } else {
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&a->mu);
    size_t n = 0;
    for (; out; n++) {
        transport_answer *next = out->next;
        resume(a, out);
        out = next;
    }
    return n;
}

void transport_answer_cancel(transport_answers *a, transport_answer *s)
{
    pthread_mutex_lock(&a->mu);
    for (transport_answer **pp = &a->slots; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&a->mu);
    resume(a, s); /* nothing was added: an empty answer, 204 */
}

size_t transport_answers_flush(transport_answers *a) { return flush(a, false); }

void transport_answers_flush_all(transport_answers *a) { flush(a, true); }
