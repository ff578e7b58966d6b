/* buf and reader: the only way bytes are built and parsed in raftkv.
 * The reader treats its input as hostile: it never reads past the end and
 * reports failure instead. */
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

void buf_init(buf *b) { b->data = NULL; b->len = b->cap = 0; }
void buf_free(buf *b) { free(b->data); buf_init(b); }
void buf_reset(buf *b) { b->len = 0; }

int buf_reserve(buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return -1;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int buf_put_u8(buf *b, uint8_t v) { return buf_append(b, &v, 1); }

int buf_put_u32(buf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    return buf_append(b, x, 4);
}

int buf_put_u64(buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    return buf_append(b, x, 8);
}

int buf_put_bytes(buf *b, const void *p, uint32_t n)
{
    if (buf_put_u32(b, n) < 0)
        return -1;
    return buf_append(b, p, n);
}

int buf_put_u64s(buf *b, const uint64_t *v, uint32_t n)
{
    if (buf_reserve(b, 4 + (size_t)n * 8) < 0)
        return -1;
    buf_put_u32(b, n);
    for (uint32_t i = 0; i < n; i++)
        buf_put_u64(b, v[i]);
    return 0;
}

void reader_init(reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->failed = false;
}

size_t rd_left(const reader *r) { return r->len - r->off; }

static const uint8_t *rd_take(reader *r, size_t n)
{
    if (r->failed || n > r->len - r->off) {
        r->failed = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

int rd_u8(reader *r, uint8_t *v)
{
    const uint8_t *p = rd_take(r, 1);
    if (!p)
        return -1;
    *v = p[0];
    return 0;
}

static int rd_uint(reader *r, int width, uint64_t *v)
{
    const uint8_t *p = rd_take(r, (size_t)width);
    if (!p)
        return -1;
    uint64_t x = 0;
    for (int i = 0; i < width; i++)
        x |= (uint64_t)p[i] << (8 * i);
    *v = x;
    return 0;
}

int rd_u32(reader *r, uint32_t *v)
{
    uint64_t x;
    if (rd_uint(r, 4, &x) < 0)
        return -1;
    *v = (uint32_t)x;
    return 0;
}

int rd_u64(reader *r, uint64_t *v) { return rd_uint(r, 8, v); }

int rd_bytes(reader *r, const uint8_t **p, uint32_t *n)
{
    if (rd_u32(r, n) < 0)
        return -1;
    *p = rd_take(r, *n);
    return *p ? 0 : -1;
}

int rd_u64s(reader *r, uint64_t *v, uint32_t *n, uint32_t max)
{
    if (rd_u32(r, n) < 0 || *n > max) {
        r->failed = true;
        return -1;
    }
    for (uint32_t i = 0; i < *n; i++)
        if (rd_u64(r, &v[i]) < 0)
            return -1;
    return 0;
}
