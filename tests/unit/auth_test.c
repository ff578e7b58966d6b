/* auth_test: users, roles and permissions as kv state (kv_auth.c through
 * kv.h) — coverage of keys, prefixes and ranges by the union of a user's
 * grants, AS commands refused whole (a txn with one forbidden op, a lease
 * revoke over a forbidden key, compaction), a token's generation ended by
 * a password or role change, enable refused without root, auth surviving
 * reopen and snapshot restore, the decoder's refusals; and src/auth/ —
 * yescrypt hashes, signed tokens (tampered, expired, other key), the
 * failed-login limit. Every store lives in a fresh mkdtemp directory. */
#include "auth/auth.h"
#include "kv/kv.h"
#include "../test.h"
#include "kv_fixture.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int apply(kvfx *s, const buf *cmd)
{
    bool begin_ok, commit_ok;
    kv_result r;
    CHECK(kvfx_apply(s, cmd, &r, &begin_ok, &commit_ok) == KV_OK);
    CHECK(begin_ok && commit_ok);
    int err = r.err;
    kv_result_free(&r);
    return err;
}

static int auth_cmd(kvfx *s, kv_auth_cmd c)
{
    buf b;
    buf_init(&b);
    int rc = kv_encode_auth(&c, &b);
    if (rc == KV_OK)
        rc = apply(s, &b);
    buf_free(&b);
    return rc;
}

static int user_add(kvfx *s, const char *name)
{
    return auth_cmd(s, (kv_auth_cmd){.op = KV_AUTH_USER_ADD, .name = name, .arg = "$y$fake"});
}

static int grant_role(kvfx *s, const char *user, const char *role)
{
    return auth_cmd(s, (kv_auth_cmd){.op = KV_AUTH_USER_GRANT, .name = user, .arg = role});
}

static kv_span span_of(const char *key, const char *end)
{
    return (kv_span){(const uint8_t *)key, (uint32_t)strlen(key), end != NULL,
                     (const uint8_t *)end, end ? (uint32_t)(end[0] ? strlen(end) : 1) : 0};
}

static int perm(kvfx *s, const char *role, const char *key, const char *end, int p)
{
    return auth_cmd(s, (kv_auth_cmd){.op = KV_AUTH_ROLE_GRANT, .name = role,
                                     .span = span_of(key, end), .perm = (uint8_t)p});
}

static uint64_t gen_of(kvfx *s, const char *user)
{
    kv_conn *c = kv_reader_acquire(s->k);
    char *hash = NULL;
    uint64_t gen = 0;
    CHECK(c && kv_auth_user_get(c, user, &hash, &gen) == KV_OK);
    free(hash);
    if (c)
        kv_reader_release(s->k, c);
    return gen;
}

static int check(kvfx *s, const char *user, const char *key, const char *end, int p)
{
    kv_conn *c = kv_reader_acquire(s->k);
    kv_span sp = span_of(key, end);
    int rc = c ? kv_auth_check(c, user, gen_of(s, user), &sp, p) : KV_ERR_INTERNAL;
    if (c)
        kv_reader_release(s->k, c);
    return rc;
}

static uint8_t secret[KV_AUTH_SECRET_LEN];

static int enable(kvfx *s)
{
    return auth_cmd(s, (kv_auth_cmd){.op = KV_AUTH_ENABLE, .secret = secret,
                                     .secret_len = sizeof secret});
}

/* root with role root, alice with role "app" holding the given grants */
static void setup(kvfx *s)
{
    kvfx_open(s, "auth_test");
    CHECK(user_add(s, "root") == KV_OK);
    CHECK(auth_cmd(s, (kv_auth_cmd){.op = KV_AUTH_ROLE_ADD, .name = "root"}) == KV_OK);
    CHECK(grant_role(s, "root", "root") == KV_OK);
    CHECK(user_add(s, "alice") == KV_OK);
    CHECK(auth_cmd(s, (kv_auth_cmd){.op = KV_AUTH_ROLE_ADD, .name = "app"}) == KV_OK);
    CHECK(grant_role(s, "alice", "app") == KV_OK);
}

