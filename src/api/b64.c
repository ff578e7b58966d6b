/* b64: standard base64 (RFC 4648, with padding) for non-UTF-8 keys and
 * values in JSON. Must never read or write outside the given lengths; a
 * malformed input is refused, not guessed at. */
#include "api/api_int.h"

#include <stdlib.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *api_b64_encode(const uint8_t *p, size_t n)
{
    if (n > SIZE_MAX / 2) /* the output is 4/3 of n */
        return NULL;
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[j++] = alphabet[(v >> 18) & 63];
        out[j++] = alphabet[(v >> 12) & 63];
        out[j++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        out[j++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    out[j] = 0;
    return out;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes one 4-character group; pad is how many '=' end it (0..2). */
static int decode_group(const char *s, int pad, uint8_t *d)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int x = k < 4 - pad ? b64val(s[k]) : 0;
        if (x < 0)
            return -1;
        v = (v << 6) | (uint32_t)x;
    }
    d[0] = (uint8_t)(v >> 16);
    d[1] = (uint8_t)(v >> 8);
    d[2] = (uint8_t)v;
    return 3 - pad;
}

int api_b64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    if (n % 4)
        return -1;
    uint8_t *d = malloc(n / 4 * 3 + 1);
    if (!d)
        return -2;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int pad = last && s[i + 3] == '=' ? (s[i + 2] == '=' ? 2 : 1) : 0;
        int got = decode_group(s + i, pad, d + j);
        if (got < 0) {
            free(d);
            return -1;
        }
        j += (size_t)got;
    }
    d[j] = 0; /* a NUL after the bytes, for callers that read text */
    *out = d;
    *outlen = j;
    return 0;
}
