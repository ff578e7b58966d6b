/* kv_span: key order and etcd's range conventions (single key, every key
 * >= key, [key, end)), shared by validation, reads and history. Must never
 * touch SQLite; the order here must stay SQLite's BLOB order (memcmp, then
 * the shorter key first) because scans seek in SQLite and stop in C. */
#include "kv/kv_internal.h"

#include <string.h>

int kv_key_cmp(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
{
    uint32_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static bool span_from_key(const kv_span *s)
{
    return s->has_end && s->end_len == 1 && s->end[0] == 0;
}

/* For a key >= s->key: true once the key is beyond the span, so an
 * ordered scan can stop. */
bool kv_span_past(const kv_span *s, const uint8_t *key, uint32_t len)
{
    if (!s->has_end)
        return kv_key_cmp(key, len, s->key, s->key_len) != 0;
    if (span_from_key(s))
        return false;
    return kv_key_cmp(key, len, s->end, s->end_len) >= 0;
}

bool kv_span_contains(const kv_span *s, const uint8_t *key, uint32_t len)
{
    return kv_key_cmp(key, len, s->key, s->key_len) >= 0 && !kv_span_past(s, key, len);
}

/* A single key must be non-empty; a range may start at the empty key (the
 * whole keyspace) but its end must not be empty. */
bool kv_span_valid(const kv_span *s)
{
    if ((!s->key && s->key_len) || s->key_len > KV_MAX_KEY_LEN)
        return false;
    if (!s->has_end)
        return s->key_len > 0;
    return s->end && s->end_len > 0 && s->end_len <= KV_MAX_KEY_LEN + 1;
}

uint32_t kv_prefix_end(const uint8_t *prefix, uint32_t prefix_len, uint8_t *out)
{
    uint32_t n = prefix_len;
    while (n > 0 && prefix[n - 1] == 0xff)
        n--;
    if (n == 0) {
        out[0] = 0;
        return 1;
    }
    memcpy(out, prefix, n);
    out[n - 1]++;
    return n;
}