static void test_coverage(void)
{
    kvfx s;
    setup(&s);
    CHECK(perm(&s, "app", "a/", "a0", KV_PERM_READWRITE) == KV_OK); /* prefix a/ */
    CHECK(perm(&s, "app", "b", "d", KV_PERM_READ) == KV_OK);
    CHECK(perm(&s, "app", "d", "f", KV_PERM_READ) == KV_OK);
    CHECK(perm(&s, "app", "one", NULL, KV_PERM_WRITE) == KV_OK);
    CHECK(check(&s, "alice", "a/x", NULL, KV_PERM_WRITE) == KV_OK);
    CHECK(check(&s, "alice", "a/", "a0", KV_PERM_READ) == KV_OK);
    CHECK(check(&s, "alice", "a", NULL, KV_PERM_READ) == KV_ERR_PERMISSION);
    CHECK(check(&s, "alice", "a/", "b", KV_PERM_READ) == KV_ERR_PERMISSION);
    /* two adjacent grants cover what neither does alone */
    CHECK(check(&s, "alice", "c", "e", KV_PERM_READ) == KV_OK);
    CHECK(check(&s, "alice", "c", "g", KV_PERM_READ) == KV_ERR_PERMISSION);
    CHECK(check(&s, "alice", "c", NULL, KV_PERM_WRITE) == KV_ERR_PERMISSION);
    CHECK(check(&s, "alice", "one", NULL, KV_PERM_WRITE) == KV_OK);
    CHECK(check(&s, "alice", "one", NULL, KV_PERM_READ) == KV_ERR_PERMISSION);
    CHECK(check(&s, "alice", "one0", NULL, KV_PERM_WRITE) == KV_ERR_PERMISSION);
    CHECK(check(&s, "alice", "", "", KV_PERM_READ) == KV_ERR_PERMISSION); /* every key */
    CHECK(check(&s, "root", "", "", KV_PERM_READWRITE) == KV_OK);
    CHECK(perm(&s, "app", "z", "", KV_PERM_READ) == KV_OK); /* every key >= z */
    CHECK(check(&s, "alice", "zz", "", KV_PERM_READ) == KV_OK);
    /* revoking a grant takes it away */
    CHECK(auth_cmd(&s, (kv_auth_cmd){.op = KV_AUTH_ROLE_REVOKE, .name = "app",
                                     .span = span_of("b", "d")}) == KV_OK);
    CHECK(check(&s, "alice", "c", NULL, KV_PERM_READ) == KV_ERR_PERMISSION);
    CHECK(auth_cmd(&s, (kv_auth_cmd){.op = KV_AUTH_ROLE_REVOKE, .name = "app",
                                     .span = span_of("b", "d")}) == KV_ERR_NOT_FOUND);
    kvfx_close(&s);
}

static int put_as(kvfx *s, const char *user, uint64_t gen, const char *k1, const char *k2)
{
    kv_op ops[2] = {{.type = KV_OP_PUT, .span = span_of(k1, NULL), .value = (const uint8_t *)"v",
                     .value_len = 1},
                    {.type = KV_OP_PUT, .span = span_of(k2 ? k2 : "", NULL),
                     .value = (const uint8_t *)"v", .value_len = 1}};
    kv_txn t = {0, NULL, k2 ? 2 : 1, ops, 0, NULL};
    buf in, b;
    buf_init(&in);
    buf_init(&b);
    CHECK(kv_encode_txn(&t, &in) == KV_OK);
    CHECK(kv_encode_as(user, gen, in.data, in.len, &b) == KV_OK);
    int rc = apply(s, &b);
    buf_free(&in);
    buf_free(&b);
    return rc;
}

