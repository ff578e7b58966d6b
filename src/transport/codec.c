/* codec: the peer wire format of a message batch (POST /raft/message body
 * and the snapshot header). Layout, all little endian:
 *   "RKVM" | u8 version | u64 cluster_id | u32 count | message* | u32 crc32c
 * message: u8 type, u8 flags, u8 reject, u64 from, to, term, log_term, index,
 *   commit, reject_hint, context, u64 snap.index, snap.term, u32 n_voters,
 *   u64 voter*, u32 n_learners, u64 learner*, u32 n_entries, entry*
 * entry: u64 term, u64 index, u8 type, u32 len, len bytes, u32 crc (the
 *   entry's own checksum, made when it was proposed: checked both ways).
 * Must never trust a decoded length or count before checking it against the
 * bytes actually left, and never return a half-built batch. */
#include "transport/transport_int.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t MAGIC[4] = {'R', 'K', 'V', 'M'};
#define HEADER_BYTES 17u    /* magic, version, cluster id, count */
#define MIN_MSG_BYTES 95u   /* a message with no members and no entries */
#define MIN_ENTRY_BYTES 25u /* an entry with no data */
/* A decoding step's failure that is this node's memory, not the bytes:
 * the sender is not told its batch was malformed. */
#define NOMEM (-2)

/* ---- encoding ---- */

size_t transport_msg_wire_size(const raft_msg *m)
{
    size_t sz = MIN_MSG_BYTES + 16u * RAFT_MAX_MEMBERS; /* voters + learners */
    for (uint32_t i = 0; i < m->n_entries; i++)
        sz += MIN_ENTRY_BYTES + m->entries[i].len;
    return sz;
}

/* An entry whose data no longer matches its checksum was damaged in this
 * node's memory or disk: never sent. */
static int put_entry(buf *b, const raft_entry *e)
{
    if (e->len && !e->data)
        return -1;
    if (crc32c(0, e->data, e->len) != e->crc) {
        log_error("transport: entry %llu fails its checksum: not sent",
                  (unsigned long long)e->index);
        return -1;
    }
    if (buf_put_u64(b, e->term) < 0 || buf_put_u64(b, e->index) < 0 ||
        buf_put_u8(b, e->type) < 0 || buf_put_bytes(b, e->data, e->len) < 0)
        return -1;
    return buf_put_u32(b, e->crc);
}

static int put_msg(buf *b, const raft_msg *m)
{
    const uint64_t words[] = {m->from, m->to, m->term, m->log_term, m->index,
                              m->commit, m->reject_hint, m->context,
                              m->snapshot.index, m->snapshot.term};
    if (buf_put_u8(b, m->type) < 0 || buf_put_u8(b, m->flags) < 0 ||
        buf_put_u8(b, m->reject ? 1 : 0) < 0)
        return -1;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (buf_put_u64(b, words[i]) < 0)
            return -1;
    const raft_conf *c = &m->snapshot.conf;
    if (c->n_voters > RAFT_MAX_MEMBERS || c->n_learners > RAFT_MAX_MEMBERS ||
        buf_put_u64s(b, c->voters, c->n_voters) < 0 ||
        buf_put_u64s(b, c->learners, c->n_learners) < 0)
        return -1;
    if (m->n_entries && !m->entries)
        return -1;
    if (buf_put_u32(b, m->n_entries) < 0)
        return -1;
    for (uint32_t i = 0; i < m->n_entries; i++)
        if (put_entry(b, &m->entries[i]) < 0)
            return -1;
    return 0;
}

int transport_encode(uint64_t cluster_id, const raft_msg *msgs, size_t n, buf *out)
{
    size_t start = out->len;
    if (n > UINT32_MAX)
        return -1;
    /* || keeps the appends in order and stops at the first failure */
    int rc = (buf_append(out, MAGIC, sizeof MAGIC) < 0 ||
              buf_put_u8(out, TRANSPORT_WIRE_VERSION) < 0 ||
              buf_put_u64(out, cluster_id) < 0 || buf_put_u32(out, (uint32_t)n) < 0)
                 ? -1
                 : 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = put_msg(out, &msgs[i]);
    if (rc == 0)
        rc = buf_put_u32(out, crc32c(0, out->data + start, out->len - start));
    if (rc != 0) {
        out->len = start; /* never leave a half-written batch behind */
        return -1;
    }
    return 0;
}

/* ---- decoding ---- */

static int get_entry(reader *r, raft_entry *e)
{
    const uint8_t *p;
    if (rd_u64(r, &e->term) < 0 || rd_u64(r, &e->index) < 0 || rd_u8(r, &e->type) < 0 ||
        rd_bytes(r, &p, &e->len) < 0)
        return -1;
    if (rd_u32(r, &e->crc) < 0 || crc32c(0, p, e->len) != e->crc)
        return -1; /* damaged on the way, or forged without care */
    if (e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_CONF)
        return -1;
    if (e->len == 0)
        return 0;
    e->data = xmemdup(p, e->len); /* len is bounded: rd_bytes checked it */
    return e->data ? 0 : NOMEM;
}

