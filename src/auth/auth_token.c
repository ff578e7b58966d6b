/* auth_token: bearer tokens a member makes at /auth/authenticate and any
 * member checks alone — the user, the generation of its password and
 * roles, and an expiry, signed with HMAC-SHA256 under the cluster's
 * secret. A token says nothing the holder may not read: it is not
 * encrypted. Must never accept a token by a comparison that stops at the
 * first differing byte, nor parse past its buffer. */
#include "auth/auth.h"
#include "util/util.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MAC_LEN 32

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The signed part: everything before the last '.'. */
static int sign(const uint8_t *key, size_t klen, const char *msg, size_t n, char *out_hex)
{
    uint8_t mac[MAC_LEN];
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, klen, msg, n, mac) < 0)
        return -1;
    hex(mac, MAC_LEN, out_hex);
    return 0;
}

int auth_token_make(const uint8_t *key, size_t klen, const char *user, uint64_t gen,
                    uint64_t expires_ms, char *out, size_t cap)
{
    size_t ulen = strlen(user);
    char uhex[2 * 128 + 1];
    if (ulen == 0 || ulen > 128)
        return -1;
    hex((const uint8_t *)user, ulen, uhex);
    int n = snprintf(out, cap, "%s.%" PRIu64 ".%" PRIu64 ".", uhex, gen, expires_ms);
    if (n < 0 || (size_t)n + 2 * MAC_LEN + 1 > cap)
        return -1;
    return sign(key, klen, out, (size_t)n - 1, out + n);
}

static bool digits(const char *p, const char *end, uint64_t *v)
{
    return p <= end && parse_decimal(p, (size_t)(end - p), v);
}

/* user hex into user (NUL-terminated). */
static bool user_from_hex(const char *p, const char *end, char *user, size_t ucap)
{
    size_t n = (size_t)(end - p);
    if (n == 0 || n % 2 || n / 2 + 1 > ucap)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = unhex_digit(p[2 * i]), lo = unhex_digit(p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        user[i] = (char)(hi << 4 | lo);
        if (!user[i])
            return false;
    }
    user[n / 2] = '\0';
    return true;
}

int auth_token_verify(const uint8_t *key, size_t klen, const char *token, uint64_t now_ms,
                      char *user, size_t ucap, uint64_t *gen)
{
    size_t n = strnlen(token, AUTH_TOKEN_MAX + 1);
    if (n > AUTH_TOKEN_MAX || n < 2 * MAC_LEN + 7)
        return -1;
    const char *mac = token + n - 2 * MAC_LEN;
    if (mac[-1] != '.')
        return -1;
    char want[2 * MAC_LEN + 1];
    if (sign(key, klen, token, (size_t)(mac - 1 - token), want) < 0)
        return -1;
    unsigned char d = 0;
    for (size_t i = 0; i < 2 * MAC_LEN; i++)
        d |= (unsigned char)(want[i] ^ mac[i]);
    if (d)
        return -1;
    /* signed by us: the fields are ours, but parse them strictly anyway */
    const char *dot1 = memchr(token, '.', n), *dot2, *dot3;
    if (!dot1 || !(dot2 = memchr(dot1 + 1, '.', (size_t)(mac - dot1 - 1))) ||
        !(dot3 = memchr(dot2 + 1, '.', (size_t)(mac - dot2 - 1))) || dot3 != mac - 1)
        return -1;
    uint64_t exp;
    if (!user_from_hex(token, dot1, user, ucap) || !digits(dot1 + 1, dot2, gen) ||
        !digits(dot2 + 1, dot3, &exp) || exp <= now_ms)
        return -1;
    return 0;
}

int auth_new_secret(uint8_t *out, size_t len)
{
    return gnutls_rnd(GNUTLS_RND_KEY, out, len) == 0 ? 0 : -1;
}
