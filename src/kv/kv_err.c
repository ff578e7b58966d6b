/* kv_err: the name of each kv error code (enum kv_err in kv.h). Must
 * never return NULL. */
#include "kv/kv.h"

const char *kv_strerror(int code)
{
    switch (code) {
    case KV_OK: return "ok";
    case KV_ERR_INTERNAL: return "internal";
    case KV_ERR_INVALID: return "invalid_argument";
    case KV_ERR_COMPACTED: return "compacted";
    case KV_ERR_FUTURE_REV: return "future_revision";
    case KV_ERR_NOT_FOUND: return "not_found";
    case KV_ERR_EXISTS: return "exists";
    case KV_ERR_CORRUPT: return "corrupt";
    case KV_ERR_NO_SPACE: return "no_space";
    case KV_ERR_NO_SPACE_DISK: return "disk_full";
    case KV_ERR_PERMISSION: return "permission_denied";
    case KV_ERR_AUTH: return "unauthenticated";
    case KV_ERR_IDEM_REUSED: return "idempotency_key_reused";
    default: return "unknown";
    }
}
