/* codec_test: the peer wire format round-trips every message shape and
 * rejects anything truncated, corrupted, foreign, oversized or random,
 * without crashing or allocating from unchecked counts. */
#include "../test.h"
#include "msg_eq.h"
#include "transport/transport.h"
#include "transport/transport_int.h"

#include <stdlib.h>
#include <string.h>

#define CLUSTER 0x1122334455667788ull

static uint8_t bin_data[] = {0x00, 0xff, 0x10, 0x00, 'k', '=', 'v', 0x80};

static raft_entry sample_entries[] = {
    {.term = 3, .index = 10, .type = RAFT_ENTRY_NORMAL, .len = 0, .data = NULL},
    {.term = 3, .index = 11, .type = RAFT_ENTRY_NORMAL, .len = sizeof bin_data, .data = bin_data},
    {.term = 4, .index = 12, .type = RAFT_ENTRY_CONF, .len = 3, .data = bin_data + 4},
};

/* One message of each type, with every field set to something distinct. */
static void make_all(raft_msg *m, size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < sizeof sample_entries / sizeof sample_entries[0]; i++)
        sample_entries[i].crc = crc32c(0, sample_entries[i].data, sample_entries[i].len);
    for (int t = RAFT_MSG_APPEND; t <= RAFT_MSG_TRANSFER; t++) {
        raft_msg x;
        memset(&x, 0, sizeof x);
        x.type = (uint8_t)t;
        x.flags = (uint8_t)(t & 1);
        x.reject = t % 3 == 0;
        x.from = 1 + (raft_id)t;
        x.to = 100 + (raft_id)t;
        x.term = 7;
        x.log_term = 6;
        x.index = 0xfffffffffull + (uint64_t)t;
        x.commit = 5;
        x.reject_hint = 4;
        x.context = UINT64_MAX - (uint64_t)t;
        if (t == RAFT_MSG_APPEND || t == RAFT_MSG_PROP) {
            x.index = 9; /* an append's entries follow its previous one */
            x.log_term = 2;
            x.n_entries = 3;
            x.entries = sample_entries;
        }
        if (t == RAFT_MSG_SNAP) {
            x.snapshot.index = 99;
            x.snapshot.term = 5;
            x.snapshot.conf.n_voters = 3;
            for (raft_id v = 0; v < 3; v++)
                x.snapshot.conf.voters[v] = v + 1;
            x.snapshot.conf.n_learners = 2;
            x.snapshot.conf.learners[0] = 9;
            x.snapshot.conf.learners[1] = RAFT_MAX_NUMBER - 1;
        }
        m[(*n)++] = x;
    }
}

static buf encode_all(void)
{
    raft_msg m[16];
    size_t n;
    buf b;
    make_all(m, &n);
    buf_init(&b);
    CHECK(transport_encode(CLUSTER, m, n, &b) == 0);
    return b;
}