static void test_as_commands(void)
{
    kvfx s;
    setup(&s);
    CHECK(perm(&s, "app", "a/", "a0", KV_PERM_READWRITE) == KV_OK);
    uint64_t g = gen_of(&s, "alice");
    /* auth off: the identity is not checked */
    CHECK(put_as(&s, "alice", g, "x", NULL) == KV_OK);
    CHECK(enable(&s) == KV_OK && kv_auth_enabled(s.k));
    int64_t rev = kv_revision(s.k);
    CHECK(put_as(&s, "alice", g, "a/1", NULL) == KV_OK);
    CHECK(put_as(&s, "alice", g, "a/2", "x") == KV_ERR_PERMISSION); /* one op forbids all */
    CHECK(kv_revision(s.k) == rev + 1);
    CHECK(put_as(&s, "alice", g + 1, "a/1", NULL) == KV_ERR_AUTH);
    CHECK(put_as(&s, "bob", 1, "a/1", NULL) == KV_ERR_AUTH);
    CHECK(put_as(&s, "root", gen_of(&s, "root"), "anything", NULL) == KV_OK);
    /* compaction is root's */
    buf in, b;
    buf_init(&in);
    buf_init(&b);
    CHECK(kv_encode_compact(2, &in) == KV_OK);
    CHECK(kv_encode_as("alice", g, in.data, in.len, &b) == KV_OK);
    CHECK(apply(&s, &b) == KV_ERR_PERMISSION);
    /* a lease over a key alice may not write: she may not revoke it */
    buf_reset(&in);
    buf_reset(&b);
    CHECK(kv_encode_lease_grant(5, 60, &in) == KV_OK && apply(&s, &in) == KV_OK);
    kv_op op = {.type = KV_OP_PUT, .span = span_of("secret", NULL),
                .value = (const uint8_t *)"v", .value_len = 1, .lease = 5};
    kv_txn t = {0, NULL, 1, &op, 0, NULL};
    buf_reset(&in);
    CHECK(kv_encode_txn(&t, &in) == KV_OK && apply(&s, &in) == KV_OK);
    buf_reset(&in);
    CHECK(kv_encode_lease_revoke(5, &in) == KV_OK);
    CHECK(kv_encode_as("alice", g, in.data, in.len, &b) == KV_OK);
    CHECK(apply(&s, &b) == KV_ERR_PERMISSION);
    /* an AS inside an AS is not a command */
    buf nested;
    buf_init(&nested);
    CHECK(kv_encode_as("alice", g, b.data, b.len, &nested) == KV_ERR_INVALID);
    buf_free(&nested);
    /* a password change ends the old generation */
    CHECK(auth_cmd(&s, (kv_auth_cmd){.op = KV_AUTH_USER_PASSWORD, .name = "alice",
                                     .arg = "$y$other"}) == KV_OK);
    CHECK(gen_of(&s, "alice") != g);
    CHECK(put_as(&s, "alice", g, "a/1", NULL) == KV_ERR_AUTH);
    g = gen_of(&s, "alice");
    CHECK(put_as(&s, "alice", g, "a/1", NULL) == KV_OK);
    /* so does losing a role */
    CHECK(auth_cmd(&s, (kv_auth_cmd){.op = KV_AUTH_USER_REVOKE, .name = "alice", .arg = "app"}) ==
          KV_OK);
    CHECK(put_as(&s, "alice", g, "a/1", NULL) == KV_ERR_AUTH);
    CHECK(put_as(&s, "alice", gen_of(&s, "alice"), "a/1", NULL) == KV_ERR_PERMISSION);
    buf_free(&in);
    buf_free(&b);
    kvfx_close(&s);
}

