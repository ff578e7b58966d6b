/* kv_cmd: the binary command format carried in Raft entries, and the one
 * validation both the encoders (refuse bad input before proposing) and
 * apply (log entries are untrusted) run. Must never touch the database.
 *
 * Format (integers little endian, bytes = u32 length + bytes):
 *   u8 version (1), u8 kind
 *   COMPACT: u64 revision
 *   LEASE_GRANT: u64 id, u64 ttl; LEASE_REVOKE, LEASE_KEEPALIVE: u64 id
 *   ALARM_ACTIVATE, ALARM_DEACTIVATE: u64 member id, u8 type
 *   AUTH: u8 op, bytes name, bytes arg, bytes key, u8 has_end, [bytes end],
 *         u8 perm, bytes secret (fields an op does not use are empty / 0)
 *   AS: bytes user, u64 generation, bytes inner command (not itself an AS)
 *   MEMBER_URL: u64 member id, bytes peer URL
 *   IDEM: bytes key, u64 fingerprint, u64 time (ms), bytes inner command
 *         (an AS or a plain command, not an IDEM)
 *   TXN: u32 n, n x compare; u32 n, n x op (success); u32 n, n x op (failure)
 *   compare: bytes key, u8 target, u8 result, then VALUE: bytes, else u64
 *   op: u8 type, bytes key, u8 has_end, [bytes end], then
 *       PUT: bytes value, u64 lease, u8 prev_kv
 *       DELETE: u8 prev_kv
 *       RANGE: u64 limit, u64 rev, u8 keys_only, u8 count_only
 * Trailing bytes are an error: one command has exactly one encoding. */
#include "kv/kv_internal.h"

#include <stdlib.h>
#include <string.h>

#define KV_CMD_VERSION 1

/* ---- validation ---- */

int kv_op_validate(const kv_op *o)
{
    if (!kv_span_valid(&o->span))
        return KV_ERR_INVALID;
    switch (o->type) {
    case KV_OP_PUT:
        if (o->span.has_end || o->lease < 0 || o->value_len > KV_MAX_VALUE_LEN ||
            (!o->value && o->value_len))
            return KV_ERR_INVALID;
        return KV_OK;
    case KV_OP_DELETE:
        return KV_OK;
    case KV_OP_RANGE:
        return o->limit < 0 || o->rev < 0 ? KV_ERR_INVALID : KV_OK;
    default:
        return KV_ERR_INVALID;
    }
}

static int compare_validate(const kv_compare *c)
{
    if (!c->key || c->key_len == 0 || c->key_len > KV_MAX_KEY_LEN)
        return KV_ERR_INVALID;
    if (c->result < KV_CMP_EQUAL || c->result > KV_CMP_LESS)
        return KV_ERR_INVALID;
    if (c->target == KV_CMP_VALUE)
        return (!c->value && c->value_len) || c->value_len > KV_MAX_VALUE_LEN ? KV_ERR_INVALID
                                                                               : KV_OK;
    if (c->target < KV_CMP_VERSION || c->target > KV_CMP_LEASE || c->number < 0)
        return KV_ERR_INVALID;
    return KV_OK;
}

/* etcd refuses a txn branch that writes one key twice (two puts, or a put
 * inside a deleted range): one revision holds at most one change per key,
 * which keeps history unambiguous. */
static bool put_conflicts(const kv_op *ops, size_t i)
{
    const kv_span *p = &ops[i].span;
    for (size_t j = 0; j < i; j++) {
        if (ops[j].type == KV_OP_PUT &&
            kv_key_cmp(ops[j].span.key, ops[j].span.key_len, p->key, p->key_len) == 0)
            return true;
    }
    return false;
}

static bool delete_covers_put(const kv_op *ops, size_t n, size_t i)
{
    for (size_t j = 0; j < n; j++)
        if (ops[j].type == KV_OP_DELETE &&
            kv_span_contains(&ops[j].span, ops[i].span.key, ops[i].span.key_len))
            return true;
    return false;
}

