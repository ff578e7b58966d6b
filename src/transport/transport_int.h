/* transport_int: declarations shared between the transport's own files
 * (message copies, the snapshot header, curl setup, the sender and the peer
 * listener). Must never be included outside src/transport/. */
#ifndef RAFTKV_TRANSPORT_INT_H
#define RAFTKV_TRANSPORT_INT_H

#include "transport/transport.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>

struct MHD_Connection;

/* ---- msg_copy.c: deep copies owned by the transport (no link dependency
 * on the raft core). ---- */
int transport_msg_copy(const raft_msg *m, raft_msg *out);
void transport_msg_clear(raft_msg *m); /* frees entries, zeroes count */

/* ---- codec.c ---- */
/* Upper bound of a message's encoded size, for sizing batches. */
size_t transport_msg_wire_size(const raft_msg *m);

/* A listener refuses a request body (a batch) larger than BODY_MAX, and a
 * sender drops an answer larger than it: so a batch, sent as a request or
 * carried in an answer, holds at most BATCH_MAX (one message alone may
 * pass it: an APPEND's entries are a soft cap of ~1 MiB). */
#define TRANSPORT_BODY_MAX_BYTES (64u << 20)
#define TRANSPORT_BATCH_MAX_BYTES (16u << 20)
_Static_assert(2ull * TRANSPORT_MAX_REQUEST_BYTES <= TRANSPORT_BODY_MAX_BYTES,
               "the largest client request must fit in one peer body, with room to spare");

/* ---- snap_header.c: the RAFT_MSG_SNAP travelling beside a snapshot body
 * in the X-Raftkv-Snapshot-Msg header, as hex of transport_encode(). ---- */
#define TRANSPORT_HDR_SNAP_MSG "X-Raftkv-Snapshot-Msg"
#define TRANSPORT_HDR_SNAP_SIZE "X-Raftkv-Snapshot-Size"
#define TRANSPORT_HDR_SNAP_CRC "X-Raftkv-Snapshot-Crc"
char *transport_snap_header_encode(uint64_t cluster_id, const raft_msg *msg);
/* 0, TRANSPORT_ERR_MALFORMED / FOREIGN (the sender's bytes) or
 * TRANSPORT_ERR_NOMEM (this node's memory); *err says which. */
int transport_snap_header_decode(const char *hex, uint64_t cluster_id,
                                 raft_msg *out, const char **err);
/* Strict decimal parse of a whole string (no sign, no spaces). */
int transport_parse_u64(const char *s, uint64_t *out);

/* ---- curl_util.c ---- */
void transport_curl_global_init(void);
/* Source address for outgoing peer requests (a numeric IPv4 listen host). */
void transport_curl_set_source(const char *host);
/* Options every transport request shares: no signals, TCP_NODELAY, a
 * connect timeout, and a response body that is read and thrown away. */
void transport_curl_common(CURL *e, long connect_ms);
/* Joins base URL and path, dropping a trailing '/' of the base. */
char *transport_url_join(const char *base, const char *path);
/* 2xx answer and no transport error? */
bool transport_curl_ok(CURL *e, CURLcode rc);
/* rc is a failed TLS handshake (a certificate problem), not an outage. */
bool transport_curl_tls_error(CURLcode rc);
/* Appends a copy of line; on failure frees the whole list and returns NULL. */
struct curl_slist *transport_slist_add(struct curl_slist *l, const char *line);

/* ---- snap_send.c: one streamed snapshot upload ---- */
typedef struct {
    raft_id peer;
    FILE *file;
    struct curl_slist *headers;
    CURL *easy;
} transport_snap_job;
/* Opens the file and prepares (but does not start) the upload. */
transport_snap_job *transport_snap_job_new(uint64_t cluster_id, const raft_msg *msg,
                                           const char *path, uint64_t size, uint32_t crc);
int transport_snap_job_arm(transport_snap_job *j, const char *peer_url);
void transport_snap_job_free(transport_snap_job *j);

/* ---- sender.c: the libcurl multi thread and the per-peer queues ---- */
typedef struct transport_sender transport_sender;
transport_sender *transport_sender_start(const transport_config *cfg);
void transport_sender_stop(transport_sender *s);
int transport_sender_set_peer(transport_sender *s, raft_id id, const char *url);
void transport_sender_remove_peer(transport_sender *s, raft_id id);
void transport_sender_send(transport_sender *s, const raft_msg *msgs, size_t n);
/* loop-driven (transport_poll): waits for a peer socket, wake_fd or listen_fd (-1: none). */
void transport_sender_poll(transport_sender *s, int wake_fd, int listen_fd, int timeout_ms);
uint64_t transport_sender_requests(const transport_sender *s);
void transport_sender_snapshot(transport_sender *s, const raft_msg *msg,
                               const char *path, uint64_t size, uint32_t crc);