static void test_enable_rules(void)
{
    kvfx s;
    kvfx_open(&s, "auth_test");
    CHECK(enable(&s) == KV_ERR_INVALID); /* no root */
    CHECK(user_add(&s, "root") == KV_OK);
    CHECK(enable(&s) == KV_ERR_INVALID); /* root without role root */
    CHECK(auth_cmd(&s, (kv_auth_cmd){.op = KV_AUTH_ROLE_ADD, .name = "root"}) == KV_OK);
    CHECK(grant_role(&s, "root", "root") == KV_OK);
    CHECK(!kv_auth_enabled(s.k));
    CHECK(enable(&s) == KV_OK && kv_auth_enabled(s.k));
    /* while on, root and its role stay */
    CHECK(auth_cmd(&s, (kv_auth_cmd){.op = KV_AUTH_USER_DELETE, .name = "root"}) == KV_ERR_INVALID);
    CHECK(auth_cmd(&s, (kv_auth_cmd){.op = KV_AUTH_ROLE_DELETE, .name = "root"}) == KV_ERR_INVALID);
    CHECK(auth_cmd(&s, (kv_auth_cmd){.op = KV_AUTH_USER_REVOKE, .name = "root", .arg = "root"}) ==
          KV_ERR_INVALID);
    CHECK(user_add(&s, "root") == KV_ERR_EXISTS);
    CHECK(grant_role(&s, "nobody", "root") == KV_ERR_NOT_FOUND);
    /* survives a restart and a snapshot restore */
    CHECK(user_add(&s, "carol") == KV_OK);
    char snap[160];
    snprintf(snap, sizeof snap, "%s/snap.db", s.dir);
    CHECK(kvfx_snapshot(&s, snap, NULL) == KV_OK);
    CHECK(auth_cmd(&s, (kv_auth_cmd){.op = KV_AUTH_DISABLE}) == KV_OK && !kv_auth_enabled(s.k));
    CHECK(auth_cmd(&s, (kv_auth_cmd){.op = KV_AUTH_USER_DELETE, .name = "carol"}) == KV_OK);
    kv_close(s.k);
    CHECK(kvfx_reopen(&s));
    if (s.k) {
        CHECK(!kv_auth_enabled(s.k));
        char err[256] = "";
        CHECK_MSG(kv_restore(s.k, snap, err, sizeof err) == KV_OK, "%s", err);
        CHECK(kv_auth_enabled(s.k));
        CHECK(gen_of(&s, "carol") > 0);
        kv_conn *c = kv_reader_acquire(s.k);
        uint8_t key[64];
        size_t n = 0;
        CHECK(c && kv_auth_secret(c, key, sizeof key, &n) == KV_OK && n == sizeof secret &&
              memcmp(key, secret, n) == 0);
        kv_auth_row *rows;
        size_t nr;
        CHECK(c && kv_auth_list(c, KV_AUTH_LIST_USERS, NULL, &rows, &nr) == KV_OK && nr == 2 &&
              strcmp(rows[0].name, "carol") == 0 && !rows[0].role &&
              strcmp(rows[1].role, "root") == 0);
        kv_auth_rows_free(rows, nr);
        if (c)
            kv_reader_release(s.k, c);
    }
    kvfx_close(&s);
}

static void test_bad_commands(void)
{
    buf b;
    buf_init(&b);
    CHECK(kv_encode_auth(&(kv_auth_cmd){.op = KV_AUTH_USER_ADD, .name = "a:b", .arg = "$y$x"},
                         &b) == KV_ERR_INVALID);
    CHECK(kv_encode_auth(&(kv_auth_cmd){.op = KV_AUTH_USER_ADD, .name = "a"}, &b) ==
          KV_ERR_INVALID);
    CHECK(kv_encode_auth(&(kv_auth_cmd){.op = KV_AUTH_ROLE_GRANT, .name = "r",
                                        .span = span_of("k", NULL), .perm = 9},
                         &b) == KV_ERR_INVALID);
    CHECK(kv_encode_auth(&(kv_auth_cmd){.op = KV_AUTH_ENABLE, .secret = secret, .secret_len = 3},
                         &b) == KV_ERR_INVALID);
    CHECK(kv_encode_auth(&(kv_auth_cmd){.op = 99}, &b) == KV_ERR_INVALID);
    CHECK(b.len == 0);
    /* a valid command with one byte flipped or cut never applies as another */
    CHECK(kv_encode_auth(&(kv_auth_cmd){.op = KV_AUTH_ROLE_ADD, .name = "r"}, &b) == KV_OK);
    kvfx s;
    kvfx_open(&s, "auth_test");
    buf cut;
    buf_init(&cut);
    buf_append(&cut, b.data, b.len - 1);
    CHECK(apply(&s, &cut) == KV_ERR_INVALID);
    b.data[2] = 77; /* op */
    CHECK(apply(&s, &b) == KV_ERR_INVALID);
    buf_free(&cut);
    buf_free(&b);
    kvfx_close(&s);
}

