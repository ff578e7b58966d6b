/* kv_auth: users, roles and key permissions as replicated state (etcd's
 * model) — applying the AUTH commands to the auth_* tables inside kv_apply's
 * savepoint, the check an AS command (a command run as a user) passes
 * before its inner command applies, and the same check and the listings
 * on a reader for the API.
 *
 * Must never: hash or compare a password, or sign a token (src/auth/ does,
 * where the request arrives, so every replica stores the same bytes);
 * make a refusal depend on anything but the command and the tables (every
 * replica refuses alike); let the enabled flag disagree with auth_secret at
 * a command or batch boundary.
 *
 * Permissions: a role's grant covers [key, end): end '' is the key alone,
 * end "\0" every key >= key. A user may touch a span when the union of the
 * grants of its roles with the needed bits covers it; role "root" covers
 * everything. A user's gen changes with its password and its roles: a
 * token names the gen it was made for, so such a change ends it. */
#include "kv/kv_internal.h"
#include "util/failpoint.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define ROOT "root"

/* ---- small SQL helpers: bind by a format ('t' text, 'b' blob + u32
 * length, 'i' int64), step once ---- */

static sqlite3_stmt *prep(kv_db *d, const char *sql, const char *fmt, va_list ap)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    int rc = SQLITE_OK;
    for (int i = 1; *fmt && rc == SQLITE_OK; fmt++, i++) {
        if (*fmt == 't') {
            rc = sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
        } else if (*fmt == 'b') {
            const uint8_t *p = va_arg(ap, const uint8_t *);
            uint32_t n = va_arg(ap, uint32_t);
            rc = sqlite3_bind_blob(st, i, n ? (const void *)p : "", (int)n, SQLITE_TRANSIENT);
        } else {
            rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
        }
    }
    if (rc != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* Prepares, binds and steps sql once: the step's code (SQLITE_ROW,
 * SQLITE_DONE, an error, or SQLITE_ERROR when it would not prepare), with
 * the first column of a row in *v and the rows a write changed in *changed. */
static int step_once(kv_db *d, const char *sql, int64_t *v, int *changed, const char *fmt,
                     va_list ap)
{
    sqlite3_stmt *st = prep(d, sql, fmt, ap);
    if (!st)
        return SQLITE_ERROR;
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    *changed = sqlite3_changes(d->db);
    return rc;
}

/* Runs a write: rows changed, or -1. */
static int run(kv_db *d, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int64_t v;
    int changed, rc = step_once(d, sql, &v, &changed, fmt, ap);
    va_end(ap);
    if (rc != SQLITE_DONE) {
        d->fail_code = rc;
        return -1;
    }
    return changed;
}

/* The first column of the first row as an integer (0 without a row), or -1. */
static int64_t one(kv_db *d, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int64_t v;
    int changed, rc = step_once(d, sql, &v, &changed, fmt, ap);
    va_end(ap);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? v : -1;
}

/* ---- the enabled flag ---- */

int kv_auth_load(kv *k)
{
    int64_t n = one(&k->w, "SELECT count(*) FROM auth_secret", "");
    if (n < 0)
        return -1;
    atomic_store_explicit(&k->auth_on, n > 0, memory_order_relaxed);
    return 0;
}

bool kv_auth_enabled(kv *k) { return atomic_load_explicit(&k->auth_on, memory_order_relaxed); }

/* ---- coverage ---- */

typedef struct {
    const uint8_t *p;
    uint32_t n;
    bool inf; /* +infinity: every key */
    bool plus0; /* the key p followed by one zero byte (just past key p) */
} bound;

static int bound_cmp(const bound *a, const bound *b)
{
    if (a->inf || b->inf)
        return a->inf - b->inf;
    int c = kv_key_cmp(a->p, a->n, b->p, b->n);
    if (c)
        return c;
    return a->plus0 - b->plus0;
}

