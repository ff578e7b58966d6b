/* h_kv: the key routes — raftexample's GET/PUT /{key} and the native
 * GET/PUT/DELETE /kv/{key} (docs/API.md sections 1 and 2).
 *
 * Must never: write anything for a request it refuses (everything is
 * validated and encoded before node_propose), or read kv before the read
 * barrier unless the client asked for serializable.
 */
#include "api/api_int.h"
#include "api/input.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reads ---- */

static void reply_raw_value(api_req *r, const kv_kv *item, int64_t rev)
{
    char v[5][24];
    snprintf(v[0], sizeof v[0], "%" PRId64, rev);
    snprintf(v[1], sizeof v[1], "%" PRId64, item->mod_revision);
    snprintf(v[2], sizeof v[2], "%" PRId64, item->create_revision);
    snprintf(v[3], sizeof v[3], "%" PRId64, item->version);
    snprintf(v[4], sizeof v[4], "%" PRId64, item->lease);
    const char *h[] = {"X-Raftkv-Revision", v[0], "X-Raftkv-Mod-Revision", v[1],
                       "X-Raftkv-Create-Revision", v[2], "X-Raftkv-Version", v[3],
                       "X-Raftkv-Lease", v[4], NULL};
    api_reply_raw(r, 200, "application/octet-stream", item->value, item->value_len, h);
}

/* The 200 range body, written straight into a buf (json_out.c): a jansson
 * tree per kv cost most of a range read's CPU. */
static void reply_range_json(api_req *r, const kv_op_result *res, int64_t rev)
{
    buf b;
    buf_init(&b);
    if (api_jw_range(&b, r->a, res, r->op.keys_only, rev) < 0)
        api_reply_json(r, 200, NULL); /* NULL body: the 500 out-of-memory answer */
    else
        api_reply_buf(r, 200, "application/json", &b);
    buf_free(&b);
}

static void reply_range(api_req *r, kv_op_result *res, int64_t rev)
{
    res->type = KV_OP_RANGE;
    if (!r->op.span.has_end && res->kvs.n == 0 && !r->op.count_only) {
        api_reply_error_with(r, 404, "key_not_found", json_pack("{s:o}", "header",
                             api_json_header(r->a, rev)), "key not found");
    } else if (r->raw && res->kvs.n) {
        reply_raw_value(r, &res->kvs.items[0], rev);
    } else {
        reply_range_json(r, res, rev);
    }
}

/* Reads once the barrier (if any) has passed; runs on an MHD thread. */
static void do_read(api_req *r)
{
    kv_conn *c = api_reader_after_barrier(r);
    if (!api_may_read_op(r, c))
        return;
    kv_op_result res;
    memset(&res, 0, sizeof res);
    int64_t rev = 0, cur = 0, compact = 0;
    int err = kv_range(c, &r->op, &res, &rev);
    if (err == KV_ERR_COMPACTED)
        kv_read_revisions(c, &cur, &compact);
    kv_reader_release(r->a->kv, c);
    if (err != KV_OK)
        api_reply_kv_error(r, err, compact);
    else
        reply_range(r, &res, rev);
    kv_list_free(&res.kvs);
}

static void start_read(api_req *r, bool serializable)
{
    r->op.type = KV_OP_RANGE;
    if (serializable) {
        r->status = NODE_OK;
        do_read(r);
    } else {
        api_wait_barrier(r, do_read);
    }
}

static void kv_get(api_req *r)
{
    static const char *const allowed[] = {"prefix", "range_end", "limit", "rev", "keys_only",
                                          "count_only", "serializable", "raw", NULL};
    bool serializable = false;
    if (api_query_only(r, allowed) < 0 || api_parse_span(r) < 0 ||
        api_query_i64(r, "limit", 0, &r->op.limit, NULL) < 0 ||
        api_query_i64(r, "rev", 0, &r->op.rev, NULL) < 0 ||
        api_query_bool(r, "keys_only", &r->op.keys_only) < 0 ||
        api_query_bool(r, "count_only", &r->op.count_only) < 0 ||
        api_query_bool(r, "serializable", &serializable) < 0 ||
        api_query_bool(r, "raw", &r->raw) < 0)
        return;
    if (r->raw && (r->op.span.has_end || r->op.keys_only || r->op.count_only)) {
        api_reply_error(r, 400, "invalid_argument", NULL,
                        "raw: only for a single key with its value");
        return;
    }
    start_read(r, serializable);
}

/* ---- writes ---- */

/* Answers a put or delete once applied: 204 (raftexample), 200 with the
 * op's result, or 412 with the current kv when the condition failed. */
