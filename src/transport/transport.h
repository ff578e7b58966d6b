/* transport: moves Raft messages and snapshots between nodes over HTTP/1.1.
 *
 * Owns: the peer wire encoding (versioned, cluster-ID tagged, CRC-32C
 * checksummed), the libcurl multi sender thread with one bounded queue per
 * peer (keep-alive, many messages per request, backoff for dead peers), the
 * snapshot streamer, and the peer listener (libmicrohttpd) serving
 * POST /raft/message, POST /raft/snapshot and GET /raft/info.
 *
 * Must never: call into Raft or block the node loop. Sending only enqueues
 * (dropping when a queue is full: Raft retransmits); everything received or
 * learned is handed to the callbacks below, which run on transport threads
 * and must only queue work for the node loop. Anything malformed or from a
 * foreign cluster is answered 400 and dropped before any callback runs.
 */
#ifndef RAFTKV_TRANSPORT_H
#define RAFTKV_TRANSPORT_H

#include "raft/raft.h"
#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors: 0, or a negative code (and, for decoding, a text saying
 * what was wrong). Every one of them is an answer to a peer (400, 503),
 * never a reason for this node to stop. ---- */
enum transport_err {
    TRANSPORT_OK = 0,
    TRANSPORT_ERR_MALFORMED = -1, /* truncated, bad magic/version/checksum/fields */
    TRANSPORT_ERR_FOREIGN = -2,   /* another cluster's id */
    TRANSPORT_ERR_NOMEM = -3,
};
/* The short snake_case name of a transport_err code; never NULL. */
const char *transport_strerror(int code);

/* The largest client request a node may accept (--max-request-bytes'
 * ceiling). The entry a request becomes travels alone, when it must, in
 * one peer request or answer, whose body a listener refuses past
 * TRANSPORT_BODY_MAX_BYTES (64 MiB, transport_int.h): an entry larger than
 * that could never reach a follower, and every try would cost the cluster
 * an election. Half of it leaves room for the key and the encoding. */
#define TRANSPORT_MAX_REQUEST_BYTES (32u << 20)

/* ---- wire encoding of a message batch (POST /raft/message body) ----
 * magic "RKVM", u8 version, u64 cluster_id, u32 count, messages...,
 * u32 CRC-32C of everything before it. Each entry also carries its own
 * checksum (raft_entry.crc), checked at encode and at decode. */
#define TRANSPORT_WIRE_VERSION 2 /* 2: every entry carries its own checksum */
int transport_encode(uint64_t cluster_id, const raft_msg *msgs, size_t n, buf *out);
/* Decodes untrusted bytes. On success *msgs is a malloc'd array of n
 * messages whose entries the caller owns (free with transport_free_msgs).
 * Returns TRANSPORT_ERR_MALFORMED for anything malformed, truncated or
 * corrupted (a term or index at or above 2^63 included: raft_msg_valid),
 * TRANSPORT_ERR_FOREIGN for another cluster's id (err says which),
 * TRANSPORT_ERR_NOMEM when this node could not allocate the batch. */
int transport_decode(const uint8_t *data, size_t len, uint64_t cluster_id,
                     raft_msg **msgs, size_t *n, const char **err);
void transport_free_msgs(raft_msg *msgs, size_t n);

/* ---- a member's hash of its key-value state (GET /raft/hash?revision=R),
 * how the leader compares replicas ---- */
enum transport_hash_status {
    TRANSPORT_HASH_OK = 0,
    TRANSPORT_HASH_COMPACTED = 1, /* R is compacted there: not comparable */
    TRANSPORT_HASH_FUTURE = 2,    /* that member has not applied R yet */
    TRANSPORT_HASH_CORRUPT = 3,   /* a row there failed its checksum */
    TRANSPORT_HASH_ERROR = 4,     /* unreachable, or an answer that makes no sense */
};
typedef struct {
    uint32_t hash;
    int64_t revision;         /* the revision hashed (R) */
    int64_t compact_revision; /* only hashes with the same one compare */
} transport_hash;
/* Asks the member at peer_url for its hash at rev; blocking, bounded by
 * timeout_ms; the answer is size-capped and strictly parsed. */
int transport_fetch_hash(const char *peer_url, int64_t rev, int timeout_ms, transport_hash *out);

/* ---- callbacks into the node (called on transport threads) ---- */
/* A peer's request waiting for our messages back to it (answers.c). */
typedef struct transport_answer transport_answer;

/* A pipelined batch's place in its sender's order (Raftkv-Seq): batches
 * with the same epoch are to be stepped by increasing seq (from 1). */
typedef struct {
    uint64_t epoch, seq;
} transport_seq;

