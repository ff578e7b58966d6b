/* h_txn: POST /txn and POST /compact — JSON bodies in, one proposal out.
 * Must never propose a body that did not parse and encode (a refused
 * request writes nothing), or render results against the wrong op list. */
#include "api/api_int.h"
#include "api/input.h"

#include <string.h>

static json_t *render_response(const kv_op_result *res, const kv_op *op)
{
    static const char *const names[] = {NULL, "response_range", "response_put",
                                        "response_delete_range"};
    if (res->type < KV_OP_RANGE || res->type > KV_OP_DELETE)
        return NULL;
    return json_pack("{s:o}", names[res->type], api_json_op_result(res, op));
}

/* Renders kv_result of a txn: {header, succeeded, responses}. */
static json_t *txn_render(api *a, const kv_txn *t, const kv_result *res)
{
    const kv_op *ops = res->succeeded ? t->success : t->failure;
    size_t n_ops = res->succeeded ? t->n_success : t->n_failure;
    json_t *responses = json_array();
    for (size_t i = 0; responses && i < res->n_ops; i++) {
        const kv_op *op = i < n_ops ? &ops[i] : NULL;
        if (json_array_append_new(responses, render_response(&res->ops[i], op)) < 0) {
            json_decref(responses);
            responses = NULL;
        }
    }
    return json_pack("{s:o,s:b,s:o}", "header", api_json_header(a, res->revision), "succeeded",
                     res->succeeded, "responses", responses);
}

static void finish_txn(api_req *r)
{
    if (!api_write_failed(r))
        api_reply_json(r, 200, txn_render(r->a, &r->txn, r->res));
}

/* Which part of a parsed txn the encoder refused (the parser already
 * checked types and names; what is left are keys and conflicts), so the
 * 400 names a field: each part is encoded alone (at most three tries,
 * only on this error path). */
static const char *invalid_part(const kv_txn *t)
{
    static const char *const names[] = {"compare", "success", "failure"};
    const kv_txn parts[] = {{t->n_compare, t->compare, 0, NULL, 0, NULL},
                            {0, NULL, t->n_success, t->success, 0, NULL},
                            {0, NULL, 0, NULL, t->n_failure, t->failure}};
    const char *name = "body";
    buf scratch;
    buf_init(&scratch);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        scratch.len = 0;
        if (kv_encode_txn(&parts[i], &scratch) == KV_ERR_INVALID) {
            name = names[i];
            break;
        }
    }
    buf_free(&scratch);
    return name;
}

void api_h_txn(api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) < 0 || !(r->doc = api_body_json(r)))
        return;
    char err[256];
    int rc = api_txn_parse(r->doc, &r->txn, &r->arena, err, sizeof err);
    if (rc == -2) {
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    if (rc < 0) {
        api_reply_error(r, 400, "invalid_argument", NULL, "%s", err);
        return;
    }
    buf cmd;
    buf_init(&cmd);
    int enc = kv_encode_txn(&r->txn, &cmd);
    if (enc == KV_ERR_INVALID)
        api_reply_error(r, 400, "invalid_argument", NULL,
                        "%s: a key is empty or over 64 KiB, or one branch writes a key twice "
                        "(two puts, or a put inside a deleted range)", invalid_part(&r->txn));
    else
        api_propose_encoded(r, enc, &cmd, finish_txn);
    buf_free(&cmd);
}

static void finish_compact(api_req *r)
{
    if (!api_write_failed(r))
        api_reply_json(r, 200, json_pack("{s:o}", "header", api_json_header(r->a, r->res->revision)));
}

void api_h_compact(api_req *r)
{
    static const char *const none[] = {NULL};
    if (api_query_only(r, none) < 0 || !(r->doc = api_body_json(r)))
        return;
    json_t *rev = json_object_get(r->doc, "revision");
    if (json_object_size(r->doc) != 1 || !rev) {
        api_reply_error(r, 400, "invalid_argument", NULL, "body: expected {\"revision\": R}");
        return;
    }
    if (!json_is_integer(rev) || json_integer_value(rev) < 1) {
        api_reply_error(r, 400, "invalid_argument", NULL, "revision: expected an integer >= 1");
        return;
    }
    buf cmd;
    buf_init(&cmd);
    api_propose_encoded(r, kv_encode_compact(json_integer_value(rev), &cmd), &cmd, finish_compact);
    buf_free(&cmd);
}