/* The end of [key, end) as stored: '' = the key alone, "\0" = no end. */
static bound end_bound(const uint8_t *key, uint32_t klen, const uint8_t *end, uint32_t elen)
{
    if (elen == 0)
        return (bound){key, klen, false, true};
    if (elen == 1 && end[0] == 0)
        return (bound){NULL, 0, true, false};
    return (bound){end, elen, false, false};
}

typedef struct {
    uint8_t *key, *end;
    uint32_t klen, elen;
} grant;

static void grants_free(grant *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(g[i].key);
        free(g[i].end);
    }
    free(g);
}

static uint8_t *dup_col(sqlite3_stmt *st, int col, uint32_t *len)
{
    *len = (uint32_t)sqlite3_column_bytes(st, col);
    const void *p = sqlite3_column_blob(st, col);
    uint8_t *out = malloc(*len ? *len : 1);
    if (out && *len)
        memcpy(out, p, *len);
    return out;
}

/* The user's grants with every bit of perm, by key. */
static int load_grants(kv_db *d, const char *user, int perm, grant **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db,
                           "SELECT p.key, p.end FROM auth_grant g JOIN auth_perm p ON p.role ="
                           " g.role WHERE g.user = ?1 AND (p.perm & ?2) = ?2 ORDER BY p.key",
                           -1, &st, NULL) != SQLITE_OK)
        return KV_ERR_INTERNAL;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, perm);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (kv_grow((void **)out, *n, sizeof **out) < 0)
            break;
        grant *g = &(*out)[(*n)++];
        g->key = dup_col(st, 0, &g->klen);
        g->end = dup_col(st, 1, &g->elen);
        if (!g->key || !g->end)
            break;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? KV_OK : KV_ERR_INTERNAL;
}

/* Walks the grants in key order, extending how far [lo, ...) is covered. */
static bool covers(const grant *g, size_t n, bound lo, bound hi)
{
    bound cur = lo;
    for (size_t i = 0; i < n && bound_cmp(&cur, &hi) < 0; i++) {
        bound start = {g[i].key, g[i].klen, false, false};
        if (bound_cmp(&start, &cur) > 0)
            return false; /* a gap: later grants start later still */
        bound e = end_bound(g[i].key, g[i].klen, g[i].end, g[i].elen);
        if (bound_cmp(&e, &cur) > 0)
            cur = e;
    }
    return bound_cmp(&cur, &hi) >= 0;
}

static bound span_hi(const kv_span *s)
{
    if (!s->has_end)
        return (bound){s->key, s->key_len, false, true};
    bound b = end_bound(s->key, s->key_len, s->end, s->end_len);
    bound lo = {s->key, s->key_len, false, false};
    if (bound_cmp(&b, &lo) <= 0) /* an empty range still names its key */
        return (bound){s->key, s->key_len, false, true};
    return b;
}

static int has_role(kv_db *d, const char *user, const char *role)
{
    int64_t v = one(d, "SELECT count(*) FROM auth_grant WHERE user = ?1 AND role = ?2", "tt",
                    user, role);
    return v < 0 ? KV_ERR_INTERNAL : v > 0;
}

/* KV_OK, KV_ERR_PERMISSION or KV_ERR_INTERNAL: may user touch s with perm? */
static int span_allowed(kv_db *d, const char *user, const kv_span *s, int perm)
{
    int root = has_role(d, user, ROOT);
    if (root != 0)
        return root > 0 ? KV_OK : KV_ERR_INTERNAL;
    grant *g;
    size_t n;
    int rc = load_grants(d, user, perm, &g, &n);
    if (rc == KV_OK && !covers(g, n, (bound){s->key, s->key_len, false, false}, span_hi(s)))
        rc = KV_ERR_PERMISSION;
    grants_free(g, n);
    return rc;
}