typedef struct {
    void *ud;
    /* A batch of messages arrived; ownership of msgs passes to the callee
     * (free with transport_free_msgs). With `answer` (the peer asked to be
     * answered in its request), the callee must call
     * transport_answer_handled once it stepped the batch, or return false
     * if it dropped it (then nobody may). `seq` (NULL if the sender did
     * not number it) is the batch's place in the sender's order. */
    bool (*on_messages)(void *ud, raft_msg *msgs, size_t n, transport_answer *answer,
                        const transport_seq *seq);
    /* A snapshot arrived, verified, staged at `path` (ownership of the file
     * and of msg passes to the callee). msg is the RAFT_MSG_SNAP to step;
     * msg and path are malloc'd: free with transport_free_msgs(msg, 1) and
     * free(path). The file is <data_dir>/snap/recv-<index>-<term>.db. */
    void (*on_snapshot)(void *ud, raft_msg *msg, char *path);
    /* The peer could not be reached (request failed): tell Raft. */
    void (*on_unreachable)(void *ud, raft_id peer);
    /* A snapshot send finished. */
    void (*on_snapshot_sent)(void *ud, raft_id peer, bool ok);
    /* Was this node removed from the cluster? Its messages are then
     * answered 410 Gone, so that it learns it is out even if it missed the
     * commit of its own removal. May be NULL. */
    bool (*is_removed)(void *ud, raft_id node);
    /* A peer answered 410 Gone: this node was removed. May be NULL. */
    void (*on_removed)(void *ud);
    /* This node's hash at rev for GET /raft/hash (a transport_hash_status).
     * Runs on a listener thread: must read a kv reader, never the loop.
     * May be NULL (404). */
    int (*hash)(void *ud, int64_t rev, transport_hash *out);
} transport_callbacks;

typedef struct {
    uint64_t cluster_id; /* also answered on GET /raft/info, for joining nodes */
    raft_id self;
    const char *listen_host; /* peer listener address, from --cluster */
    uint16_t listen_port;
    /* https:// peers: the listener is TLS-only and refuses, in the
     * handshake, a peer without a certificate signed by ca_file */
    bool tls;
    const char *cert_file, *key_file, *ca_file;
    const char *data_dir;    /* received snapshots are staged under data_dir/snap/ */
    size_t queue_cap;        /* messages per peer queue (e.g. 4096) */
    uint64_t max_snapshot_bytes; /* refuse larger snapshots */
    /* no sender thread: the caller's loop drives peer I/O (transport_poll)
     * and is the only thread that calls transport_send and the peer
     * setters; callbacks from the sending side then run on that loop */
    bool loop_driven;
    transport_callbacks cb;
} transport_config;

typedef struct transport transport;

/* The certificate, key and CA every outgoing peer request uses (libcurl
 * reads the files for each new connection, so a SIGHUP's new files are
 * used without a call). Call once, before any request, with the three
 * files for https:// peers or NULLs for plain HTTP. 0, or -1 if out of
 * memory. */
int transport_client_tls(const char *cert_file, const char *key_file, const char *ca_file);
/* Reads the peer listener's certificate files again; 0, or -1 with a
 * message in err (the old ones stay in use). */
int transport_reload_tls(char *err, size_t errlen);

/* Starts the sender thread and the peer listener. Returns NULL (with a
 * message in err) if the listener cannot bind. */
transport *transport_start(const transport_config *cfg, char *err, size_t errlen);
void transport_stop(transport *t);
/* The port the peer listener is bound to (the kernel's pick when
 * cfg->listen_port was 0). */
uint16_t transport_listen_port(const transport *t);

int transport_set_peer(transport *t, raft_id id, const char *url);
void transport_remove_peer(transport *t, raft_id id);
/* Enqueues copies of the messages (grouped by destination). Never blocks. */
void transport_send(transport *t, const raft_msg *msgs, size_t n);
/* loop_driven: waits at most timeout_ms for a peer socket or wake_fd
 * (e.g. the loop's inbox eventfd; -1 for none) to be ready, then moves
 * what is ready and runs the callbacks it brings. Returns at once when
 * wake_fd is already readable. */
void transport_poll(transport *t, int wake_fd, int timeout_ms);
/* loop_driven: true once the peer listener failed to run (an internal
 * error: the caller must stop the node). */
bool transport_broken(const transport *t);
/* Message requests this node started (one per batch sent to a peer). */
uint64_t transport_requests(const transport *t);
/* The loop stepped the batch that came with `answer`: from now on its
 * messages to that peer ride the answer (transport_send). */
void transport_answer_handled(transport *t, transport_answer *answer);
/* End of the loop's turn: every handled answer goes back to its peer. */
void transport_flush_answers(transport *t);
/* Streams the snapshot file to msg->to, with msg (a RAFT_MSG_SNAP) as its
 * header; on_snapshot_sent reports the outcome. Wire form: POST
 * /raft/snapshot, body = the raw file; headers X-Raftkv-Snapshot-Msg (hex of
 * transport_encode() of msg alone), X-Raftkv-Snapshot-Size and
 * X-Raftkv-Snapshot-Crc (decimal; size and CRC-32C of the body). At most one snapshot in
 * flight per peer; a second request while one is in flight is reported
 * failed at once. */
void transport_send_snapshot(transport *t, const raft_msg *msg, const char *path,
                             uint64_t size, uint32_t crc);
/* Learns the cluster id from a running node's peer URL (blocking, for
 * --join at startup). 0 on success. */
int transport_fetch_cluster_id(const char *peer_url, uint64_t *cluster_id, int timeout_ms);

#endif
