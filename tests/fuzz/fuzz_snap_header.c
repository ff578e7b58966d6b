/* fuzz_snap_header: transport_snap_header_decode, the X-Raftkv-Snapshot-Msg
 * header (hex of a one-message batch) a peer sends before a snapshot body.
 * The first byte picks the form: odd, the rest is the header text as sent;
 * even, the rest is the batch, given the right CRC and then hex-encoded
 * here, so mutations reach the message checks. Properties: no crash, and
 * an accepted header is exactly one SNAP message with a snapshot index,
 * no entries, and the header's own bytes when encoded again. */
#include "fuzz.h"
#include "transport/transport_int.h"

#include <string.h>
#include <strings.h>

#define CLUSTER_ID 0x5eedULL /* tests/fuzz/gen_corpus.c encodes with it */

static char *hex_with_crc(const uint8_t *data, size_t size)
{
    static const char digits[] = "0123456789abcdef";
    size_t n = size + 4;
    uint8_t *b = malloc(n);
    char *hex = malloc(2 * n + 1);
    FUZZ_CHECK(b && hex);
    if (size)
        memcpy(b, data, size);
    uint32_t crc = crc32c(0, data, size);
    for (int i = 0; i < 4; i++)
        b[size + (size_t)i] = (uint8_t)(crc >> (8 * i));
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[b[i] >> 4];
        hex[2 * i + 1] = digits[b[i] & 15];
    }
    hex[2 * n] = 0;
    free(b);
    return hex;
}

static void check_accepted(const char *hex, raft_msg *m)
{
    FUZZ_CHECK(m->type == RAFT_MSG_SNAP && m->snapshot.index != 0);
    FUZZ_CHECK(m->n_entries == 0 && !m->entries);
    char *again = transport_snap_header_encode(CLUSTER_ID, m);
    FUZZ_CHECK(again);
    FUZZ_CHECK(strcasecmp(again, hex) == 0);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    char *hex = data[0] & 1 ? fuzz_cstr(data + 1, size - 1) : hex_with_crc(data + 1, size - 1);
    raft_msg m;
    memset(&m, 0, sizeof m);
    const char *err = NULL;
    if (transport_snap_header_decode(hex, CLUSTER_ID, &m, &err) == 0) {
        check_accepted(hex, &m);
        transport_msg_clear(&m);
    } else {
        FUZZ_CHECK(err);
    }
    free(hex);
    return 0;
}
