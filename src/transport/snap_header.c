/* snap_header: the RAFT_MSG_SNAP that describes a streamed snapshot. It
 * travels in the X-Raftkv-Snapshot-Msg HTTP header as the hex of a
 * one-message transport_encode() batch, so it carries the same version,
 * cluster id and CRC as any other peer message and can be checked before
 * a single body byte is written to disk. Size and CRC-32C of the body go in
 * X-Raftkv-Snapshot-Size / X-Raftkv-Snapshot-Crc as decimal numbers.
 * Must never accept anything but exactly one well-formed SNAP message. */
#include "transport/transport_int.h"

#include <stdlib.h>
#include <string.h>

/* A SNAP message with a full conf encodes to well under 1 KiB. */
#define MAX_HEADER_HEX 4096

char *transport_snap_header_encode(uint64_t cluster_id, const raft_msg *msg)
{
    static const char digits[] = "0123456789abcdef";
    buf b;
    buf_init(&b);
    if (transport_encode(cluster_id, msg, 1, &b) < 0) {
        buf_free(&b);
        return NULL;
    }
    char *hex = malloc(b.len * 2 + 1);
    if (hex) {
        for (size_t i = 0; i < b.len; i++) {
            hex[2 * i] = digits[b.data[i] >> 4];
            hex[2 * i + 1] = digits[b.data[i] & 15];
        }
        hex[b.len * 2] = '\0';
    }
    buf_free(&b);
    return hex;
}

/* 0 with *out malloc'd, -1 for anything but 1..MAX_HEADER_HEX hex digits
 * in pairs, -2 out of memory (checked last: the bytes are judged first). */
static int hex_decode(const char *hex, uint8_t **out, size_t *len)
{
    size_t n = hex ? strlen(hex) : 0;
    if (n == 0 || n % 2 || n > MAX_HEADER_HEX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (hex_digit(hex[i]) < 0)
            return -1;
    if (!(*out = malloc(n / 2)))
        return -2;
    for (size_t i = 0; i < n / 2; i++)
        (*out)[i] = (uint8_t)(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
    *len = n / 2;
    return 0;
}

int transport_snap_header_decode(const char *hex, uint64_t cluster_id,
                                 raft_msg *out, const char **err)
{
    size_t len = 0;
    uint8_t *bytes = NULL;
    int rc = hex_decode(hex, &bytes, &len);
    if (rc < 0) {
        *err = rc == -2 ? "out of memory" : "missing or malformed snapshot header";
        return rc == -2 ? TRANSPORT_ERR_NOMEM : TRANSPORT_ERR_MALFORMED;
    }
    raft_msg *msgs;
    size_t n;
    rc = transport_decode(bytes, len, cluster_id, &msgs, &n, err);
    free(bytes);
    if (rc < 0)
        return rc;
    if (n != 1 || msgs[0].type != RAFT_MSG_SNAP || msgs[0].snapshot.index == 0 ||
        msgs[0].n_entries != 0) {
        transport_free_msgs(msgs, n);
        *err = "snapshot header is not one snapshot message";
        return TRANSPORT_ERR_MALFORMED;
    }
    *out = msgs[0];
    free(msgs);
    return 0;
}

int transport_parse_u64(const char *s, uint64_t *out)
{
    return s && parse_decimal(s, strlen(s), out) ? 0 : -1;
}
