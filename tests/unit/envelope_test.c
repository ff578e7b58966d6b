/* envelope_test: the header in front of every proposed entry — a round
 * trip keeps origin, sequence number and payload (empty too), wrapping
 * replaces what the buffer held, and every input that is not a whole
 * version-1 header is refused: entries come from peers. */
#include "../test.h"
#include "server/envelope.h"

#include <string.h>

static void test_round_trip(void)
{
    buf b;
    buf_init(&b);
    const char payload[] = "put a=1";
    CHECK(envelope_wrap(&b, 7, 0x0102030405060708ull, payload, sizeof payload - 1) == 0);
    CHECK(b.len == ENVELOPE_HEADER + sizeof payload - 1);
    uint64_t origin = 0, seq = 0;
    const uint8_t *p = NULL;
    size_t plen = 0;
    CHECK(envelope_open(b.data, b.len, &origin, &seq, &p, &plen) == 0);
    CHECK(origin == 7 && seq == 0x0102030405060708ull);
    CHECK(plen == sizeof payload - 1 && p == b.data + ENVELOPE_HEADER);
    CHECK(p && memcmp(p, payload, plen) == 0);
    buf_free(&b);
}

static void test_empty_payload_and_extremes(void)
{
    buf b;
    buf_init(&b);
    CHECK(envelope_wrap(&b, UINT64_MAX, 0, "", 0) == 0);
    CHECK(b.len == ENVELOPE_HEADER);
    uint64_t origin = 0, seq = 1;
    const uint8_t *p = NULL;
    size_t plen = 99;
    CHECK(envelope_open(b.data, b.len, &origin, &seq, &p, &plen) == 0);
    CHECK(origin == UINT64_MAX && seq == 0 && plen == 0);
    buf_free(&b);
}

static void test_wrap_replaces_contents(void)
{
    buf b;
    buf_init(&b);
    CHECK(envelope_wrap(&b, 1, 1, "first, longer payload", 21) == 0);
    CHECK(envelope_wrap(&b, 2, 3, "xy", 2) == 0);
    CHECK(b.len == ENVELOPE_HEADER + 2);
    uint64_t origin = 0, seq = 0;
    const uint8_t *p = NULL;
    size_t plen = 0;
    CHECK(envelope_open(b.data, b.len, &origin, &seq, &p, &plen) == 0);
    CHECK(origin == 2 && seq == 3 && plen == 2 && p && memcmp(p, "xy", 2) == 0);
    buf_free(&b);
}

/* Every prefix shorter than the header is refused, whatever it holds. */
static void test_truncated_refused(void)
{
    buf b;
    buf_init(&b);
    CHECK(envelope_wrap(&b, 5, 9, "payload", 7) == 0);
    for (size_t len = 0; len < ENVELOPE_HEADER; len++) {
        uint64_t origin = 0, seq = 0;
        const uint8_t *p = NULL;
        size_t plen = 0;
        CHECK_MSG(envelope_open(b.data, len, &origin, &seq, &p, &plen) < 0,
                  "a %zu-byte prefix was accepted", len);
    }
    uint8_t none = 1;
    uint64_t origin, seq;
    const uint8_t *p;
    size_t plen;
    CHECK(envelope_open(&none, 0, &origin, &seq, &p, &plen) < 0);
    buf_free(&b);
}

/* Only version 1 is read: any other first byte is refused, even with a
 * whole header behind it. */
static void test_bad_version_refused(void)
{
    buf b;
    buf_init(&b);
    CHECK(envelope_wrap(&b, 5, 9, "payload", 7) == 0);
    for (int v = 0; v < 256; v++) {
        if (v == b.data[0])
            continue;
        uint8_t copy[ENVELOPE_HEADER + 7];
        memcpy(copy, b.data, sizeof copy);
        copy[0] = (uint8_t)v;
        uint64_t origin, seq;
        const uint8_t *p;
        size_t plen;
        CHECK_MSG(envelope_open(copy, sizeof copy, &origin, &seq, &p, &plen) < 0,
                  "version byte %d was accepted", v);
    }
    buf_free(&b);
}

int main(void)
{
    RUN(test_round_trip);
    RUN(test_empty_payload_and_extremes);
    RUN(test_wrap_replaces_contents);
    RUN(test_truncated_refused);
    RUN(test_bad_version_refused);
    TEST_MAIN_END();
}