/* KV_OK when user exists with generation gen, else KV_ERR_AUTH. */
static int identity_ok(kv_db *d, const char *user, uint64_t gen)
{
    int64_t g = one(d, "SELECT gen FROM auth_user WHERE name = ?1", "t", user);
    if (g < 0)
        return KV_ERR_INTERNAL;
    return g > 0 && (uint64_t)g == gen ? KV_OK : KV_ERR_AUTH;
}

/* ---- the checks an AS command runs (writer, inside the savepoint) ---- */

static int ops_allowed(kv_db *d, const char *user, const kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int perm = ops[i].type == KV_OP_RANGE ? KV_PERM_READ : KV_PERM_WRITE;
        int rc = span_allowed(d, user, &ops[i].span, perm);
        if (rc != KV_OK)
            return rc;
    }
    return KV_OK;
}

static int txn_allowed(kv_db *d, const char *user, const kv_txn *t)
{
    for (size_t i = 0; i < t->n_compare; i++) {
        kv_span s = {t->compare[i].key, t->compare[i].key_len, false, NULL, 0};
        int rc = span_allowed(d, user, &s, KV_PERM_READ);
        if (rc != KV_OK)
            return rc;
    }
    int rc = ops_allowed(d, user, t->success, t->n_success);
    return rc != KV_OK ? rc : ops_allowed(d, user, t->failure, t->n_failure);
}

/* Revoking a lease deletes its keys: write on each of them. */
static int revoke_allowed(kv_db *d, const char *user, int64_t id)
{
    kv_list keys = {0};
    int rc = kv_lease_keys(d, id, &keys);
    for (size_t i = 0; rc == KV_OK && i < keys.n; i++) {
        kv_span s = {keys.items[i].key, keys.items[i].key_len, false, NULL, 0};
        rc = span_allowed(d, user, &s, KV_PERM_WRITE);
    }
    kv_list_free(&keys);
    return rc;
}

int kv_auth_cmd_allowed(kv *k, const char *user, uint64_t gen, const kv_cmd *inner)
{
    kv_db *d = &k->w;
    if (!*user)
        return KV_ERR_AUTH; /* a client's write from before it saw auth enabled */
    int rc = identity_ok(d, user, gen);
    if (rc != KV_OK)
        return rc;
    int root = has_role(d, user, ROOT);
    if (root != 0)
        return root > 0 ? KV_OK : KV_ERR_INTERNAL;
    switch (inner->kind) {
    case KV_CMD_TXN: return txn_allowed(d, user, &inner->txn);
    case KV_CMD_LEASE_GRANT:
    case KV_CMD_LEASE_KEEPALIVE: return KV_OK;
    case KV_CMD_LEASE_REVOKE: return revoke_allowed(d, user, inner->lease_id);
    default: return KV_ERR_PERMISSION; /* compaction, alarms, auth: root only */
    }
}

/* ---- applying AUTH commands ---- */

static int bump_gen(kv_db *d, const char *user)
{
    int64_t rev = one(d, "SELECT value FROM kv_meta WHERE name = 'auth_revision'", "");
    if (rev < 0 || run(d, "INSERT OR REPLACE INTO kv_meta(name, value) VALUES('auth_revision', ?1)",
                       "i", rev + 1) < 0)
        return -1;
    if (!user)
        return 0;
    return run(d, "UPDATE auth_user SET gen = ?2 WHERE name = ?1", "ti", user, rev + 1) < 0 ? -1 : 0;
}

static int exists(kv_db *d, const char *table_sql, const char *name)
{
    int64_t v = one(d, table_sql, "t", name);
    return v < 0 ? -1 : v > 0;
}
#define USER_EXISTS "SELECT count(*) FROM auth_user WHERE name = ?1"
#define ROLE_EXISTS "SELECT count(*) FROM auth_role WHERE name = ?1"

/* Refusal (res->err), or -1 on an SQLite failure. */
static int user_add(kv *k, const kv_auth_cmd *c, kv_result *res)
{
    int e = exists(&k->w, USER_EXISTS, c->name);
    if (e != 0)
        return e < 0 ? -1 : (res->err = KV_ERR_EXISTS, 0);
    if (run(&k->w, "INSERT INTO auth_user(name, hash, gen) VALUES(?1, ?2, 0)", "tt", c->name,
            c->arg) < 0)
        return -1;
    return bump_gen(&k->w, c->name);
}

