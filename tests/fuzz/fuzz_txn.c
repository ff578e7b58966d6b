/* fuzz_txn: api_txn_parse, the JSON body of POST /txn, loaded the way
 * api_body_json loads it. Properties: no crash or leak; a refusal says why
 * in a NUL-terminated message; an accepted txn that kv_encode_txn takes
 * decodes (kv_cmd_decode, what apply runs) to the same shape. */
#include "fuzz.h"
#include "api/api_int.h"
#include "kv/kv_internal.h"

#include <string.h>

static void check_encoded(const kv_txn *t)
{
    buf cmd;
    buf_init(&cmd);
    int rc = kv_encode_txn(t, &cmd);
    FUZZ_CHECK(rc == KV_OK || rc == KV_ERR_INVALID);
    if (rc == KV_OK) {
        kv_cmd c;
        FUZZ_CHECK(kv_cmd_decode(cmd.data, cmd.len, &c) == KV_OK);
        FUZZ_CHECK(c.kind == KV_CMD_TXN && c.txn.n_compare == t->n_compare &&
                   c.txn.n_success == t->n_success && c.txn.n_failure == t->n_failure);
        kv_cmd_free(&c);
    }
    buf_free(&cmd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return 0;
    if (json_is_object(root)) {
        api_arena ar;
        memset(&ar, 0, sizeof ar);
        kv_txn t;
        char err[256];
        err[0] = 0;
        int rc = api_txn_parse(root, &t, &ar, err, sizeof err);
        FUZZ_CHECK(rc == 0 || rc == -1);
        if (rc == 0)
            check_encoded(&t);
        else
            FUZZ_CHECK(err[0] && memchr(err, 0, sizeof err));
        api_arena_free(&ar);
    }
    json_decref(root);
    return 0;
}