/* Recomputes the trailing CRC so a test can reach the checks behind it. */
static void reseal(buf *b)
{
    uint32_t crc = crc32c(0, b->data, b->len - 4);
    for (int i = 0; i < 4; i++)
        b->data[b->len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
}

static int decode(const buf *b, uint64_t cluster, const char **err)
{
    raft_msg *out = NULL;
    size_t n = 99;
    int rc = transport_decode(b->data, b->len, cluster, &out, &n, err);
    if (rc == 0)
        transport_free_msgs(out, n);
    else
        CHECK(out == NULL && n == 0);
    return rc;
}

static void test_roundtrip_every_type(void)
{
    raft_msg m[16];
    size_t n;
    make_all(m, &n);
    buf b = encode_all();
    raft_msg *out;
    size_t got;
    const char *err = NULL;
    CHECK(transport_decode(b.data, b.len, CLUSTER, &out, &got, &err) == 0);
    CHECK(got == n);
    for (size_t i = 0; i < n && i < got; i++)
        CHECK_MSG(msg_eq(&m[i], &out[i]), "message %zu (type %d) differs", i, m[i].type);
    /* entries are the caller's own copies, not pointers into the input */
    CHECK(out[0].entries[1].data != NULL &&
          (out[0].entries[1].data < b.data || out[0].entries[1].data >= b.data + b.len));
    CHECK(out[0].entries[0].data == NULL);
    transport_free_msgs(out, got);
    buf_free(&b);
}

/* The sender sizes batches by transport_msg_wire_size: it must never be
 * below what the encoder writes for that message (header and CRC aside),
 * even with the most members a conf can hold. */
static void test_wire_size_bounds_encoding(void)
{
    raft_msg m[16];
    size_t n;
    make_all(m, &n);
    m[0].snapshot.conf.n_voters = RAFT_MAX_MEMBERS;
    m[0].snapshot.conf.n_learners = RAFT_MAX_MEMBERS;
    for (size_t i = 0; i < n; i++) {
        buf b;
        buf_init(&b);
        CHECK(transport_encode(CLUSTER, &m[i], 1, &b) == 0);
        size_t body = b.len - 21; /* magic, version, cluster id, count, crc */
        CHECK_MSG(body <= transport_msg_wire_size(&m[i]), "message %zu: %zu bytes > bound %zu",
                  i, body, transport_msg_wire_size(&m[i]));
        buf_free(&b);
    }
}

static void test_roundtrip_empty_batch(void)
{
    buf b;
    buf_init(&b);
    CHECK(transport_encode(CLUSTER, NULL, 0, &b) == 0);
    CHECK(b.len == 21);
    raft_msg *out;
    size_t n = 5;
    const char *err;
    CHECK(transport_decode(b.data, b.len, CLUSTER, &out, &n, &err) == 0);
    CHECK(n == 0);
    transport_free_msgs(out, n);
    buf_free(&b);
}

static void test_every_truncation_rejected(void)
{
    buf b = encode_all();
    const char *err;
    for (size_t len = 0; len < b.len; len++) {
        buf t = {b.data, len, len};
        CHECK_MSG(decode(&t, CLUSTER, &err) < 0, "prefix of %zu bytes accepted", len);
    }
    raft_msg *out;
    size_t n;
    CHECK(transport_decode(NULL, 0, CLUSTER, &out, &n, &err) < 0);
    buf_free(&b);
}

static void test_every_bit_flip_rejected(void)
{
    buf b = encode_all();
    const char *err;
    int accepted = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b.data[i] ^= (uint8_t)(1u << bit);
            if (decode(&b, CLUSTER, &err) == 0)
                accepted++;
            b.data[i] ^= (uint8_t)(1u << bit);
        }
    }
    CHECK_MSG(accepted == 0, "%d corrupted encodings accepted", accepted);
    CHECK(decode(&b, CLUSTER, &err) == 0); /* and the original is still fine */
    buf_free(&b);
}