/* Changes to a user that must exist: DELETE, PASSWORD. */
static int user_change(kv *k, const kv_auth_cmd *c, kv_result *res)
{
    kv_db *d = &k->w;
    int e = exists(d, USER_EXISTS, c->name);
    if (e <= 0)
        return e < 0 ? -1 : (res->err = KV_ERR_NOT_FOUND, 0);
    if (c->op == KV_AUTH_USER_PASSWORD)
        return run(d, "UPDATE auth_user SET hash = ?2 WHERE name = ?1", "tt", c->name, c->arg) < 0
                   ? -1
                   : bump_gen(d, c->name);
    if (kv_auth_enabled(k) && strcmp(c->name, ROOT) == 0) {
        res->err = KV_ERR_INVALID; /* etcd: root stays while auth is on */
        return 0;
    }
    if (run(d, "DELETE FROM auth_grant WHERE user = ?1", "t", c->name) < 0 ||
        run(d, "DELETE FROM auth_user WHERE name = ?1", "t", c->name) < 0)
        return -1;
    return bump_gen(d, NULL);
}

static int user_role(kv *k, const kv_auth_cmd *c, kv_result *res)
{
    kv_db *d = &k->w;
    /* role root is implicit, as in etcd: granting it needs no ROLE_ADD */
    int u = exists(d, USER_EXISTS, c->name);
    int r = strcmp(c->arg, ROOT) == 0 ? 1 : exists(d, ROLE_EXISTS, c->arg);
    if (u < 0 || r < 0)
        return -1;
    if (!u || !r)
        return res->err = KV_ERR_NOT_FOUND, 0;
    if (c->op == KV_AUTH_USER_GRANT) {
        if (run(d, "INSERT OR IGNORE INTO auth_grant(user, role) VALUES(?1, ?2)", "tt", c->name,
                c->arg) < 0)
            return -1;
        return bump_gen(d, c->name);
    }
    if (kv_auth_enabled(k) && strcmp(c->name, ROOT) == 0 && strcmp(c->arg, ROOT) == 0)
        return res->err = KV_ERR_INVALID, 0;
    int n = run(d, "DELETE FROM auth_grant WHERE user = ?1 AND role = ?2", "tt", c->name, c->arg);
    if (n < 0)
        return -1;
    if (n == 0)
        return res->err = KV_ERR_NOT_FOUND, 0;
    return bump_gen(d, c->name);
}

static int role_add_del(kv *k, const kv_auth_cmd *c, kv_result *res)
{
    kv_db *d = &k->w;
    int e = exists(d, ROLE_EXISTS, c->name);
    if (e < 0)
        return -1;
    if (c->op == KV_AUTH_ROLE_ADD) {
        if (e)
            return res->err = KV_ERR_EXISTS, 0;
        return run(d, "INSERT INTO auth_role(name) VALUES(?1)", "t", c->name) < 0 ? -1 : 0;
    }
    if (!e)
        return res->err = KV_ERR_NOT_FOUND, 0;
    if (kv_auth_enabled(k) && strcmp(c->name, ROOT) == 0)
        return res->err = KV_ERR_INVALID, 0;
    /* its holders' roles change: their tokens end */
    if (bump_gen(d, NULL) < 0 ||
        run(d, "UPDATE auth_user SET gen = (SELECT value FROM kv_meta WHERE name ="
               " 'auth_revision') WHERE name IN (SELECT user FROM auth_grant WHERE role = ?1)",
            "t", c->name) < 0 ||
        run(d, "DELETE FROM auth_grant WHERE role = ?1", "t", c->name) < 0 ||
        run(d, "DELETE FROM auth_perm WHERE role = ?1", "t", c->name) < 0 ||
        run(d, "DELETE FROM auth_role WHERE name = ?1", "t", c->name) < 0)
        return -1;
    return 0;
}