static void test_passwords_and_tokens(void)
{
    char h[AUTH_HASH_MAX], h2[AUTH_HASH_MAX];
    CHECK(auth_hash_password("s3cret", h, sizeof h) == 0 && strncmp(h, "$y$", 3) == 0);
    CHECK(auth_hash_password("s3cret", h2, sizeof h2) == 0 && strcmp(h, h2) != 0); /* salted */
    CHECK(auth_password_verify("s3cret", h) == 1);
    CHECK(auth_password_verify("s3cret ", h) == 0);
    CHECK(auth_password_verify("", h) == 0);
    /* a stored hash crypt cannot read is the server's failure, not a
     * wrong password (which would count against the client) */
    CHECK(auth_password_verify("s3cret", "$y$not-a-setting") == -1);
    CHECK(auth_password_verify("s3cret", "$nope$abc") == -1);
    CHECK(auth_password_verify("s3cret", "plain") == -1);
    CHECK(auth_hash_password("", h2, sizeof h2) < 0);
    uint8_t key[32] = {1, 2, 3}, other[32] = {9};
    char tok[AUTH_TOKEN_MAX], user[130];
    uint64_t gen = 0;
    CHECK(auth_token_make(key, sizeof key, "alice", 42, 5000, tok, sizeof tok) == 0);
    CHECK(auth_token_verify(key, sizeof key, tok, 4000, user, sizeof user, &gen) == 0 &&
          strcmp(user, "alice") == 0 && gen == 42);
    CHECK(auth_token_verify(key, sizeof key, tok, 5000, user, sizeof user, &gen) < 0); /* expired */
    CHECK(auth_token_verify(other, sizeof other, tok, 4000, user, sizeof user, &gen) < 0);
    for (size_t i = 0, n = strlen(tok); i < n; i += 7) {
        char t2[AUTH_TOKEN_MAX];
        strcpy(t2, tok);
        t2[i] = t2[i] == '1' ? '2' : '1';
        CHECK_MSG(auth_token_verify(key, sizeof key, t2, 4000, user, sizeof user, &gen) < 0,
                  "byte %zu", i);
    }
    CHECK(auth_token_verify(key, sizeof key, "", 0, user, sizeof user, &gen) < 0);
    CHECK(auth_token_verify(key, sizeof key, "a.b.c", 0, user, sizeof user, &gen) < 0);
}

static void test_failed_login_limit(void)
{
    auth_limiter *l = auth_limiter_create();
    CHECK(l != NULL);
    if (!l)
        return;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000005)};
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000006)};
    uint64_t retry = 0;
    for (int i = 0; i < AUTH_FAILS_MAX; i++) {
        CHECK(auth_limiter_allowed(l, (struct sockaddr *)&a, 1000 + i, &retry));
        auth_limiter_failed(l, (struct sockaddr *)&a, 1000 + i);
    }
    CHECK(!auth_limiter_allowed(l, (struct sockaddr *)&a, 2000, &retry) && retry > 0);
    CHECK(auth_limiter_allowed(l, (struct sockaddr *)&b, 2000, &retry));
    CHECK(auth_limiter_allowed(l, (struct sockaddr *)&a, 1000 + AUTH_FAILS_WINDOW_MS, &retry));
    auth_limiter_destroy(l);
}

int main(void)
{
    for (size_t i = 0; i < sizeof secret; i++)
        secret[i] = (uint8_t)(i * 7 + 1);
    RUN(test_coverage);
    RUN(test_as_commands);
    RUN(test_enable_rules);
    RUN(test_bad_commands);
    RUN(test_passwords_and_tokens);
    RUN(test_failed_login_limit);
    TEST_MAIN_END();
}