/* ---- answers.c: a peer's POST answered with our messages to it ---- */
#define TRANSPORT_HDR_ANSWER "Raftkv-Answer"
/* "<epoch>.<seq>": the sender's numbering of its batches to this peer,
 * which steps them in that order (peer_order.c) */
#define TRANSPORT_HDR_SEQ "Raftkv-Seq"
typedef struct {
    pthread_mutex_t mu;
    transport_answer *slots; /* mu */
    bool closed;             /* mu: stopping, no new slot */
    uint64_t cluster_id;
    bool in_loop; /* the listener runs on the loop: a resume is no hand-off */
} transport_answers;
transport_answers *transport_answers_new(uint64_t cluster_id);
void transport_answers_free(transport_answers *a); /* after flush_all */
/* The listener: a slot for a suspended connection from `peer`, listed. */
transport_answer *transport_answer_open(transport_answers *a, struct MHD_Connection *conn,
                                        raft_id peer);
/* The listener, after suspending the connection, when the loop dropped
 * the batch: unlisted and resumed with an empty answer. */
void transport_answer_cancel(transport_answers *a, transport_answer *s);
/* The listener, once resumed: the answer is in the body (empty: 204). */
bool transport_answer_ready(const transport_answer *s);
const buf *transport_answer_body(const transport_answer *s);
void transport_answer_free(transport_answer *s); /* off the list: by its request */
/* The loop: the slot's batch was stepped; copies into slots of the
 * messages for their peers, the others left in rest (returns how many);
 * handled slots encoded and resumed (all: every slot, when stopping). */
void transport_answers_handled(transport_answers *a, transport_answer *s);
size_t transport_answers_take(transport_answers *a, const raft_msg *msgs, size_t n, raft_msg *rest);
size_t transport_answers_flush(transport_answers *a); /* how many resumed */
void transport_answers_flush_all(transport_answers *a);

/* ---- peer_server.c / snap_recv.c: the peer listener ---- */
typedef struct transport_server transport_server;
transport_server *transport_server_start(const transport_config *cfg, transport_answers *answers,
                                         char *err, size_t errlen);
void transport_server_stop(transport_server *srv);
uint16_t transport_server_port(const transport_server *srv);
/* cfg->loop_driven: the listener has no thread; the loop waits for this
 * fd (readable: work for transport_server_run) at most
 * transport_server_timeout_ms (-1: no limit) and runs it after each wait
 * and after resuming connections. -1 when the listener has threads. */
int transport_server_poll_fd(const transport_server *srv);
int transport_server_timeout_ms(const transport_server *srv);
void transport_server_run(transport_server *srv);
/* True once a run of the loop-driven listener failed (failpoint peer.run). */
bool transport_server_broken(const transport_server *srv);

/* ---- peer_work.c: the listener's slow requests on a thread ---- */
#define PEER_WORK_MAX 8 /* jobs queued, besides the one running */
typedef struct peer_work peer_work;
/* run: false when stop cancelled the job before it ran; either way the
 * job ends by resuming its connection. */
typedef void (*peer_work_fn)(void *arg, bool run);
peer_work *peer_work_start(void);
/* Queues fn(arg) for the thread; false (nothing queued) when full or
 * stopping. */
bool peer_work_submit(peer_work *w, peer_work_fn fn, void *arg);
/* Joins the thread once its running job returns; queued jobs are called
 * with run = false, on the caller's thread. */
void peer_work_stop(peer_work *w);
/* True once peer_work_stop has begun (it refuses new jobs from then on):
 * lets a test order its steps against a stop running on another thread. */
bool peer_work_stopping(peer_work *w);

/* The state of one POST /raft/snapshot upload, driven by the listener. */
typedef struct transport_snap_recv transport_snap_recv;
/* Validates the headers and opens the temp file. On failure returns NULL
 * with *status (400/413/500) and *err set; nothing stays on disk. */
transport_snap_recv *transport_snap_recv_begin(const transport_config *cfg,
                                               const char *msg_hex, const char *size_s,
                                               const char *crc_s, int *status,
                                               const char **err);
/* Consumes body bytes; -1 once the upload has gone wrong (keep draining). */
int transport_snap_recv_data(transport_snap_recv *r, const char *data, size_t n);
/* Verifies, fsyncs and renames; on success hands msg and path to
 * cfg->cb.on_snapshot. Returns the HTTP status; *err names a failure. */
int transport_snap_recv_finish(transport_snap_recv *r, const char **err);
/* Frees; deletes the temp file unless finish succeeded. */
void transport_snap_recv_free(transport_snap_recv *r);

#endif