static int role_perm(kv *k, const kv_auth_cmd *c, kv_result *res)
{
    kv_db *d = &k->w;
    int e = exists(d, ROLE_EXISTS, c->name);
    if (e <= 0)
        return e < 0 ? -1 : (res->err = KV_ERR_NOT_FOUND, 0);
    const kv_span *s = &c->span;
    uint32_t elen = s->has_end ? s->end_len : 0;
    if (c->op == KV_AUTH_ROLE_GRANT)
        return run(d, "INSERT OR REPLACE INTO auth_perm(role, key, end, perm) VALUES(?1, ?2, ?3, ?4)",
                   "tbbi", c->name, s->key, s->key_len, s->end, elen, (int64_t)c->perm) < 0
                   ? -1
                   : 0;
    int n = run(d, "DELETE FROM auth_perm WHERE role = ?1 AND key = ?2 AND end = ?3", "tbb", c->name,
                s->key, s->key_len, s->end, elen);
    if (n < 0)
        return -1;
    return n == 0 ? (res->err = KV_ERR_NOT_FOUND, 0) : 0;
}

static int auth_toggle(kv *k, const kv_auth_cmd *c, kv_result *res)
{
    kv_db *d = &k->w;
    if (c->op == KV_AUTH_DISABLE)
        return run(d, "DELETE FROM auth_secret", "") < 0 ? -1 : 0;
    int root = has_role(d, ROOT, ROOT);
    if (root < 0)
        return -1;
    if (!root)
        return res->err = KV_ERR_INVALID, 0; /* no way back in without root */
    /* a new secret: tokens of an earlier enable stop working */
    return run(d, "INSERT OR REPLACE INTO auth_secret(id, secret) VALUES(1, ?1)", "b", c->secret,
               c->secret_len) < 0
               ? -1
               : 0;
}

int kv_auth_apply(kv *k, const kv_auth_cmd *c, kv_result *res)
{
    int rc;
    switch (c->op) {
    case KV_AUTH_USER_ADD: rc = user_add(k, c, res); break;
    case KV_AUTH_USER_DELETE:
    case KV_AUTH_USER_PASSWORD: rc = user_change(k, c, res); break;
    case KV_AUTH_USER_GRANT:
    case KV_AUTH_USER_REVOKE: rc = user_role(k, c, res); break;
    case KV_AUTH_ROLE_ADD:
    case KV_AUTH_ROLE_DELETE: rc = role_add_del(k, c, res); break;
    case KV_AUTH_ROLE_GRANT:
    case KV_AUTH_ROLE_REVOKE: rc = role_perm(k, c, res); break;
    default: rc = auth_toggle(k, c, res); break;
    }
    if (rc < 0 || kv_auth_load(k) < 0)
        return KV_ERR_INTERNAL;
    return KV_OK;
}

/* ---- reads (any thread, on a reader) ---- */

int kv_auth_check(kv_conn *c, const char *user, uint64_t gen, const kv_span *s, int perm)
{
    if (kv_read_begin(&c->d) < 0)
        return KV_ERR_INTERNAL;
    int rc = identity_ok(&c->d, user, gen);
    if (rc == KV_OK && s) {
        rc = span_allowed(&c->d, user, s, perm);
    } else if (rc == KV_OK && perm == KV_PERM_ROOT) {
        int root = has_role(&c->d, user, ROOT); /* a failed read is not a refusal */
        rc = root < 0 ? KV_ERR_INTERNAL : root ? KV_OK : KV_ERR_PERMISSION;
    }
    kv_read_end(&c->d);
    return rc;
}

static char *dup_text(sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    return t ? xstrdup(t) : NULL;
}

