/* envelope: the header raftkv puts in front of every proposed entry —
 * which node proposed it and under which sequence number — so that the
 * node that proposed it can find the waiting client when it is applied.
 * Entries come from peers: parsing is strict and never trusts a length. */
#include "server/envelope.h"

#define ENVELOPE_VERSION 1

int envelope_wrap(buf *out, uint64_t origin, uint64_t seq, const void *payload, size_t len)
{
    buf_reset(out);
    if (buf_reserve(out, ENVELOPE_HEADER + len) < 0)
        return -1;
    buf_put_u8(out, ENVELOPE_VERSION);
    buf_put_u64(out, origin);
    buf_put_u64(out, seq);
    return buf_append(out, payload, len);
}

int envelope_open(const uint8_t *data, size_t len, uint64_t *origin, uint64_t *seq,
                  const uint8_t **payload, size_t *plen)
{
    reader r;
    uint8_t version;
    reader_init(&r, data, len);
    if (rd_u8(&r, &version) < 0 || version != ENVELOPE_VERSION ||
        rd_u64(&r, origin) < 0 || rd_u64(&r, seq) < 0)
        return -1;
    *payload = data + r.off;
    *plen = rd_left(&r);
    return 0;
}