static void finish_write(api_req *r)
{
    kv_result *res = r->res;
    if (api_write_failed(r)) {
        return;
    } else if (res->n_ops < 1) {
        api_reply_error(r, 500, "internal", NULL, "write without a result");
    } else if (r->cond && !res->succeeded) {
        json_t *extra = json_pack("{s:o}", "header", api_json_header(r->a, res->revision));
        const kv_list *cur = &res->ops[0].kvs;
        if (extra && cur->n &&
            json_object_set_new(extra, "kv", api_json_kv(&cur->items[0], false)) < 0) {
            json_decref(extra); /* the current kv is part of the answer: none, then */
            extra = NULL;
        }
        api_reply_error_with(r, 412, "precondition_failed", extra,
                             "if_mod_revision: does not match");
    } else if (r->root) {
        api_reply_empty(r, 204);
    } else {
        api_reply_json(r, 200, api_json_with_header(r->a, api_json_op_result(&res->ops[0], NULL),
                                                    res->revision));
    }
}

/* Encodes op (guarded by "mod_revision == R" when has_cond; the failure
 * branch reads the key so a 412 can show it) and proposes it. */
static void propose_op(api_req *r, const kv_op *op, bool has_cond, int64_t cond_rev)
{
    kv_compare cmp = {op->span.key, op->span.key_len, KV_CMP_MOD, KV_CMP_EQUAL, cond_rev, NULL, 0};
    kv_op fail = {.type = KV_OP_RANGE, .span = {op->span.key, op->span.key_len, false, NULL, 0}};
    kv_txn t = {has_cond ? 1 : 0, &cmp, 1, op, has_cond ? 1 : 0, &fail};
    buf cmd;
    buf_init(&cmd);
    r->cond = has_cond;
    api_propose_encoded(r, kv_encode_txn(&t, &cmd), &cmd, finish_write);
    buf_free(&cmd);
}

static int body_len_ok(api_req *r)
{
    if (r->body.len <= UINT32_MAX)
        return 0;
    api_reply_error(r, 413, "request_too_large", NULL, "value too large");
    return -1;
}

static void put_value(api_req *r, int64_t lease, bool prev_kv, bool has_cond, int64_t cond_rev)
{
    if (body_len_ok(r) < 0)
        return;
    kv_op op = {.type = KV_OP_PUT,
                .span = {r->route.key, (uint32_t)r->route.key_len, false, NULL, 0},
                .value = r->body.data ? r->body.data : (const uint8_t *)"",
                .value_len = (uint32_t)r->body.len,
                .lease = lease,
                .prev_kv = prev_kv};
    propose_op(r, &op, has_cond, cond_rev);
}

static void kv_put(api_req *r)
{
    static const char *const allowed[] = {"lease", "prev_kv", "if_mod_revision", NULL};
    int64_t lease = 0, cond_rev = 0;
    bool prev_kv = false, has_cond = false;
    if (api_query_only(r, allowed) < 0 || api_query_i64(r, "lease", 0, &lease, NULL) < 0 ||
        api_query_bool(r, "prev_kv", &prev_kv) < 0 ||
        api_query_i64(r, "if_mod_revision", 0, &cond_rev, &has_cond) < 0)
        return;
    if (r->route.key_len == 0) {
        api_reply_error(r, 400, "invalid_argument", NULL, "key: must not be empty");
        return;
    }
    put_value(r, lease, prev_kv, has_cond, cond_rev);
}

static void kv_delete(api_req *r)
{
    static const char *const allowed[] = {"prefix", "range_end", "prev_kv", "if_mod_revision",
                                          NULL};
    int64_t cond_rev = 0;
    bool has_cond = false;
    kv_op op = {.type = KV_OP_DELETE};
    if (api_query_only(r, allowed) < 0 || api_parse_span(r) < 0 ||
        api_query_bool(r, "prev_kv", &op.prev_kv) < 0 ||
        api_query_i64(r, "if_mod_revision", 0, &cond_rev, &has_cond) < 0)
        return;
    if (has_cond && r->op.span.has_end) {
        api_reply_error(r, 400, "invalid_argument", NULL,
                        "if_mod_revision: only for a single key");
        return;
    }
    op.span = r->op.span;
    propose_op(r, &op, has_cond, cond_rev);
}

void api_h_kv(api_req *r)
{
    if (strcmp(r->method, "GET") == 0)
        kv_get(r);
    else if (strcmp(r->method, "PUT") == 0)
        kv_put(r);
    else
        kv_delete(r);
}

/* ---- raftexample root keys ---- */

static void banner(api_req *r)
{
    api_reply_json(r, 200, json_pack("{s:s,s:s,s:o}", "name", "raftkv", "version", "0.1.0",
                                     "header", api_json_header(r->a, -1)));
}

void api_h_root_key(api_req *r)
{
    static const char *const none[] = {NULL};
    bool get = strcmp(r->method, "GET") == 0;
    if (api_query_only(r, none) < 0)
        return;
    if (r->route.key_len == 0) {
        if (get)
            banner(r);
        else
            api_reply_error(r, 400, "invalid_argument", NULL, "key: must not be empty");
        return;
    }
    r->root = true;
    if (!get) {
        put_value(r, 0, false, false, 0);
        return;
    }
    r->raw = true;
    r->op.span.key = r->route.key;
    r->op.span.key_len = (uint32_t)r->route.key_len;
    start_read(r, false);
}