static int get_entries(reader *r, raft_msg *m)
{
    uint32_t n;
    if (rd_u32(r, &n) < 0 || n > rd_left(r) / MIN_ENTRY_BYTES)
        return -1;
    if (n == 0)
        return 0;
    m->entries = calloc(n, sizeof *m->entries);
    if (!m->entries)
        return NOMEM;
    m->n_entries = n; /* set first so a failure frees what was built */
    for (uint32_t i = 0; i < n; i++) {
        int rc = get_entry(r, &m->entries[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int get_msg(reader *r, raft_msg *m)
{
    uint8_t reject;
    uint64_t *words[] = {&m->from, &m->to, &m->term, &m->log_term, &m->index,
                         &m->commit, &m->reject_hint, &m->context,
                         &m->snapshot.index, &m->snapshot.term};
    if (rd_u8(r, &m->type) < 0 || rd_u8(r, &m->flags) < 0 || rd_u8(r, &reject) < 0)
        return -1;
    if (m->type < RAFT_MSG_APPEND || m->type > RAFT_MSG_TRANSFER || reject > 1)
        return -1;
    m->reject = reject == 1;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (rd_u64(r, words[i]) < 0)
            return -1;
    raft_conf *c = &m->snapshot.conf;
    if (rd_u64s(r, c->voters, &c->n_voters, RAFT_MAX_MEMBERS) < 0 ||
        rd_u64s(r, c->learners, &c->n_learners, RAFT_MAX_MEMBERS) < 0)
        return -1;
    return get_entries(r, m);
}

const char *transport_strerror(int code)
{
    switch (code) {
    case TRANSPORT_OK: return "ok";
    case TRANSPORT_ERR_MALFORMED: return "bad_message";
    case TRANSPORT_ERR_FOREIGN: return "foreign_cluster";
    case TRANSPORT_ERR_NOMEM: return "out_of_memory";
    default: return "unknown";
    }
}

static int fail_code(const char **err, const char *why, int code)
{
    if (err)
        *err = why;
    return code;
}

static int fail(const char **err, const char *why)
{
    return fail_code(err, why, TRANSPORT_ERR_MALFORMED);
}

/* Checks everything that does not need parsing messages. */
static int check_frame(const uint8_t *data, size_t len, uint64_t cluster_id, const char **err)
{
    if (len < HEADER_BYTES + 4)
        return fail(err, "truncated");
    if (memcmp(data, MAGIC, sizeof MAGIC) != 0)
        return fail(err, "bad magic");
    if (data[4] != TRANSPORT_WIRE_VERSION)
        return fail(err, "unsupported version");
    reader tail;
    uint32_t crc;
    reader_init(&tail, data + len - 4, 4);
    rd_u32(&tail, &crc);
    if (crc32c(0, data, len - 4) != crc)
        return fail(err, "bad checksum");
    reader r;
    uint64_t cid;
    reader_init(&r, data + 5, 8);
    rd_u64(&r, &cid);
    if (cid != cluster_id)
        return fail_code(err, "foreign cluster", TRANSPORT_ERR_FOREIGN);
    return 0;
}

int transport_decode(const uint8_t *data, size_t len, uint64_t cluster_id,
                     raft_msg **msgs, size_t *n, const char **err)
{
    *msgs = NULL;
    *n = 0;
    if (!data)
        return fail(err, "truncated");
    int rc = check_frame(data, len, cluster_id, err);
    if (rc < 0)
        return rc;
    reader r;
    uint32_t count;
    reader_init(&r, data + HEADER_BYTES - 4, len - (HEADER_BYTES - 4) - 4);
    rd_u32(&r, &count);
    if (count > rd_left(&r) / MIN_MSG_BYTES)
        return fail(err, "bad message count");
    raft_msg *out = calloc(count ? count : 1, sizeof *out);
    if (!out)
        return fail_code(err, "out of memory", TRANSPORT_ERR_NOMEM);
    for (uint32_t i = 0; i < count; i++) {
        rc = get_msg(&r, &out[i]);
        if (rc < 0 || !raft_msg_valid(&out[i])) {
            transport_free_msgs(out, count);
            return rc == NOMEM ? fail_code(err, "out of memory", TRANSPORT_ERR_NOMEM)
                               : fail(err, "malformed message");
        }
    }
    if (rd_left(&r) != 0) {
        transport_free_msgs(out, count);
        return fail(err, "trailing bytes");
    }
    *msgs = out;
    *n = count;
    return 0;
}
