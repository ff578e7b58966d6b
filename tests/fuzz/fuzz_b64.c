/* fuzz_b64: api_b64_decode/api_b64_encode (JSON keys and values that are
 * not UTF-8). Properties: no read or write outside the given lengths,
 * decode(encode(x)) == x, and anything decode accepts is a whole number of
 * 4-character groups whose re-encoding decodes to the same bytes. */
#include "fuzz.h"
#include "api/api_int.h"

#include <string.h>

static void check_roundtrip(const uint8_t *data, size_t size)
{
    char *enc = api_b64_encode(data, size);
    FUZZ_CHECK(enc);
    size_t n = strlen(enc);
    FUZZ_CHECK(n == (size + 2) / 3 * 4);
    uint8_t *out = NULL;
    size_t len = 0;
    FUZZ_CHECK(api_b64_decode(enc, n, &out, &len) == 0);
    FUZZ_CHECK(len == size && (size == 0 || memcmp(out, data, size) == 0));
    free(out);
    free(enc);
}

static void check_decode(const char *s, size_t n)
{
    uint8_t *out = NULL;
    size_t len = 0;
    int rc = api_b64_decode(s, n, &out, &len);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc < 0)
        return;
    FUZZ_CHECK(n % 4 == 0 && len <= n / 4 * 3 && len + 2 >= n / 4 * 3);
    char *again = api_b64_encode(out, len);
    FUZZ_CHECK(again && strlen(again) == n);
    uint8_t *out2 = NULL;
    size_t len2 = 0;
    FUZZ_CHECK(api_b64_decode(again, n, &out2, &len2) == 0);
    FUZZ_CHECK(len2 == len && (len == 0 || memcmp(out2, out, len) == 0));
    free(out2);
    free(again);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1); /* exact size: ASan sees overreads */
    FUZZ_CHECK(s);
    if (size)
        memcpy(s, data, size);
    check_decode(s, size);
    free(s);
    check_roundtrip(data, size);
    return 0;
}
