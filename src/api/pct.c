/* pct: percent-decoding and decimal ids for paths and query values. Pure.
 * Must never read past n bytes or accept a malformed escape silently: a bad
 * "%" sequence is an error the caller answers with 400. */
#include "api/api_int.h"

#include <stdlib.h>

int api_pct_decode(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    uint8_t *d = malloc(n + 1);
    if (!d)
        return -2;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[j++] = (uint8_t)s[i];
            continue;
        }
        /* both hex digits must lie inside the input */
        int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            free(d);
            return -1;
        }
        d[j++] = (uint8_t)(hi * 16 + lo);
        i += 2;
    }
    d[j] = 0;
    *out = d;
    *outlen = j;
    return 0;
}

bool api_parse_id(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    /* 16 digits cover 2^53; more digits can only be out of range */
    uint64_t v = 0;
    if (n > 16 || !parse_decimal(s, n, &v) || v == 0 || v > max)
        return false;
    *out = v;
    return true;
}
