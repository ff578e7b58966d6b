/* auth: the parts of authentication that live where a request arrives —
 * password hashing (auth_pass.c), signed tokens (auth_token.c) and the
 * per-address limit on failed logins (auth_limit.c). Who holds which role
 * and may touch which keys is replicated state in kv (kv.h, "auth").
 *
 * Must never: log a password, a hash, a token or the signing key; compare
 * secrets in time that depends on where they differ; block on anything
 * but the CPU (a hash costs tens of milliseconds, by design).
 */
#ifndef RAFTKV_AUTH_H
#define RAFTKV_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- passwords: yescrypt (libxcrypt), salted, computed once where the
 * request arrives so every replica stores the same hash ---- */
#define AUTH_HASH_MAX 256
#define AUTH_PASSWORD_MAX 1024
/* 0, or -1 (no randomness, no memory, password empty or too long). */
int auth_hash_password(const char *password, char *out, size_t cap);
/* 1 if password hashes to hash, 0 if not (or it is empty or too long),
 * -1 if it could not be checked (no memory, a hash crypt cannot read):
 * never a wrong password, which counts against the client. */
int auth_password_verify(const char *password, const char *hash);

/* ---- tokens: "<user hex>.<generation>.<expiry ms>.<HMAC-SHA256 hex>",
 * signed with the cluster's secret (replicated when auth is enabled), so
 * any member verifies one without asking anyone ---- */
#define AUTH_TOKEN_MAX 512
#define AUTH_TOKEN_TTL_MS (10u * 60u * 1000u)
int auth_token_make(const uint8_t *key, size_t klen, const char *user, uint64_t gen,
                    uint64_t expires_ms, char *out, size_t cap);
/* 0 with the user (NUL-terminated, at most ucap - 1 bytes) and generation
 * of a well-signed token not expired at now_ms, else -1. */
int auth_token_verify(const uint8_t *key, size_t klen, const char *token, uint64_t now_ms,
                      char *user, size_t ucap, uint64_t *gen);
/* 32 random bytes for a new signing key: 0 or -1. */
int auth_new_secret(uint8_t *out, size_t len);

/* ---- failed logins, per client address: AUTH_FAILS_MAX failures within
 * AUTH_FAILS_WINDOW_MS and the address may not try again until the
 * window ends ---- */
#define AUTH_FAILS_MAX 10
#define AUTH_FAILS_WINDOW_MS 60000u
typedef struct auth_limiter auth_limiter;
auth_limiter *auth_limiter_create(void); /* NULL on failure */
void auth_limiter_destroy(auth_limiter *l);
/* May this address try a password now? If not, *retry_ms says when. */
bool auth_limiter_allowed(auth_limiter *l, const struct sockaddr *sa, uint64_t now_ms,
                          uint64_t *retry_ms);
void auth_limiter_failed(auth_limiter *l, const struct sockaddr *sa, uint64_t now_ms);

#endif