static int branch_validate(const kv_op *ops, size_t n)
{
    if (n > KV_MAX_TXN_OPS || (n && !ops))
        return KV_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (kv_op_validate(&ops[i]) != KV_OK)
            return KV_ERR_INVALID;
        if (ops[i].type == KV_OP_PUT && (put_conflicts(ops, i) || delete_covers_put(ops, n, i)))
            return KV_ERR_INVALID;
    }
    return KV_OK;
}

int kv_txn_validate(const kv_txn *t)
{
    if (t->n_compare > KV_MAX_TXN_OPS || (t->n_compare && !t->compare))
        return KV_ERR_INVALID;
    for (size_t i = 0; i < t->n_compare; i++)
        if (compare_validate(&t->compare[i]) != KV_OK)
            return KV_ERR_INVALID;
    if (branch_validate(t->success, t->n_success) != KV_OK ||
        branch_validate(t->failure, t->n_failure) != KV_OK)
        return KV_ERR_INVALID;
    return KV_OK;
}

/* ---- encoding ---- */

static int put_i64(buf *b, int64_t v) { return buf_put_u64(b, (uint64_t)v); }

static int put_compare(buf *b, const kv_compare *c)
{
    if (buf_put_bytes(b, c->key, c->key_len) < 0 || buf_put_u8(b, c->target) < 0 ||
        buf_put_u8(b, c->result) < 0)
        return -1;
    if (c->target == KV_CMP_VALUE)
        return buf_put_bytes(b, c->value, c->value_len);
    return put_i64(b, c->number);
}

static int put_op(buf *b, const kv_op *o)
{
    const kv_span *s = &o->span;
    if (buf_put_u8(b, o->type) < 0 || buf_put_bytes(b, s->key, s->key_len) < 0 ||
        buf_put_u8(b, s->has_end) < 0 || (s->has_end && buf_put_bytes(b, s->end, s->end_len) < 0))
        return -1;
    switch (o->type) {
    case KV_OP_PUT:
        return buf_put_bytes(b, o->value, o->value_len) < 0 || put_i64(b, o->lease) < 0 ||
                       buf_put_u8(b, o->prev_kv) < 0
                   ? -1
                   : 0;
    case KV_OP_DELETE:
        return buf_put_u8(b, o->prev_kv);
    default:
        return put_i64(b, o->limit) < 0 || put_i64(b, o->rev) < 0 ||
                       buf_put_u8(b, o->keys_only) < 0 || buf_put_u8(b, o->count_only) < 0
                   ? -1
                   : 0;
    }
}

