/* fuzz_kv_cmd: kv_cmd_decode, which apply runs on the untrusted bytes of
 * every committed entry. Properties: no crash or leak, a decoded command is
 * valid (kv_txn_validate), and encoding it again gives exactly the input
 * (the format promises one encoding per command). The same bytes are also
 * read as a membership change's Idempotency-Key stamp (kv_decode_idem_stamp,
 * apply runs it on a conf entry's tail), with the same properties. */
#include "fuzz.h"
#include "kv/kv_internal.h"

#include <string.h>

static int encode(const kv_cmd *c, buf *b)
{
    switch (c->kind) {
    case KV_CMD_TXN: return kv_encode_txn(&c->txn, b);
    case KV_CMD_COMPACT: return kv_encode_compact(c->compact_rev, b);
    case KV_CMD_LEASE_GRANT: return kv_encode_lease_grant(c->lease_id, c->lease_ttl, b);
    case KV_CMD_LEASE_REVOKE: return kv_encode_lease_revoke(c->lease_id, b);
    case KV_CMD_LEASE_KEEPALIVE: return kv_encode_lease_keepalive(c->lease_id, b);
    case KV_CMD_ALARM_ACTIVATE:
        return kv_encode_alarm(KV_ALARM_ACTIVATE, c->alarm_member, c->alarm_type, b);
    case KV_CMD_ALARM_DEACTIVATE:
        return kv_encode_alarm(KV_ALARM_DEACTIVATE, c->alarm_member, c->alarm_type, b);
    case KV_CMD_AUTH: return kv_encode_auth(&c->auth, b);
    case KV_CMD_AS: return kv_encode_as(c->as_user, c->as_gen, c->inner, c->inner_len, b);
    case KV_CMD_IDEM:
        return kv_encode_idem(c->idem_key, c->idem_fp, c->idem_ts, c->inner, c->inner_len, b);
    case KV_CMD_MEMBER_URL: return kv_encode_member_url(c->member_id, c->member_url, b);
    default: return KV_ERR_INVALID;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1); /* exact size: ASan sees overreads */
    FUZZ_CHECK(p);
    if (size)
        memcpy(p, data, size);
    kv_cmd c;
    if (kv_cmd_decode(p, size, &c) == KV_OK) {
        FUZZ_CHECK(c.kind != KV_CMD_TXN || kv_txn_validate(&c.txn) == KV_OK);
        buf b;
        buf_init(&b);
        FUZZ_CHECK(encode(&c, &b) == KV_OK);
        FUZZ_CHECK(b.len == size && memcmp(b.data, p, size) == 0);
        buf_free(&b);
        kv_cmd_free(&c);
    }
    if (kv_decode_idem_stamp(p, size, &c) == KV_OK) {
        buf b;
        buf_init(&b);
        FUZZ_CHECK(kv_encode_idem_stamp(c.idem_key, c.idem_fp, c.idem_ts, &b) == KV_OK);
        FUZZ_CHECK(b.len == size && memcmp(b.data, p, size) == 0);
        buf_free(&b);
        kv_cmd_free(&c);
    }
    free(p);
    return 0;
}
