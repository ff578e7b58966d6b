/* fuzz_pct: api_pct_decode (paths and query values) and api_parse_id.
 * Properties: no read past n (ASan: the input is not NUL-terminated), a
 * decoded string is NUL-terminated and never longer than its input, a
 * string without '%' decodes to itself, and decoding inverts encoding. */
#include "fuzz.h"
#include "api/api_int.h"

#include <string.h>

static void check_decode(const char *s, size_t n)
{
    uint8_t *out = NULL;
    size_t len = 0;
    int rc = api_pct_decode(s, n, &out, &len);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc < 0)
        return;
    FUZZ_CHECK(len <= n && out[len] == 0);
    if (!memchr(s, '%', n))
        FUZZ_CHECK(len == n && memcmp(out, s, n) == 0);
    free(out);
}

/* Every byte as %XX: must decode to the input. */
static void check_roundtrip(const uint8_t *data, size_t size)
{
    static const char digits[] = "0123456789ABCDEF";
    char *enc = malloc(3 * size + 1);
    FUZZ_CHECK(enc);
    for (size_t i = 0; i < size; i++) {
        enc[3 * i] = '%';
        enc[3 * i + 1] = digits[data[i] >> 4];
        enc[3 * i + 2] = digits[data[i] & 15];
    }
    uint8_t *out = NULL;
    size_t len = 0;
    FUZZ_CHECK(api_pct_decode(enc, 3 * size, &out, &len) == 0);
    FUZZ_CHECK(len == size && (size == 0 || memcmp(out, data, size) == 0));
    free(out);
    free(enc);
}

static void check_id(const char *s, size_t n)
{
    uint64_t id = 0;
    if (!api_parse_id(s, n, API_MAX_ID, &id))
        return;
    FUZZ_CHECK(id >= 1 && id <= API_MAX_ID);
    char text[32];
    int w = snprintf(text, sizeof text, "%llu", (unsigned long long)id);
    /* leading zeros are accepted: the digits after them must match */
    FUZZ_CHECK(w > 0 && (size_t)w <= n && memcmp(text, s + n - (size_t)w, (size_t)w) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so ASan sees any read past the end */
    char *s = malloc(size ? size : 1);
    FUZZ_CHECK(s);
    if (size)
        memcpy(s, data, size);
    check_decode(s, size);
    check_id(s, size);
    free(s);
    check_roundtrip(data, size < 4096 ? size : 4096);
    return 0;
}