static int put_ops(buf *b, const kv_op *ops, size_t n)
{
    if (buf_put_u32(b, (uint32_t)n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (put_op(b, &ops[i]) < 0)
            return -1;
    return 0;
}

static int encode_txn_body(const kv_txn *t, buf *out)
{
    if (buf_put_u8(out, KV_CMD_VERSION) < 0 || buf_put_u8(out, KV_CMD_TXN) < 0 ||
        buf_put_u32(out, (uint32_t)t->n_compare) < 0)
        return -1;
    for (size_t i = 0; i < t->n_compare; i++)
        if (put_compare(out, &t->compare[i]) < 0)
            return -1;
    if (put_ops(out, t->success, t->n_success) < 0 || put_ops(out, t->failure, t->n_failure) < 0)
        return -1;
    return 0;
}

/* Appends to out; on failure out is left as it was. */
int kv_encode_txn(const kv_txn *t, buf *out)
{
    if (kv_txn_validate(t) != KV_OK)
        return KV_ERR_INVALID;
    size_t start = out->len;
    if (encode_txn_body(t, out) < 0) {
        out->len = start;
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

int kv_encode_compact(int64_t revision, buf *out)
{
    if (revision <= 0)
        return KV_ERR_INVALID;
    size_t start = out->len;
    if (buf_put_u8(out, KV_CMD_VERSION) < 0 || buf_put_u8(out, KV_CMD_COMPACT) < 0 ||
        put_i64(out, revision) < 0) {
        out->len = start;
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

static bool lease_id_ok(int64_t id) { return id >= 1 && id <= KV_LEASE_MAX_ID; }
static bool lease_ttl_ok(int64_t ttl) { return ttl >= 1 && ttl <= KV_LEASE_MAX_TTL; }

/* One encoder for the three lease commands: kind, id, and a ttl for GRANT. */
static int encode_lease(int kind, int64_t id, int64_t ttl, buf *out)
{
    bool grant = kind == KV_CMD_LEASE_GRANT;
    if (!lease_id_ok(id) || (grant && !lease_ttl_ok(ttl)))
        return KV_ERR_INVALID;
    size_t start = out->len;
    if (buf_put_u8(out, KV_CMD_VERSION) < 0 || buf_put_u8(out, (uint8_t)kind) < 0 ||
        put_i64(out, id) < 0 || (grant && put_i64(out, ttl) < 0)) {
        out->len = start;
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

int kv_encode_lease_grant(int64_t id, int64_t ttl, buf *out)
{
    return encode_lease(KV_CMD_LEASE_GRANT, id, ttl, out);
}

int kv_encode_lease_revoke(int64_t id, buf *out)
{
    return encode_lease(KV_CMD_LEASE_REVOKE, id, 0, out);
}

int kv_encode_lease_keepalive(int64_t id, buf *out)
{
    return encode_lease(KV_CMD_LEASE_KEEPALIVE, id, 0, out);
}

static bool alarm_ok(int kind, uint64_t member, int type)
{
    if (type != KV_ALARM_NOSPACE && type != KV_ALARM_CORRUPT)
        return false;
    return kind == KV_CMD_ALARM_DEACTIVATE || member != 0;
}

int kv_encode_alarm(int action, uint64_t member_id, int type, buf *out)
{
    int kind = action == KV_ALARM_ACTIVATE     ? KV_CMD_ALARM_ACTIVATE
               : action == KV_ALARM_DEACTIVATE ? KV_CMD_ALARM_DEACTIVATE
                                               : 0;
    if (!kind || !alarm_ok(kind, member_id, type))
        return KV_ERR_INVALID;
    size_t start = out->len;
    if (buf_put_u8(out, KV_CMD_VERSION) < 0 || buf_put_u8(out, (uint8_t)kind) < 0 ||
        buf_put_u64(out, member_id) < 0 || buf_put_u8(out, (uint8_t)type) < 0) {
        out->len = start;
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

/* ---- auth ---- */

bool kv_auth_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > KV_AUTH_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] < 0x21 || name[i] > 0x7e || name[i] == ':' || name[i] == '/')
            return false;
    return true;
}

static bool hash_valid(const char *h)
{
    size_t n = h ? strlen(h) : 0;
    if (n == 0 || n > KV_AUTH_HASH_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (h[i] < 0x21 || h[i] > 0x7e)
            return false;
    return true;
}

/* What each op needs: a name, an arg (hash or role), a span, a perm, a
 * secret — and nothing it does not use. */
static bool auth_valid(const kv_auth_cmd *c)
{
    bool named = c->op != KV_AUTH_ENABLE && c->op != KV_AUTH_DISABLE;
    bool hash = c->op == KV_AUTH_USER_ADD || c->op == KV_AUTH_USER_PASSWORD;
    bool role = c->op == KV_AUTH_USER_GRANT || c->op == KV_AUTH_USER_REVOKE;
    bool span = c->op == KV_AUTH_ROLE_GRANT || c->op == KV_AUTH_ROLE_REVOKE;
    if (c->op < KV_AUTH_USER_ADD || c->op > KV_AUTH_DISABLE)
        return false;
    if (named ? !kv_auth_name_valid(c->name) : c->name && *c->name)
        return false;
    if (hash ? !hash_valid(c->arg) : role ? !kv_auth_name_valid(c->arg) : c->arg && *c->arg)
        return false;
    if (span ? !kv_span_valid(&c->span) : c->span.key_len || c->span.has_end)
        return false;
    bool perm_ok = c->op == KV_AUTH_ROLE_GRANT
                       ? c->perm >= KV_PERM_READ && c->perm <= KV_PERM_READWRITE
                       : c->perm == 0;
    bool secret_ok = c->op == KV_AUTH_ENABLE ? c->secret && c->secret_len == KV_AUTH_SECRET_LEN
                                             : c->secret_len == 0;
    return perm_ok && secret_ok;
}

static int put_str(buf *b, const char *s)
{
    return buf_put_bytes(b, s ? s : "", s ? (uint32_t)strlen(s) : 0);
}

int kv_encode_auth(const kv_auth_cmd *c, buf *out)
{
    if (!auth_valid(c))
        return KV_ERR_INVALID;
    size_t start = out->len;
    const kv_span *s = &c->span;
    if (buf_put_u8(out, KV_CMD_VERSION) < 0 || buf_put_u8(out, KV_CMD_AUTH) < 0 ||
        buf_put_u8(out, c->op) < 0 || put_str(out, c->name) < 0 || put_str(out, c->arg) < 0 ||
        buf_put_bytes(out, s->key, s->key_len) < 0 || buf_put_u8(out, s->has_end) < 0 ||
        (s->has_end && buf_put_bytes(out, s->end, s->end_len) < 0) ||
        buf_put_u8(out, c->perm) < 0 || buf_put_bytes(out, c->secret, c->secret_len) < 0) {
        out->len = start;
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

int kv_encode_as(const char *user, uint64_t gen, const uint8_t *inner, size_t len, buf *out)
{
    if (!user || (*user && !kv_auth_name_valid(user)) || len < 2 || len > UINT32_MAX || inner[1] == KV_CMD_AS)
        return KV_ERR_INVALID;
    size_t start = out->len;
    if (buf_put_u8(out, KV_CMD_VERSION) < 0 || buf_put_u8(out, KV_CMD_AS) < 0 ||
        put_str(out, user) < 0 || buf_put_u64(out, gen) < 0 ||
        buf_put_bytes(out, inner, (uint32_t)len) < 0) {
        out->len = start;
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

static bool idem_key_valid(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > KV_IDEM_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return true;
}

int kv_encode_idem_stamp(const char *key, uint64_t fingerprint, uint64_t time_ms, buf *out)
{
    if (!idem_key_valid(key))
        return KV_ERR_INVALID;
    size_t start = out->len;
    if (put_str(out, key) < 0 || buf_put_u64(out, fingerprint) < 0 ||
        buf_put_u64(out, time_ms) < 0) {
        out->len = start;
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

int kv_encode_idem(const char *key, uint64_t fingerprint, uint64_t time_ms,
                   const uint8_t *inner, size_t len, buf *out)
{
    if (!idem_key_valid(key) || len < 2 || len > UINT32_MAX || inner[1] == KV_CMD_IDEM)
        return KV_ERR_INVALID;
    /* the head a membership change's stamp shares, then the command */
    size_t start = out->len;
    if (buf_put_u8(out, KV_CMD_VERSION) < 0 || buf_put_u8(out, KV_CMD_IDEM) < 0 ||
        kv_encode_idem_stamp(key, fingerprint, time_ms, out) != KV_OK ||
        buf_put_bytes(out, inner, (uint32_t)len) < 0) {
        out->len = start;
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

static bool member_url_valid(uint64_t id, const char *url)
{
    size_t n = url ? strlen(url) : 0;
    if (id == 0 || id > (UINT64_C(1) << 53) || n == 0 || n > 255)
        return false;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (url[i] < 0x21 || url[i] > 0x7e)
            return false;
    return true;
}

int kv_encode_member_url(uint64_t id, const char *url, buf *out)
{
    if (!member_url_valid(id, url))
        return KV_ERR_INVALID;
    size_t start = out->len;
    if (buf_put_u8(out, KV_CMD_VERSION) < 0 || buf_put_u8(out, KV_CMD_MEMBER_URL) < 0 ||
        buf_put_u64(out, id) < 0 || put_str(out, url) < 0) {
        out->len = start;
        return KV_ERR_INTERNAL;
    }
    return KV_OK;
}

/* ---- decoding (untrusted bytes) ---- */

static bool rd_bool(reader *r, bool *v)
{
    uint8_t x = 0;
    if (rd_u8(r, &x) < 0 || x > 1)
        return false;
    *v = x;
    return true;
}

static bool rd_i64(reader *r, int64_t *v)
{
    uint64_t x = 0;
    if (rd_u64(r, &x) < 0)
        return false;
    *v = (int64_t)x;
    return true;
}

static bool rd_compare(reader *r, kv_compare *c)
{
    if (rd_bytes(r, &c->key, &c->key_len) < 0 || rd_u8(r, &c->target) < 0 ||
        rd_u8(r, &c->result) < 0)
        return false;
    if (c->target == KV_CMP_VALUE)
        return rd_bytes(r, &c->value, &c->value_len) == 0;
    return rd_i64(r, &c->number);
}

static bool rd_op(reader *r, kv_op *o)
{
    kv_span *s = &o->span;
    if (rd_u8(r, &o->type) < 0 || rd_bytes(r, &s->key, &s->key_len) < 0 ||
        !rd_bool(r, &s->has_end) || (s->has_end && rd_bytes(r, &s->end, &s->end_len) < 0))
        return false;
    switch (o->type) {
    case KV_OP_PUT:
        return rd_bytes(r, &o->value, &o->value_len) == 0 && rd_i64(r, &o->lease) &&
               rd_bool(r, &o->prev_kv);
    case KV_OP_DELETE:
        return rd_bool(r, &o->prev_kv);
    case KV_OP_RANGE:
        return rd_i64(r, &o->limit) && rd_i64(r, &o->rev) && rd_bool(r, &o->keys_only) &&
               rd_bool(r, &o->count_only);
    default:
        return false;
    }
}

static bool rd_count(reader *r, uint32_t *n)
{
    return rd_u32(r, n) == 0 && *n <= KV_MAX_TXN_OPS;
}

/* Allocates before parsing only as much as the count allows: a count is
 * capped, so hostile input cannot ask for a large allocation. */
static int rd_ops(reader *r, kv_op **ops, uint32_t *n)
{
    if (!rd_count(r, n))
        return KV_ERR_INVALID;
    *ops = calloc(*n ? *n : 1, sizeof **ops);
    if (!*ops)
        return KV_ERR_INTERNAL;
    for (uint32_t i = 0; i < *n; i++)
        if (!rd_op(r, &(*ops)[i]))
            return KV_ERR_INVALID;
    return KV_OK;
}

static int decode_txn(reader *r, kv_cmd *c)
{
    uint32_t nc, ns, nf;
    if (!rd_count(r, &nc))
        return KV_ERR_INVALID;
    c->cmp = calloc(nc ? nc : 1, sizeof *c->cmp);
    if (!c->cmp)
        return KV_ERR_INTERNAL;
    for (uint32_t i = 0; i < nc; i++)
        if (!rd_compare(r, &c->cmp[i]))
            return KV_ERR_INVALID;
    int rc = rd_ops(r, &c->ops, &ns);
    if (rc == KV_OK)
        rc = rd_ops(r, &c->fops, &nf);
    if (rc != KV_OK)
        return rc;
    c->txn = (kv_txn){nc, c->cmp, ns, c->ops, nf, c->fops};
    return kv_txn_validate(&c->txn);
}

static int decode_lease(reader *r, kv_cmd *c)
{
    if (!rd_i64(r, &c->lease_id) || !lease_id_ok(c->lease_id))
        return KV_ERR_INVALID;
    if (c->kind == KV_CMD_LEASE_GRANT && (!rd_i64(r, &c->lease_ttl) || !lease_ttl_ok(c->lease_ttl)))
        return KV_ERR_INVALID;
    return KV_OK;
}

static int decode_alarm(reader *r, kv_cmd *c)
{
    if (rd_u64(r, &c->alarm_member) < 0 || rd_u8(r, &c->alarm_type) < 0 ||
        !alarm_ok(c->kind, c->alarm_member, c->alarm_type))
        return KV_ERR_INVALID;
    return KV_OK;
}

/* A string field: bytes without NUL, copied with one (NULL: no memory). */
static int rd_str(reader *r, char **out)
{
    const uint8_t *p;
    uint32_t n;
    if (rd_bytes(r, &p, &n) < 0 || n > KV_AUTH_HASH_MAX || memchr(p, 0, n))
        return KV_ERR_INVALID;
    *out = malloc(n + 1);
    if (!*out)
        return KV_ERR_INTERNAL;
    memcpy(*out, p, n);
    (*out)[n] = '\0';
    return KV_OK;
}

static int decode_auth(reader *r, kv_cmd *c)
{
    kv_auth_cmd *a = &c->auth;
    char *name = NULL, *arg = NULL;
    kv_span *s = &a->span;
    int rc = KV_ERR_INVALID;
    if (rd_u8(r, &a->op) < 0 || (rc = rd_str(r, &name)) != KV_OK ||
        (rc = rd_str(r, &arg)) != KV_OK)
        goto out;
    rc = KV_ERR_INVALID;
    if (rd_bytes(r, &s->key, &s->key_len) < 0 || !rd_bool(r, &s->has_end) ||
        (s->has_end && rd_bytes(r, &s->end, &s->end_len) < 0) || rd_u8(r, &a->perm) < 0 ||
        rd_bytes(r, &a->secret, &a->secret_len) < 0)
        goto out;
    a->name = name;
    a->arg = arg;
    return auth_valid(a) ? KV_OK : KV_ERR_INVALID;
out:
    free(name);
    free(arg);
    a->name = a->arg = NULL;
    return rc;
}

static int decode_as(reader *r, kv_cmd *c)
{
    const uint8_t *inner;
    uint32_t n;
    int rc = rd_str(r, &c->as_user);
    if (rc != KV_OK)
        return rc;
    if ((*c->as_user && !kv_auth_name_valid(c->as_user)) || rd_u64(r, &c->as_gen) < 0 ||
        rd_bytes(r, &inner, &n) < 0 || n < 2 || inner[1] == KV_CMD_AS)
        return KV_ERR_INVALID;
    c->inner = inner;
    c->inner_len = n;
    return KV_OK;
}

static int decode_member_url(reader *r, kv_cmd *c)
{
    if (rd_u64(r, &c->member_id) < 0)
        return KV_ERR_INVALID;
    int rc = rd_str(r, &c->member_url);
    if (rc != KV_OK)
        return rc;
    return member_url_valid(c->member_id, c->member_url) ? KV_OK : KV_ERR_INVALID;
}

/* The key, fingerprint and time an IDEM command and a stamp share. */
static int decode_idem_head(reader *r, kv_cmd *c)
{
    int rc = rd_str(r, &c->idem_key);
    if (rc != KV_OK)
        return rc;
    return idem_key_valid(c->idem_key) && rd_u64(r, &c->idem_fp) == 0 &&
                   rd_u64(r, &c->idem_ts) == 0
               ? KV_OK
               : KV_ERR_INVALID;
}

int kv_decode_idem_stamp(const uint8_t *p, size_t len, kv_cmd *c)
{
    memset(c, 0, sizeof *c);
    reader r;
    reader_init(&r, p, len);
    int rc = decode_idem_head(&r, c);
    if (rc == KV_OK && rd_left(&r) != 0)
        rc = KV_ERR_INVALID;
    if (rc != KV_OK)
        kv_cmd_free(c);
    return rc;
}

static int decode_idem(reader *r, kv_cmd *c)
{
    const uint8_t *inner;
    uint32_t n;
    int rc = decode_idem_head(r, c);
    if (rc != KV_OK)
        return rc;
    if (rd_bytes(r, &inner, &n) < 0 || n < 2 || inner[1] == KV_CMD_IDEM)
        return KV_ERR_INVALID;
    c->inner = inner;
    c->inner_len = n;
    return KV_OK;
}

/* The kind of the command inside any AS / IDEM wrappers; 0 if unreadable. */
static int innermost_kind(const uint8_t *p, size_t len)
{
    for (int depth = 0; depth < 3; depth++) {
        reader r;
        reader_init(&r, p, len);
        uint8_t version, kind;
        const uint8_t *s;
        uint32_t n;
        uint64_t skip;
        if (!p || rd_u8(&r, &version) < 0 || rd_u8(&r, &kind) < 0 || version != KV_CMD_VERSION)
            return 0;
        if (kind != KV_CMD_AS && kind != KV_CMD_IDEM)
            return kind;
        if (rd_bytes(&r, &s, &n) < 0 || rd_u64(&r, &skip) < 0 ||
            (kind == KV_CMD_IDEM && rd_u64(&r, &skip) < 0) || rd_bytes(&r, &p, &n) < 0)
            return 0;
        len = n;
    }
    return 0;
}

bool kv_cmd_needs_once(const uint8_t *cmd, size_t len)
{
    switch (innermost_kind(cmd, len)) {
    case KV_CMD_ALARM_ACTIVATE:
    case KV_CMD_ALARM_DEACTIVATE:
    case KV_CMD_LEASE_KEEPALIVE:
    case KV_CMD_LEASE_REVOKE: return false;
    default: return true;
    }
}

int kv_cmd_decode(const uint8_t *p, size_t len, kv_cmd *out)
{
    memset(out, 0, sizeof *out);
    reader r;
    reader_init(&r, p, len);
    uint8_t version = 0, kind = 0;
    if (!p || rd_u8(&r, &version) < 0 || rd_u8(&r, &kind) < 0 || version != KV_CMD_VERSION)
        return KV_ERR_INVALID;
    int rc = KV_ERR_INVALID;
    out->kind = kind;
    if (kind == KV_CMD_TXN)
        rc = decode_txn(&r, out);
    else if (kind == KV_CMD_COMPACT)
        rc = rd_i64(&r, &out->compact_rev) && out->compact_rev > 0 ? KV_OK : KV_ERR_INVALID;
    else if (kind >= KV_CMD_LEASE_GRANT && kind <= KV_CMD_LEASE_KEEPALIVE)
        rc = decode_lease(&r, out);
    else if (kind == KV_CMD_ALARM_ACTIVATE || kind == KV_CMD_ALARM_DEACTIVATE)
        rc = decode_alarm(&r, out);
    else if (kind == KV_CMD_AUTH)
        rc = decode_auth(&r, out);
    else if (kind == KV_CMD_AS)
        rc = decode_as(&r, out);
    else if (kind == KV_CMD_IDEM)
        rc = decode_idem(&r, out);
    else if (kind == KV_CMD_MEMBER_URL)
        rc = decode_member_url(&r, out);
    if (rc == KV_OK && rd_left(&r) != 0)
        rc = KV_ERR_INVALID;
    if (rc != KV_OK)
        kv_cmd_free(out);
    return rc;
}

void kv_cmd_free(kv_cmd *c)
{
    free(c->cmp);
    free(c->ops);
    free(c->fops);
    free((char *)c->auth.name);
    free((char *)c->auth.arg);
    free(c->as_user);
    free(c->idem_key);
    free(c->member_url);
    memset(c, 0, sizeof *c);
}
