/* auth_pass: password hashes with libxcrypt's yescrypt, the default of
 * Debian's own /etc/shadow: salted, slow on purpose, and verified by
 * hashing again with the stored setting. Must never log or keep a
 * password, and never compare hashes with an early exit. */
#include "auth/auth.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

static bool same(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n != strlen(b))
        return false;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

int auth_hash_password(const char *password, char *out, size_t cap)
{
    size_t n = password ? strlen(password) : 0;
    if (n == 0 || n > AUTH_PASSWORD_MAX)
        return -1;
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof salt))
        return -1;
    struct crypt_data *cd = calloc(1, sizeof *cd); /* ~32 KiB: not on a thread's stack */
    if (!cd)
        return -1;
    const char *h = crypt_r(password, salt, cd);
    int rc = -1;
    if (h && h[0] == '$' && strlen(h) < cap && strlen(h) < AUTH_HASH_MAX) {
        strcpy(out, h);
        rc = 0;
    }
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return rc;
}

int auth_password_verify(const char *password, const char *hash)
{
    size_t n = password ? strlen(password) : 0;
    if (n == 0 || n > AUTH_PASSWORD_MAX)
        return 0;
    if (!hash || hash[0] != '$')
        return -1;
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return -1;
    /* crypt_r fails with a "*" string, not a hash, when it cannot run */
    const char *h = crypt_r(password, hash, cd);
    int rc = !h || h[0] != '$' ? -1 : same(h, hash) ? 1 : 0;
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return rc;
}