int kv_auth_user_get(kv_conn *c, const char *name, char **hash, uint64_t *gen)
{
    *hash = NULL;
    if (failpoint_hit("auth.user")) /* a failed read of a user, as SQLite's */
        return KV_ERR_INTERNAL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->d.db, "SELECT hash, gen FROM auth_user WHERE name = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return KV_ERR_INTERNAL;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_DONE ? KV_ERR_NOT_FOUND : rc == SQLITE_ROW ? KV_OK : KV_ERR_INTERNAL;
    if (out == KV_OK) {
        *gen = (uint64_t)sqlite3_column_int64(st, 1);
        if (!(*hash = dup_text(st, 0)))
            out = KV_ERR_INTERNAL;
    }
    sqlite3_finalize(st);
    return out;
}

int kv_auth_secret(kv_conn *c, uint8_t *out, size_t cap, size_t *len)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->d.db, "SELECT secret FROM auth_secret WHERE id = 1", -1, &st,
                           NULL) != SQLITE_OK)
        return KV_ERR_INTERNAL;
    int rc = sqlite3_step(st);
    int out_rc = rc == SQLITE_DONE ? KV_ERR_NOT_FOUND : rc == SQLITE_ROW ? KV_OK : KV_ERR_INTERNAL;
    if (out_rc == KV_OK) {
        int n = sqlite3_column_bytes(st, 0);
        if (n <= 0 || (size_t)n > cap)
            out_rc = KV_ERR_INTERNAL;
        else
            memcpy(out, sqlite3_column_blob(st, 0), (size_t)(*len = (size_t)n));
    }
    sqlite3_finalize(st);
    return out_rc;
}

void kv_auth_rows_free(kv_auth_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].name);
        free(rows[i].role);
        free(rows[i].key);
        free(rows[i].end);
    }
    free(rows);
}

static const char *const list_sql[] = {
    [KV_AUTH_LIST_USERS] = "SELECT u.name, g.role, NULL, NULL, 0 FROM auth_user u LEFT JOIN"
                           " auth_grant g ON g.user = u.name WHERE ?1 IS NULL OR u.name = ?1"
                           " ORDER BY u.name, g.role",
    [KV_AUTH_LIST_ROLES] = "SELECT r.name, NULL, p.key, p.end, coalesce(p.perm, 0) FROM auth_role r"
                           " LEFT JOIN auth_perm p ON p.role = r.name WHERE ?1 IS NULL OR"
                           " r.name = ?1 ORDER BY r.name, p.key, p.end",
};

static int push_row(sqlite3_stmt *st, kv_auth_row **rows, size_t *n)
{
    if (kv_grow((void **)rows, *n, sizeof **rows) < 0)
        return -1;
    kv_auth_row *r = &(*rows)[(*n)++];
    memset(r, 0, sizeof *r);
    r->name = dup_text(st, 0);
    if (!r->name)
        return -1;
    if (sqlite3_column_type(st, 1) != SQLITE_NULL && !(r->role = dup_text(st, 1)))
        return -1;
    r->perm = sqlite3_column_int(st, 4);
    if (sqlite3_column_type(st, 2) == SQLITE_NULL)
        return 0;
    r->key = dup_col(st, 2, &r->key_len);
    r->end = dup_col(st, 3, &r->end_len);
    return r->key && r->end ? 0 : -1;
}

int kv_auth_list(kv_conn *c, int what, const char *name, kv_auth_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    if (failpoint_hit("auth.list")) /* a failed read of users or roles, as SQLite's */
        return KV_ERR_INTERNAL;
    sqlite3_stmt *st;
    if ((what != KV_AUTH_LIST_USERS && what != KV_AUTH_LIST_ROLES) ||
        sqlite3_prepare_v2(c->d.db, list_sql[what], -1, &st, NULL) != SQLITE_OK)
        return KV_ERR_INTERNAL;
    if (name)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (push_row(st, rows, n) < 0)
            break;
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        kv_auth_rows_free(*rows, *n);
        *rows = NULL;
        *n = 0;
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}