static void test_foreign_cluster_rejected(void)
{
    buf b = encode_all();
    const char *err = NULL;
    CHECK(decode(&b, CLUSTER + 1, &err) == TRANSPORT_ERR_FOREIGN);
    CHECK(err && strcmp(err, "foreign cluster") == 0);
    CHECK(strcmp(transport_strerror(TRANSPORT_ERR_FOREIGN), "foreign_cluster") == 0);
    b.data[b.len - 1] ^= 1; /* and a damaged frame is malformed, not foreign */
    CHECK(decode(&b, CLUSTER, &err) == TRANSPORT_ERR_MALFORMED);
    CHECK(strcmp(transport_strerror(-99), "unknown") == 0);
    buf_free(&b);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Offsets in the first encoded message (APPEND, 3 entries, no members). */
#define OFF_COUNT 13
#define OFF_MSG0 17
#define OFF_VOTERS (OFF_MSG0 + 3 + 80)
#define OFF_LEARNERS (OFF_VOTERS + 4)
#define OFF_NENTRIES (OFF_LEARNERS + 4)
#define OFF_ENTRY0_LEN (OFF_NENTRIES + 4 + 17)

static void check_patched(size_t off, uint32_t v, const char *want)
{
    buf b = encode_all();
    const char *err = NULL;
    put32(b.data + off, v);
    reseal(&b);
    CHECK_MSG(decode(&b, CLUSTER, &err) < 0, "patch at %zu accepted", off);
    CHECK_MSG(err && strcmp(err, want) == 0, "patch at %zu: err %s", off, err ? err : "(null)");
    buf_free(&b);
}

static void test_absurd_counts_rejected(void)
{
    /* With a valid CRC, so only the bound checks stand in the way; under
     * ASan a huge calloc would abort the test. */
    check_patched(OFF_COUNT, UINT32_MAX, "bad message count");
    check_patched(OFF_COUNT, 1000, "bad message count");
    check_patched(OFF_NENTRIES, UINT32_MAX, "malformed message");
    check_patched(OFF_ENTRY0_LEN, UINT32_MAX, "malformed message");
    check_patched(OFF_VOTERS, RAFT_MAX_MEMBERS + 1, "malformed message");
    check_patched(OFF_LEARNERS, UINT32_MAX, "malformed message");

    /* a count claiming more than is there, on a minimal frame */
    buf b;
    buf_init(&b);
    CHECK(transport_encode(CLUSTER, NULL, 0, &b) == 0);
    put32(b.data + OFF_COUNT, UINT32_MAX);
    reseal(&b);
    const char *err = NULL;
    CHECK(decode(&b, CLUSTER, &err) < 0);
    buf_free(&b);
}

static void test_bad_fields_rejected(void)
{
    const char *err;
    uint8_t bad_types[] = {0, RAFT_MSG_TRANSFER + 1, 0xff};
    for (size_t i = 0; i < sizeof bad_types; i++) {
        buf b = encode_all();
        b.data[OFF_MSG0] = bad_types[i];
        reseal(&b);
        CHECK(decode(&b, CLUSTER, &err) < 0);
        buf_free(&b);
    }
    buf b = encode_all();
    b.data[OFF_MSG0 + 2] = 2; /* reject is a bool */
    reseal(&b);
    CHECK(decode(&b, CLUSTER, &err) < 0);
    buf_free(&b);

    b = encode_all();
    b.data[4] = TRANSPORT_WIRE_VERSION + 1;
    reseal(&b);
    err = NULL;
    CHECK(decode(&b, CLUSTER, &err) < 0 && err && strcmp(err, "unsupported version") == 0);
    buf_free(&b);

    b = encode_all(); /* one extra byte before the CRC */
    CHECK(buf_append(&b, "xxxx", 4) == 0);
    b.data[b.len - 8] = 0;
    reseal(&b);
    err = NULL;
    CHECK(decode(&b, CLUSTER, &err) < 0 && err && strcmp(err, "trailing bytes") == 0);
    buf_free(&b);
}

/* Terms and indexes at or above 2^63 are malformed: refused at decode, so
 * no term + 1 anywhere can wrap (one forged max-term heartbeat used to stop
 * a whole cluster for good). */
static void test_huge_numbers_rejected(void)
{
    for (int field = 0; field < 7; field++) {
        raft_msg m[RAFT_MSG_TRANSFER];
        size_t n;
        make_all(m, &n);
        raft_msg *h = &m[RAFT_MSG_HEARTBEAT - 1];
        uint64_t *slots[] = {&h->term, &h->log_term, &h->index, &h->commit,
                             &h->reject_hint, &h->from, &h->to};
        *slots[field] = RAFT_MAX_NUMBER;
        buf b;
        buf_init(&b);
        const char *err = NULL;
        if (transport_encode(CLUSTER, m, n, &b) == 0)
            CHECK_MSG(decode(&b, CLUSTER, &err) < 0, "field %d at 2^63 accepted", field);
        *slots[field] = RAFT_MAX_NUMBER - 1;
        buf_free(&b);
        buf_init(&b);
        CHECK(transport_encode(CLUSTER, m, n, &b) == 0);
        CHECK_MSG(decode(&b, CLUSTER, &err) == 0, "field %d at 2^63-1 refused: %s", field,
                  err ? err : "");
        buf_free(&b);
    }
    raft_msg m[RAFT_MSG_TRANSFER];
    size_t n;
    make_all(m, &n);
    raft_entry big[3];
    memcpy(big, sample_entries, sizeof big);
    big[2].term = RAFT_MAX_NUMBER;
    m[RAFT_MSG_APPEND - 1].entries = big;
    m[RAFT_MSG_APPEND - 1].term = RAFT_MAX_NUMBER - 1;
    buf b;
    buf_init(&b);
    const char *err = NULL;
    if (transport_encode(CLUSTER, m, n, &b) == 0)
        CHECK(decode(&b, CLUSTER, &err) < 0);
    buf_free(&b);
}

/* An entry carries its own checksum: bytes changed inside its data are
 * refused even when the whole batch's CRC is made again (a forger's or a
 * buggy relay's), and an entry whose data no longer matches is never
 * encoded (sent). */
static void test_entry_checksum_travels(void)
{
    static uint8_t data[] = "payload-bytes";
    raft_entry e = {.term = 2, .index = 5, .type = RAFT_ENTRY_NORMAL, .len = sizeof data - 1,
                    .data = data, .crc = crc32c(0, data, sizeof data - 1)};
    raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APPEND;
    m.from = 1;
    m.to = 2;
    m.term = 2;
    m.index = 4;
    m.log_term = 2;
    m.entries = &e;
    m.n_entries = 1;
    buf b;
    buf_init(&b);
    CHECK(transport_encode(CLUSTER, &m, 1, &b) == 0);
    const char *err = NULL;
    raft_msg *out = NULL;
    size_t n = 0;
    CHECK(transport_decode(b.data, b.len, CLUSTER, &out, &n, &err) == 0 && n == 1);
    CHECK(out && out[0].entries[0].crc == e.crc);
    transport_free_msgs(out, n);
    uint8_t *p = memmem(b.data, b.len, "payload", 7);
    CHECK(p != NULL);
    if (p) {
        p[0] ^= 0x20;
        reseal(&b);
        CHECK(decode(&b, CLUSTER, &err) == TRANSPORT_ERR_MALFORMED);
    }
    buf_free(&b);
    buf_init(&b);
    data[0] ^= 0x20; /* damaged in memory after it was proposed */
    CHECK(transport_encode(CLUSTER, &m, 1, &b) < 0);
    data[0] ^= 0x20;
    buf_free(&b);
}

static void test_encode_refuses_invalid(void)
{
    raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_SNAP;
    m.snapshot.conf.n_voters = RAFT_MAX_MEMBERS + 1;
    buf b;
    buf_init(&b);
    CHECK(buf_append(&b, "abc", 3) == 0);
    CHECK(transport_encode(CLUSTER, &m, 1, &b) < 0);
    CHECK(b.len == 3); /* left as it was */
    m.snapshot.conf.n_voters = 0;
    m.n_entries = 1; /* entries missing */
    CHECK(transport_encode(CLUSTER, &m, 1, &b) < 0);
    CHECK(b.len == 3);
    buf_free(&b);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static void test_random_bytes_rejected(void)
{
    const char *err;
    for (int round = 0; round < 2000; round++) {
        buf b;
        buf_init(&b);
        size_t len = next_rand() % 600;
        for (size_t i = 0; i < len; i++)
            CHECK(buf_put_u8(&b, (uint8_t)next_rand()) == 0);
        CHECK(decode(&b, CLUSTER, &err) < 0);
        /* the same noise behind a valid frame header and CRC */
        buf f;
        buf_init(&f);
        CHECK(transport_encode(CLUSTER, NULL, 0, &f) == 0);
        f.len -= 4;
        put32(f.data + OFF_COUNT, next_rand() % 4);
        CHECK(buf_append(&f, b.data, b.len) == 0 && buf_put_u32(&f, 0) == 0);
        reseal(&f);
        raft_msg *out;
        size_t n;
        if (transport_decode(f.data, f.len, CLUSTER, &out, &n, &err) == 0) {
            /* if noise happens to parse, it must be a faithful encoding */
            buf again;
            buf_init(&again);
            CHECK(transport_encode(CLUSTER, out, n, &again) == 0);
            CHECK(again.len == f.len && memcmp(again.data, f.data, f.len) == 0);
            buf_free(&again);
            transport_free_msgs(out, n);
        }
        buf_free(&f);
        buf_free(&b);
    }
}

/* Bit-at-a-time CRC-32C, independent of both the table and the SSE4.2
 * code in util: on a CPU with SSE4.2 the table is never used, so checking
 * crc32c only against itself could not catch a wrong 8-byte step. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t len)
{
    uint32_t c = 0xFFFFFFFFu;
    while (len--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

/* CRC-32C (checked on every batch and snapshot) against the published
 * check value, against the bitwise reference on every length and offset
 * around the 8-byte steps, and in pieces. */
static void test_crc32c_known_answers(void)
{
    CHECK(crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(crc32c(0, "", 0) == 0);
    uint8_t zeros[32] = {0};
    CHECK(crc32c(0, zeros, 32) == 0x8A9136AAu);
    uint8_t bytes[100];
    for (int i = 0; i < 100; i++)
        bytes[i] = (uint8_t)(i * 7 + 1);
    for (size_t n = 0; n <= 100; n++) {
        uint32_t whole = crc32c(0, bytes, n);
        CHECK(whole == crc32c_bitwise(bytes, n));
        for (size_t off = 1; off < 8 && off <= n; off++)
            CHECK(crc32c(0, bytes + off, n - off) == crc32c_bitwise(bytes + off, n - off));
        for (size_t cut = 0; cut <= n; cut += 3)
            CHECK(crc32c(crc32c(0, bytes, cut), bytes + cut, n - cut) == whole);
    }
}

/* The one deep copy of a message (the send queues keep theirs): entries
 * and their bytes are the copy's own, and clearing frees them. */
static void test_msg_copy(void)
{
    uint8_t d[3] = {1, 2, 3};
    raft_entry e[2] = {{.term = 1, .index = 5, .len = 3, .data = d},
                       {.term = 1, .index = 6, .len = 0, .data = NULL}};
    raft_msg m = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1, .index = 4,
                  .n_entries = 2, .entries = e};
    raft_msg c;
    CHECK(transport_msg_copy(&m, &c) == 0);
    CHECK(c.entries != m.entries && c.entries[0].data != d);
    CHECK(c.entries[0].len == 3 && memcmp(c.entries[0].data, d, 3) == 0);
    CHECK(c.n_entries == 2 && c.entries[1].len == 0 && c.entries[1].data == NULL);
    CHECK(c.type == m.type && c.from == 1 && c.to == 2 && c.index == 4);
    transport_msg_clear(&c);
    CHECK(c.entries == NULL && c.n_entries == 0);
    raft_msg none = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2};
    CHECK(transport_msg_copy(&none, &c) == 0 && c.entries == NULL && c.n_entries == 0);
}

int main(void)
{
    RUN(test_crc32c_known_answers);
    RUN(test_roundtrip_every_type);
    RUN(test_roundtrip_empty_batch);
    RUN(test_wire_size_bounds_encoding);
    RUN(test_every_truncation_rejected);
    RUN(test_every_bit_flip_rejected);
    RUN(test_foreign_cluster_rejected);
    RUN(test_absurd_counts_rejected);
    RUN(test_bad_fields_rejected);
    RUN(test_huge_numbers_rejected);
    RUN(test_entry_checksum_travels);
    RUN(test_encode_refuses_invalid);
    RUN(test_random_bytes_rejected);
    RUN(test_msg_copy);
    TEST_MAIN_END();
}
