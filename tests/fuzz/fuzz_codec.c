/* fuzz_codec: transport_decode, the peer batch decoder (POST /raft/message).
 * Every input is decoded twice: as is, and with its last 4 bytes replaced
 * by the right CRC-32C, so mutations get past the checksum. The cluster id
 * is the one the input carries. Properties: no crash, and a batch that
 * decodes encodes back to exactly the same bytes (one encoding per batch). */
#include "fuzz.h"
#include "transport/transport_int.h"

#include <string.h>

static uint64_t input_cluster_id(const uint8_t *data, size_t size)
{
    uint64_t cid = 0;
    for (size_t i = 0; i < 8 && 5 + i < size; i++)
        cid |= (uint64_t)data[5 + i] << (8 * i);
    return cid;
}

static void check_msgs(const raft_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const raft_msg *m = &msgs[i];
        FUZZ_CHECK(m->type >= RAFT_MSG_APPEND && m->type <= RAFT_MSG_TRANSFER);
        FUZZ_CHECK(m->snapshot.conf.n_voters <= RAFT_MAX_MEMBERS);
        FUZZ_CHECK(m->snapshot.conf.n_learners <= RAFT_MAX_MEMBERS);
        FUZZ_CHECK(m->n_entries == 0 || m->entries);
        for (uint32_t k = 0; k < m->n_entries; k++)
            FUZZ_CHECK(m->entries[k].len == 0 || m->entries[k].data);
    }
}

static void decode_and_reencode(const uint8_t *data, size_t size)
{
    uint64_t cid = input_cluster_id(data, size);
    raft_msg *msgs;
    size_t n;
    const char *err = NULL;
    if (transport_decode(data, size, cid, &msgs, &n, &err) < 0) {
        FUZZ_CHECK(err && !msgs && n == 0);
        return;
    }
    check_msgs(msgs, n);
    buf b;
    buf_init(&b);
    FUZZ_CHECK(transport_encode(cid, msgs, n, &b) == 0);
    FUZZ_CHECK(b.len == size && memcmp(b.data, data, size) == 0);
    buf_free(&b);
    transport_free_msgs(msgs, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_and_reencode(data, size);
    if (size < 4)
        return 0;
    uint8_t *fixed = malloc(size);
    FUZZ_CHECK(fixed);
    memcpy(fixed, data, size);
    uint32_t crc = crc32c(0, fixed, size - 4);
    for (int i = 0; i < 4; i++)
        fixed[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    decode_and_reencode(fixed, size);
    free(fixed);
    return 0;
}
